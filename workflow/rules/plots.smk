rule plots:
    input:
        "results/summary.csv",
    output:
        png="results/plots/corrembed_vs_imagenet.png",
        svg="results/plots/corrembed_vs_imagenet.svg",
    localrule: True
    log:
        "logs/plots.log",
    conda:
        "../../envs/corrembed.yaml"
    script:
        "../scripts/plots.py"

rule plots:
    input:
        "results/summary.csv",
    output:
        png=report(
            "results/plots/corrembed_vs_imagenet.png",
            caption="../report/plot.rst",
            category="Plots",
        ),
        svg="results/plots/corrembed_vs_imagenet.svg",
    log:
        "logs/plots.log",
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    script:
        "../scripts/plots.py"

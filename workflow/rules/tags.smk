rule tags:
    input:
        unpack(tags_inputs),
    output:
        vectors="results/tags/{weighting}/vectors.npz",
        categories="results/tags/{weighting}/categories.csv",
    log:
        "logs/tags/{weighting}.log",
    conda:
        "../../envs/corrembed.yaml"
    params:
        tags=config["tags"],
    script:
        "../scripts/tags.py"

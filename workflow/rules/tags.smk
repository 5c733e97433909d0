rule tags:
    input:
        unpack(tags_inputs),
    output:
        vectors="results/tags/{weighting}/vectors.npz",
        categories="results/tags/{weighting}/categories.csv",
    params:
        tags=config["tags"],
    log:
        "logs/tags/{weighting}.log",
    conda:
        "../../envs/corrembed.yaml"
    script:
        "../scripts/tags.py"

rule tags:
    input:
        unpack(tags_inputs),
    output:
        vectors="results/tags/{weighting}/vectors.npz",
        categories="results/tags/{weighting}/categories.csv",
    log:
        "logs/tags/{weighting}.log",
    # Cheap (one pass over the tag table): not worth a cluster job's queueing.
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        tags=tag_settings(),
    script:
        "../scripts/tags.py"

rule score:
    input:
        shard="results/embeddings/{model}/part-00000.parquet",
        vectors="results/tags/{weighting}/vectors.npz",
    output:
        score="results/scores/{model}/{weighting}.json",
        per_anchor="results/scores/{model}/{weighting}.per_anchor.parquet",
        excluded="results/scores/{model}/{weighting}.excluded.csv",
    log:
        "logs/score/{model}/{weighting}.log",
    benchmark:
        "logs/score/{model}/{weighting}.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    params:
        scoring=canonical(config["scoring"]),
    script:
        "../scripts/score.py"

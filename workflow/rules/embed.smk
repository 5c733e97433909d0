# The weights check runs first and locally (compute nodes often have no internet); its
# priority makes a missing file stop the run before any embedding job starts.
rule weights:
    output:
        "results/weights/{model}.json",
    log:
        "logs/weights/{model}.log",
    priority: 100
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        spec=embedding_spec,
        torch_home=config["torch_home"],
    script:
        "../scripts/weights.py"


# Run settings (batch size, workers, device) are read from config inside the script, not
# params: they cannot change the embedding and must not trigger re-embedding.
rule embed:
    input:
        images="results/catalogue/images.parquet",
        weights="results/weights/{model}.json",
    output:
        shard="results/embeddings/{model}/part-00000.parquet",
        meta="results/embeddings/{model}/meta.json",
    log:
        "logs/embed/{model}.log",
    benchmark:
        "logs/embed/{model}.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    threads: config["embed"]["threads"]
    params:
        spec=embedding_spec,
        torch_home=config["torch_home"],
    script:
        "../scripts/embed.py"

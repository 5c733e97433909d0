# Cheap checks of each model spec (arch, weights enum, layer node, checkpoint fit) run first
# and locally, before ingest finishes, so a config typo stops the run at once.
rule check_model:
    output:
        "results/weights/{model}.checked.json",
    log:
        "logs/weights/{model}.check.log",
    priority: 100
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        spec=embedding_spec,
    script:
        "../scripts/check_model.py"


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


# One job per shard (config embed.shards) of a model's images. Only what changes an embedding
# is a param (spec, precision, decoder): changing it re-embeds. Run settings (batch size,
# workers, device, channels_last, compile, cache) are read from config inside the script and
# re-embed nothing; images already in the embedding cache (embed.cache) are not embedded again.
rule embed:
    input:
        images="results/catalogue/images.parquet",
        weights="results/weights/{model}.json",
        checked="results/weights/{model}.checked.json",
    output:
        shard="results/embeddings/{model}/shards/shard-{shard}.parquet",
        meta="results/embeddings/{model}/shards/shard-{shard}.json",
    log:
        "logs/embed/{model}/shard-{shard}.log",
    benchmark:
        "logs/embed/{model}/shard-{shard}.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    threads: config["embed"]["threads"]
    resources:
        **EMBED_RESOURCES,
    params:
        spec=embedding_spec,
        torch_home=config["torch_home"],
        precision=embedding_setting("precision"),
        decoder=embedding_setting("decoder"),
    script:
        "../scripts/embed.py"


# Cheap: checks the shards cover the catalogue in order and streams them into one file.
rule merge_embeddings:
    input:
        images="results/catalogue/images.parquet",
        shards=embedding_shard_files,
    output:
        shard="results/embeddings/{model}/part-00000.parquet",
        meta="results/embeddings/{model}/meta.json",
    log:
        "logs/embed/{model}.log",
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    script:
        "../scripts/merge_embeddings.py"

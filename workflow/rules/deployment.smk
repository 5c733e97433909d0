# Deployment study (issue 23): what cheaper vectors (PCA-k, fp16, int8, binary) keep of each model's
# agreement with the tags, against their cost; results/deployment.csv and the figures. Each variant
# is a cached job of its own: a `deployment:` change re-scores only the variants it names.


rule deployment_basis:
    input:
        shard="results/embeddings/{model}/part-00000.parquet",
        vectors=f"results/tags/{WEIGHTINGS[0]}/vectors.npz",
    output:
        "results/deployment/{model}/pca_basis.npz",
    log:
        "logs/deployment/{model}/pca_basis.log",
    benchmark:
        "logs/deployment/{model}/pca_basis.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    params:
        item_embedding=config["scoring"]["item_embedding"],
    script:
        "../scripts/deployment_basis.py"


rule deployment_variant:
    input:
        unpack(deployment_variant_inputs),
    output:
        table="results/deployment/{model}/{variant}.parquet",
        record="results/deployment/{model}/{variant}.json",
    log:
        "logs/deployment/{model}/{variant}.log",
    benchmark:
        "logs/deployment/{model}/{variant}.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    params:
        settings=deployment_settings(),
        scoring=canonical(config["scoring"]),
        weightings=WEIGHTINGS,
    script:
        "../scripts/deployment_variant.py"


rule deployment:
    input:
        variants=deployment_variant_files(),
        metas=expand("results/embeddings/{model}/meta.json", model=MODELS),
        categories=expand(
            "results/tags/{weighting}/categories.csv", weighting=WEIGHTINGS
        ),
    output:
        csv="results/deployment.csv",
        recommendation="results/deployment/recommendation.json",
        bytes_figure="results/deployment/quality_vs_bytes.png",
        speed_figure="results/deployment/quality_vs_speed.png",
    log:
        "logs/deployment/study.log",
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        models=canonical(MODEL_SPECS),
        comparison=canonical(config["diagnostics"]["comparison"]),
        scoring=canonical(config["scoring"]),
    script:
        "../scripts/deployment.py"

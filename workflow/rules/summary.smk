rule summary:
    input:
        scores=score_files(".json"),
        metas=expand("results/embeddings/{model}/meta.json", model=MODELS),
        categories=expand("results/tags/{weighting}/categories.csv", weighting=WEIGHTINGS),
        rejects="results/catalogue/rejects.csv",
    output:
        "results/summary.csv",
    params:
        models=config["models"],
    localrule: True
    log:
        "logs/summary.log",
    conda:
        "../../envs/corrembed.yaml"
    script:
        "../scripts/summary.py"

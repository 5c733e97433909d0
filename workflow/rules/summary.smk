rule summary:
    input:
        scores=score_files(".json"),
        metas=expand("results/embeddings/{model}/meta.json", model=MODELS),
        categories=expand(
            "results/tags/{weighting}/categories.csv", weighting=WEIGHTINGS
        ),
        rejects="results/catalogue/rejects.csv",
    output:
        "results/summary.csv",
    log:
        "logs/summary.log",
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        models=config["models"],
    script:
        "../scripts/summary.py"

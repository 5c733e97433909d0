rule summary:
    input:
        scores=score_files(".json"),
        metas=expand("results/embeddings/{model}/meta.json", model=MODELS),
        categories=expand(
            "results/tags/{weighting}/categories.csv", weighting=WEIGHTINGS
        ),
        ingest_report="results/catalogue/report.json",
        rankings=diagnostics_rankings(),
        retrieval=diagnostics_retrieval_tables(),
        deployment=deployment_outputs().get("deployment_csv", []),
    output:
        report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        "logs/summary.log",
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        models=canonical(MODEL_SPECS),
    script:
        "../scripts/summary.py"

rule demo_catalogue:
    output:
        manifest=f"{DEMO}/manifest.csv",
        interactions=f"{DEMO}/interactions.csv",
        images=directory(f"{DEMO}/images"),
    log:
        "logs/demo_catalogue.log",
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        demo=canonical(config["demo"]),
    script:
        "../scripts/demo_catalogue.py"


rule ingest:
    input:
        unpack(ingest_inputs),
    output:
        images="results/catalogue/images.parquet",
        tags="results/catalogue/tags.parquet",
        rejects="results/catalogue/rejects.csv",
        report="results/catalogue/report.json",
    log:
        "logs/ingest.log",
    benchmark:
        "logs/ingest.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    # On a cluster, a job with ingest.threads cores and ingest.resources (mem_mb, runtime).
    threads: config["ingest"]["threads"]
    resources:
        mem_mb=config["ingest"]["resources"]["mem_mb"],
        runtime=config["ingest"]["resources"]["runtime"],
    params:
        catalogue=canonical(config["catalogue"]),
    script:
        "../scripts/ingest.py"

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
    threads: 4
    params:
        catalogue=canonical(config["catalogue"]),
    script:
        "../scripts/ingest.py"

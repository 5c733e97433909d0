rule demo_catalogue:
    output:
        manifest=f"{DEMO}/manifest.csv",
        interactions=f"{DEMO}/interactions.csv",
        images=directory(f"{DEMO}/images"),
    params:
        demo=config["demo"],
    log:
        "logs/demo_catalogue.log",
    conda:
        "../../envs/corrembed.yaml"
    script:
        "../scripts/demo_catalogue.py"


rule ingest:
    input:
        unpack(ingest_inputs),
    output:
        images="results/catalogue/images.parquet",
        tags="results/catalogue/tags.parquet",
        rejects="results/catalogue/rejects.csv",
    params:
        catalogue=config["catalogue"],
    threads: 4
    log:
        "logs/ingest.log",
    conda:
        "../../envs/corrembed.yaml"
    script:
        "../scripts/ingest.py"

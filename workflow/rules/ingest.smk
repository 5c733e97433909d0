rule demo_catalogue:
    output:
        manifest=f"{DEMO}/manifest.csv",
        interactions=f"{DEMO}/interactions.csv",
        images=directory(f"{DEMO}/images"),
    log:
        "logs/demo_catalogue.log",
    conda:
        "../../envs/corrembed.yaml"
    params:
        demo=config["demo"],
    script:
        "../scripts/demo_catalogue.py"


rule ingest:
    input:
        unpack(ingest_inputs),
    output:
        images="results/catalogue/images.parquet",
        tags="results/catalogue/tags.parquet",
        rejects="results/catalogue/rejects.csv",
    log:
        "logs/ingest.log",
    conda:
        "../../envs/corrembed.yaml"
    threads: 4
    params:
        catalogue=config["catalogue"],
    script:
        "../scripts/ingest.py"

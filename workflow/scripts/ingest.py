"""Rule ingest: manifest -> normalized catalogue (images, tags, rejects) and report.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.ingest import IngestOptions, ingest_catalogue
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], "ingest") as log:
    report = ingest_catalogue(
        snakemake.input.manifest,
        images_out=snakemake.output.images,
        tags_out=snakemake.output.tags,
        rejects_out=snakemake.output.rejects,
        options=IngestOptions.from_config(snakemake.params.catalogue),
        threads=snakemake.threads,
    )
    for line in report.warnings():
        log.warning("%s", line)
    log.info("ingest: %d items, %d images kept; report: %s", report.n_items, report.n_images, snakemake.output.report)
    report.write(snakemake.output.report)

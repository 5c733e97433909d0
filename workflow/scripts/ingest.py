"""Rule ingest: manifest -> normalized catalogue (images, tags, rejects) and report.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.ingest.jobs import ingest_job
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], "ingest") as log:
    ingest_job(
        snakemake.input.manifest,
        images_out=snakemake.output.images,
        tags_out=snakemake.output.tags,
        rejects_out=snakemake.output.rejects,
        report_out=snakemake.output.report,
        catalogue=snakemake.params.catalogue,
        threads=snakemake.threads,
        log=log,
    )

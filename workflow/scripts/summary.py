"""Rule summary: results/summary.csv, one row per model x layer x weighting (logic: corrembed.summary.jobs)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.joblog import job_logging
from corrembed.summary.jobs import summary_job

with job_logging(snakemake.log[0], "summary") as log:
    summary_job(
        snakemake.output[0],
        scores=snakemake.input.scores,
        metas=snakemake.input.metas,
        categories=snakemake.input.categories,
        ingest_report=snakemake.input.ingest_report,
        rankings=snakemake.input.get("rankings", []),
        retrieval=snakemake.input.get("retrieval", []),
        deployment=snakemake.input.get("deployment") or None,
        models=snakemake.params.models,
        log=log,
    )

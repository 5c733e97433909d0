"""Rule diagnostics_best_vs_worst: the same queries' neighbours under the best and the worst model."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.jobs import best_vs_worst_job
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"diagnostics_best_vs_worst[{snakemake.wildcards.weighting}]") as log:
    best_vs_worst_job(
        snakemake.input.ranking,
        snakemake.input.neighbours,
        snakemake.input.vectors,
        snakemake.input.images,
        out=snakemake.output[0],
        models=snakemake.params.models,
        weighting=snakemake.wildcards.weighting,
        log=log,
    )

"""Rule diagnostics_scores: per-attribute CorrEmbed and retrieval metrics on the score's anchors."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.jobs import scores_job
from corrembed.joblog import job_logging

model, weighting = snakemake.wildcards.model, snakemake.wildcards.weighting
with job_logging(snakemake.log[0], f"diagnostics_scores[{model},{weighting}]") as log:
    scores_job(
        snakemake.input.shard,
        snakemake.input.vectors,
        snakemake.input.per_anchor,
        attributes_out=snakemake.output.attributes,
        retrieval_out=snakemake.output.retrieval,
        model=model,
        weighting=weighting,
        settings=snakemake.params.settings,
        scoring=snakemake.params.scoring,
        log=log,
    )

"""Rule diagnostics_model_figures: models x categories heatmap; CorrEmbed vs nDCG@k across models."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.jobs import model_figures_job
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"diagnostics_model_figures[{snakemake.wildcards.weighting}]"):
    model_figures_job(
        snakemake.input.ranking,
        snakemake.input.attributes,
        snakemake.input.retrieval,
        heatmap_out=snakemake.output.heatmap,
        scatter_out=snakemake.output.scatter,
        weighting=snakemake.wildcards.weighting,
    )

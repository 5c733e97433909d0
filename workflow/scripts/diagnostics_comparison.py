"""Rule diagnostics_comparison: paired bootstrap between every pair of models, ranks, tied sets, plot."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.jobs import comparison_job
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"diagnostics_comparison[{snakemake.wildcards.weighting}]") as log:
    comparison_job(
        snakemake.input.per_anchor,
        models=snakemake.params.models,
        ranking_out=snakemake.output.ranking,
        pairs_out=snakemake.output.pairs,
        plot_out=snakemake.output.plot,
        settings=snakemake.params.comparison,
        scoring=snakemake.params.scoring,
        log=log,
    )

"""Rule deployment: results/deployment.csv, the recommendation and the Pareto figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.deployment.stages import run_study
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], "deployment") as log:
    files = snakemake.input.variants
    table = run_study(
        variant_files=list(zip(files[0::2], files[1::2])),
        metas={Path(p).parent.name: p for p in snakemake.input.metas},
        model_specs=snakemake.params.models,
        categories={Path(p).parent.name: p for p in snakemake.input.categories},
        comparison=snakemake.params.comparison,
        scoring=snakemake.params.scoring,
        csv_path=snakemake.output.csv,
        recommendation_path=snakemake.output.recommendation,
        bytes_figure=snakemake.output.bytes_figure,
        speed_figure=snakemake.output.speed_figure,
    )
    log.info("deployment:\n%s", table)

"""Rule diagnostics_report: one self-contained HTML page with every table and figure."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.workflow_report import build_workflow_report
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], "diagnostics_report"):
    build_workflow_report(
        snakemake.output[0],
        summary_csv=snakemake.input.summary,
        headline_png=snakemake.input.headline,
        root=Path(snakemake.output[0]).parent,
        models=snakemake.params.models,
        weightings=snakemake.params.weightings,
    )

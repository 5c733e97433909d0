"""Rule diagnostics_report: one self-contained HTML page with every table and figure."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.deployment.report import deployment_section
from corrembed.diagnostics.workflow_report import build_workflow_report
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], "diagnostics_report"):
    inputs = snakemake.input
    extra = []
    if inputs.get("deployment_csv"):  # the deployment study's section, when it ran
        extra.append(
            deployment_section(
                inputs.deployment_csv,
                inputs.deployment_recommendation,
                inputs.deployment_bytes_figure,
                inputs.deployment_speed_figure,
            )
        )
    build_workflow_report(
        snakemake.output[0],
        summary_csv=snakemake.input.summary,
        headline_png=snakemake.input.headline,
        root=Path(snakemake.output[0]).parent,
        models=snakemake.params.models,
        weightings=snakemake.params.weightings,
        extra_sections=extra,
    )

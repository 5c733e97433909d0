"""Rule diagnostics_audit: tag audit with the consensus models' neighbours (tag_audit.csv, confusions, sheet)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.audit_stage import write_tag_audit
from corrembed.joblog import job_logging

models, weightings = snakemake.params.models, snakemake.params.weightings
with job_logging(snakemake.log[0], "diagnostics_audit"):
    write_tag_audit(
        shards=dict(zip(models, snakemake.input.shards)),
        vectors=snakemake.input.vectors,
        images=snakemake.input.images,
        rankings=dict(zip(weightings, snakemake.input.rankings)),
        categories=dict(zip(weightings, snakemake.input.categories)),
        settings=snakemake.params.settings,
        item_embedding=snakemake.params.item_embedding,
        table_path=snakemake.output.table,
        confusions_path=snakemake.output.confusions,
        sheet_path=snakemake.output.sheet,
    )

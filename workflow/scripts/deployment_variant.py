"""Rule deployment_variant: one variant of one model scored on the score's anchors (cached like a score)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.deployment.stages import run_variant
from corrembed.joblog import job_logging

model, variant = snakemake.wildcards.model, snakemake.wildcards.variant
weightings = snakemake.params.weightings
with job_logging(snakemake.log[0], f"deployment_variant[{model},{variant}]") as log:
    scores = run_variant(
        model=model,
        variant=variant,
        shard=snakemake.input.shard,
        vectors=dict(zip(weightings, snakemake.input.vectors)),
        per_anchor=dict(zip(weightings, snakemake.input.per_anchor)),
        basis=snakemake.input.get("basis"),
        settings=snakemake.params.settings,
        scoring=snakemake.params.scoring,
        table_path=snakemake.output.table,
        record_path=snakemake.output.record,
    )
    log.info("%s %s: %s", model, variant, "skipped" if scores is None else f"{scores.bytes_per_item} B/item")

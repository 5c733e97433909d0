"""Rule diagnostics_agreement: debiased CKA and mutual k-NN for every pair of models, and the heatmap."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.audit_stage import write_model_agreement
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], "diagnostics_agreement"):
    write_model_agreement(
        shards=dict(zip(snakemake.params.models, snakemake.input.shards)),
        vectors=snakemake.input.vectors,
        settings=snakemake.params.settings,
        item_embedding=snakemake.params.item_embedding,
        seed=snakemake.params.seed,
        table_path=snakemake.output.table,
        heatmap_path=snakemake.output.heatmap,
    )

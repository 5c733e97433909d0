"""Rule diagnostics_map: 2-D t-SNE map of one model's item embeddings (seeded subsample)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.jobs import map_job
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"diagnostics_map[{snakemake.wildcards.model}]") as log:
    map_job(
        snakemake.input.shard,
        snakemake.input.vectors,
        out=snakemake.output[0],
        model=snakemake.wildcards.model,
        settings=snakemake.params.map,
        seed=snakemake.params.seed,
        item_embedding=snakemake.params.item_embedding,
        threads=snakemake.threads,
        log=log,
    )

"""Rule diagnostics_neighbours: seeded stratified queries, their exact top-k neighbours, the sheet."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.jobs import neighbours_job
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"diagnostics_neighbours[{snakemake.wildcards.model}]") as log:
    neighbours_job(
        snakemake.input.shard,
        snakemake.input.vectors,
        snakemake.input.images,
        table_out=snakemake.output.table,
        sheet_out=snakemake.output.sheet,
        model=snakemake.wildcards.model,
        settings=snakemake.params.settings,
        item_embedding=snakemake.params.item_embedding,
        log=log,
    )

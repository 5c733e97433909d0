"""Rule merge_embeddings: a model's shards -> results/embeddings/{model}/part-00000.parquet + meta.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.embed.jobs import merge_shards_job
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"merge_embeddings[{snakemake.wildcards.model}]") as log:
    merge_shards_job(snakemake.input.images, list(snakemake.input.shards), Path(snakemake.output.shard).parent, log=log)

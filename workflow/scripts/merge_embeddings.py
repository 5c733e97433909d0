"""Rule merge_embeddings: a model's shards -> results/embeddings/{model}/part-00000.parquet + meta.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.embed import merge_embedding_shards
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"merge_embeddings[{snakemake.wildcards.model}]") as log:
    meta = merge_embedding_shards(
        pl.read_parquet(snakemake.input.images, columns=["item_id", "image"]),
        list(snakemake.input.shards),
        Path(snakemake.output.shard).parent,
    )
    log.info(
        "%s: %d images from %d shard(s): %d embedded, %d from the cache",
        meta["model"],
        meta["n_images"],
        meta["shards"],
        meta["n_embedded"],
        meta["n_from_cache"],
    )

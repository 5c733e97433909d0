"""Rule precomputed_embeddings: a precomputed model's embeddings file, checked, as the embed outputs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.embed.precomputed import write_precomputed_embeddings
from corrembed.joblog import job_logging

model = snakemake.wildcards.model
with job_logging(snakemake.log[0], f"precomputed_embeddings[{model}]") as log:
    meta = write_precomputed_embeddings(
        pl.read_parquet(snakemake.input.images, columns=["item_id", "image"]),
        snakemake.params.spec,
        Path(snakemake.output.shard).parent,
        model_name=model,
    )
    counts = meta["precomputed"]
    log.info(
        "%s: %d-d rows for %d of %d catalogue images from %s; %d image(s) without a row set aside; "
        "%d id(s) of the file not in the catalogue",
        model,
        meta["dim"],
        meta["n_images"] - len(meta["images_set_aside"]),
        meta["n_images"],
        counts["file"],
        len(meta["images_set_aside"]),
        counts["n_unknown_ids"],
    )

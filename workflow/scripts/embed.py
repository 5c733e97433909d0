"""Rule embed: one model's embeddings of every catalogue image (Parquet shard + meta.json).

Run settings (batch size, workers, device) come from ``config["embed"]``, not params: they
cannot change the embedding, so changing them must not re-embed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.embed import embed_images
from corrembed.joblog import job_logging

model = snakemake.wildcards.model
run = snakemake.config["embed"]
with job_logging(snakemake.log[0], f"embed[{model}]") as log:
    meta = embed_images(
        pl.read_parquet(snakemake.input.images, columns=["item_id", "image"]),
        snakemake.params.spec,
        Path(snakemake.output.shard).parent,
        model_name=model,
        torch_home=snakemake.params.torch_home,
        batch_size=run["batch_size"],
        num_workers=min(run["num_workers"], max(snakemake.threads - 1, 0)),
        device=run["device"],
        progress=log,
    )
    log.info("%s: %d images, %.1f images/s on %s", model, meta["n_images"],
             meta["images_per_second"], meta["device"])

"""Rule diagnostics_map: 2-D t-SNE map of one model's item embeddings (seeded subsample)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.diagnostics.embedding_map import embedding_map
from corrembed.diagnostics.inputs import load_model_inputs
from corrembed.joblog import job_logging
from corrembed.storage import write_table

settings, model = snakemake.params.map, snakemake.wildcards.model
with job_logging(snakemake.log[0], f"diagnostics_map[{model}]") as log:
    inputs = load_model_inputs(snakemake.input.shard, snakemake.input.vectors, snakemake.params.item_embedding)
    result = embedding_map(
        inputs.embeddings,
        max_points=settings["max_points"],
        seed=snakemake.params.seed,
        perplexity=settings["perplexity"],
        pca_dims=settings["pca_dims"],
        n_jobs=snakemake.threads,
    )
    log.info("%s: mapped %d of %d items", model, result.items.size, len(inputs.item_ids))
    table = pl.DataFrame({"item_id": inputs.item_ids[result.items], "x": result.xy[:, 0], "y": result.xy[:, 1]})
    write_table(snakemake.output[0], table)

"""Rule tags: weighted tag vectors and the category weight table for one weighting."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.ingest import read_catalogue, read_interactions
from corrembed.joblog import job_logging
from corrembed.storage import write_table
from corrembed.tags import category_table, save_tag_vectors, tag_vectors

settings = snakemake.params.tags
weighting = snakemake.wildcards.weighting
with job_logging(snakemake.log[0], f"tags[{weighting}]") as log:
    images, tags = read_catalogue(snakemake.input.images, snakemake.input.tags)
    excluded = set(settings["exclude_categories"])
    tags = tags.filter(~pl.col("category").is_in(list(excluded)))
    item_ids = images["item_id"].unique(maintain_order=True).to_list()
    interactions = None
    if "interactions" in snakemake.input.keys():
        interactions, n_unknown = read_interactions(snakemake.input.interactions, item_ids)
        if n_unknown:
            log.warning("%d interactions name items not in the catalogue: ignored", n_unknown)
    table = category_table(
        tags,
        item_ids,
        weighting,
        interactions=interactions,
        min_user_interactions=settings["min_user_interactions"],
    )
    log.info("category weights (%s):\n%s", weighting, table)
    weights = dict(zip(table["category"], table["weight"]))
    vectors = tag_vectors(tags, item_ids, weights)
    log.info("%d items x %d tag slots, %d non-zeros", *vectors.matrix.shape, vectors.matrix.nnz)
    save_tag_vectors(snakemake.output.vectors, vectors)
    write_table(snakemake.output.categories, table)

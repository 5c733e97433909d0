"""Rule tags: weighted tag vectors and the category weight table for one weighting."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.ingest import read_catalogue, read_interactions
from corrembed.joblog import job_logging
from corrembed.storage import write_table
from corrembed.tags import category_table, save_tag_vectors, tag_vectors, user_counts

settings = snakemake.params.tags
weighting = snakemake.wildcards.weighting
with job_logging(snakemake.log[0], f"tags[{weighting}]") as log:
    images, tags = read_catalogue(snakemake.input.images, snakemake.input.tags)
    excluded = set(settings["exclude_categories"])
    tags = tags.filter(~pl.col("category").is_in(list(excluded)))
    item_ids = images["item_id"].unique(maintain_order=True).to_list()
    interactions = None
    if "interactions" in snakemake.input.keys():
        log_path = snakemake.input.interactions
        interactions, n_unknown, unknown_examples, n_rows = read_interactions(log_path, item_ids)
        if n_rows == 0:
            log.warning("interactions log %s is EMPTY (no rows)", log_path)
        if n_unknown:
            log.warning(
                "%d of %d interactions name items not in the catalogue (e.g. %s): ignored",
                n_unknown,
                n_rows,
                ", ".join(map(repr, unknown_examples)),
            )
        counts = user_counts(interactions, settings["min_user_interactions"])
        log.info(
            "interactions: %d users, %d with more than %d interactions count, %d below the "
            "threshold are not used for weights",
            counts["n_users"],
            counts["n_qualifying"],
            settings["min_user_interactions"],
            counts["n_below_threshold"],
        )
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

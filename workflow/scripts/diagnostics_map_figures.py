"""Rule diagnostics_map_figures: the map coloured by a category, and its thumbnail collage."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import numpy as np
import polars as pl

from corrembed.diagnostics.categories import primary_value
from corrembed.diagnostics.figures import map_collage, map_scatter
from corrembed.diagnostics.inputs import choose_category, item_images, load_tags
from corrembed.joblog import job_logging

settings, model = snakemake.params.settings, snakemake.wildcards.model
with job_logging(snakemake.log[0], f"diagnostics_map_figures[{model}]"):
    points = pl.read_parquet(snakemake.input.map)
    tags = load_tags(snakemake.input.vectors)
    category = choose_category(settings["category"], tags)
    row_of = {item: i for i, item in enumerate(tags.item_ids.tolist())}
    rows = np.array([row_of[i] for i in points["item_id"].to_list()], dtype=np.int64)
    xy = np.column_stack([points["x"].to_numpy(), points["y"].to_numpy()])
    labels = primary_value(tags.matrix, tags.slot_category, tags.slot_value, category)[rows]
    map_scatter(
        snakemake.output.scatter,
        xy,
        labels,
        category=category,
        title=f"{model}: t-SNE map of {len(rows)} items, coloured by {category}",
    )
    images = item_images(snakemake.input.images, tags.item_ids)[rows]
    grid = settings["collage_grid"]
    map_collage(
        snakemake.output.collage,
        xy,
        images,
        grid=grid,
        title=f"{model}: the same map as thumbnails (one item per cell of a {grid} x {grid} grid)",
    )

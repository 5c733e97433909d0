"""Rule diagnostics_best_vs_worst: the same queries' neighbours under the best and the worst model."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.diagnostics.categories import all_item_values
from corrembed.diagnostics.figures import neighbour_sheet
from corrembed.diagnostics.inputs import item_images, load_tags, read_neighbour_table
from corrembed.joblog import job_logging

weighting = snakemake.wildcards.weighting
with job_logging(snakemake.log[0], f"diagnostics_best_vs_worst[{weighting}]") as log:
    ranking = pl.read_csv(snakemake.input.ranking)
    best, worst = ranking["model"][0], ranking["model"][-1]
    files = dict(zip(snakemake.params.models, snakemake.input.neighbours))
    tables = {m: pl.read_parquet(files[m]) for m in dict.fromkeys([best, worst])}
    shared = set(tables[best]["query"]) & set(tables[worst]["query"])
    tables = {m: t.filter(pl.col("query").is_in(shared)) for m, t in tables.items()}
    log.info("best %s, worst %s, %d shared queries", best, worst, len(shared))
    tags = load_tags(snakemake.input.vectors)
    panels, queries = [], None
    for model, table in tables.items():
        order = tables[best]["query"].unique(maintain_order=True).to_list()
        table = table.sort(pl.col("query").replace_strict(order, list(range(len(order)))), "rank")
        nb = read_neighbour_table(table, tags.item_ids)
        queries = nb.queries
        label = f"best: {model}" if model == best else f"worst: {model}"
        panels.append((label, nb.indices, nb.similarities))
    neighbour_sheet(
        snakemake.output[0],
        queries,
        panels,
        item_images(snakemake.input.images, tags.item_ids),
        all_item_values(tags.matrix, tags.slot_category, tags.slot_value),
        title=f"Same queries, best vs worst model by CorrEmbed ({weighting}): left {best}, right {worst}",
    )

"""Rule diagnostics_neighbours: seeded stratified queries, their exact top-k neighbours, the sheet."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.categories import all_item_values, has_tags, primary_value
from corrembed.diagnostics.figures import neighbour_sheet
from corrembed.diagnostics.inputs import choose_category, item_images, load_model_inputs, neighbour_table
from corrembed.diagnostics.neighbours import stratified_queries, top_k_neighbours
from corrembed.joblog import job_logging
from corrembed.storage import write_table

settings, model = snakemake.params.settings, snakemake.wildcards.model
with job_logging(snakemake.log[0], f"diagnostics_neighbours[{model}]") as log:
    inputs = load_model_inputs(snakemake.input.shard, snakemake.input.vectors, snakemake.params.item_embedding)
    tags = inputs.tags
    category = choose_category(settings["category"], tags)
    values = primary_value(tags.matrix, tags.slot_category, tags.slot_value, category)
    queries = stratified_queries(values, settings["queries"], settings["seed"], eligible=has_tags(tags.matrix))
    k = min(settings["neighbours"], len(inputs.item_ids) - 1)
    neighbours = top_k_neighbours(inputs.embeddings, queries, k)
    log.info("%s: %d queries stratified by %s, top %d neighbours", model, queries.size, category, k)
    write_table(snakemake.output.table, neighbour_table(neighbours, inputs.item_ids))
    neighbour_sheet(
        snakemake.output.sheet,
        queries,
        [(model, neighbours.indices, neighbours.similarities)],
        item_images(snakemake.input.images, inputs.item_ids),
        all_item_values(tags.matrix, tags.slot_category, tags.slot_value),
        title=f"{model}: nearest neighbours of {queries.size} queries (one per {category} value, in turn)",
    )

"""What the diagnostics rules run: a rule script reads ``snakemake.*`` and calls one function here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from ..embed.layer_sweep import embed_layer_sweep
from ..embed.settings import run_settings
from ..models import parse_model_spec
from ..storage import write_table
from ..tags import load_tag_vectors
from .attributes import attribute_scores
from .categories import all_item_values, has_tags, primary_value
from .comparison import align_per_anchor, compare_models
from .embedding_map import embedding_map
from .figures import (
    attribute_heatmap,
    comparison_plot,
    corrembed_vs_ndcg,
    layer_sweep_plot,
    map_collage,
    map_scatter,
    neighbour_sheet,
)
from .inputs import (
    choose_category,
    item_images,
    load_model_inputs,
    load_tags,
    neighbour_table,
    read_neighbour_table,
    score_anchors,
)
from .layers import layer_scores
from .neighbours import stratified_queries, top_k_neighbours
from .retrieval import retrieval_scores


def layer_sweep_job(
    images_path: str | os.PathLike,
    *,
    model: str,
    params: Mapping[str, Any],
    vectors_paths: Sequence[str | os.PathLike],
    per_anchor_paths: Sequence[str | os.PathLike],
    table_out: str | os.PathLike,
    plot_out: str | os.PathLike,
    run: Mapping[str, Any],
    threads: int,
    log: logging.Logger,
    hf_home: str | os.PathLike | None = None,
) -> pl.DataFrame:
    """A model's layer sweep: embed every ``layers:`` entry in one pass (cached per layer), score
    each on the headline anchors (:func:`corrembed.diagnostics.layers.layer_scores`), write the
    table and its plot.

    ``params``: the rule's spec, layers, torch_home, precision, decoder, weightings (in the order
    of ``vectors_paths`` and ``per_anchor_paths``) and scoring; ``run``: config ``embed``.
    """
    spec = parse_model_spec(params["spec"], model_name=model)
    images = pl.read_parquet(images_path)
    sweep = embed_layer_sweep(
        images.select([c for c in ("item_id", "image", "sha256") if c in images.columns]),
        spec,
        params["layers"],
        torch_home=params["torch_home"],
        hf_home=hf_home,
        cache_dir=run.get("cache", "results/cache/embeddings"),
        precision=params["precision"],
        decoder=params["decoder"],
        settings=run_settings(run, threads),
        progress=log,
    )
    log.info("%s layer sweep embedding: %s", model, {k: v for k, v in sweep.meta.items() if k != "images_set_aside"})
    weightings = params["weightings"]
    tags = {w: load_tag_vectors(path) for w, path in zip(weightings, vectors_paths)}
    anchors = {
        w: pl.read_parquet(path, columns=["item_id"])["item_id"].to_list()
        for w, path in zip(weightings, per_anchor_paths)
    }
    table = layer_scores(
        sweep.plan.layers,
        sweep.plan.entries,
        sweep.plan.depth,
        sweep.embeddings,
        tags,
        anchors,
        params["scoring"],
        headline_layer=spec.layer,
    ).with_columns(model=pl.lit(model))
    log.info("%s layer sweep:\n%s", model, table)
    write_table(table_out, table)
    layer_sweep_plot(plot_out, table, model=model)
    return table


def scores_job(
    shard, vectors, per_anchor, *, attributes_out, retrieval_out, model: str, weighting: str, settings, scoring, log
) -> None:
    """Per-attribute CorrEmbed and retrieval metrics of one model x weighting, on the score's anchors."""
    inputs = load_model_inputs(shard, vectors, scoring["item_embedding"])
    tags = inputs.tags
    anchors = score_anchors(per_anchor, inputs)
    attributes = attribute_scores(
        inputs.embeddings,
        tags.matrix,
        tags.slot_category,
        anchors=anchors,
        include_self=scoring["include_self"],
        memory_budget_mb=scoring["memory_budget_mb"],
    )
    log.info("%s / %s per attribute:\n%s", model, weighting, attributes)
    write_table(attributes_out, attributes.with_columns(model=pl.lit(model), weighting=pl.lit(weighting)))
    k = min(settings["retrieval_k"], len(inputs.item_ids) - 1)
    retrieval = retrieval_scores(
        inputs.embeddings,
        tags.matrix,
        tags.slot_category,
        anchors,
        k=k,
        categories=settings["retrieval_categories"],
    ).summary(resamples=max(scoring["bootstrap"], 1), confidence=scoring["confidence"], seed=settings["seed"])
    log.info("%s / %s retrieval:\n%s", model, weighting, retrieval)
    write_table(retrieval_out, retrieval.with_columns(model=pl.lit(model), weighting=pl.lit(weighting)))


def neighbours_job(shard, vectors, images, *, table_out, sheet_out, model: str, settings, item_embedding, log) -> None:
    """Seeded stratified queries of one model, their exact top-k neighbours (table) and the sheet."""
    inputs = load_model_inputs(shard, vectors, item_embedding)
    tags = inputs.tags
    category = choose_category(settings["category"], tags)
    values = primary_value(tags.matrix, tags.slot_category, tags.slot_value, category)
    queries = stratified_queries(values, settings["queries"], settings["seed"], eligible=has_tags(tags.matrix))
    k = min(settings["neighbours"], len(inputs.item_ids) - 1)
    neighbours = top_k_neighbours(inputs.embeddings, queries, k)
    log.info("%s: %d queries stratified by %s, top %d neighbours", model, queries.size, category, k)
    write_table(table_out, neighbour_table(neighbours, inputs.item_ids))
    neighbour_sheet(
        sheet_out,
        queries,
        [(model, neighbours.indices, neighbours.similarities)],
        item_images(images, inputs.item_ids),
        all_item_values(tags.matrix, tags.slot_category, tags.slot_value),
        title=f"{model}: nearest neighbours of {queries.size} queries (one per {category} value, in turn)",
    )


def map_job(shard, vectors, *, out, model: str, settings, seed: int, item_embedding, threads: int, log) -> None:
    """A 2-D t-SNE map of one model's item embeddings (seeded subsample): item_id, x, y."""
    inputs = load_model_inputs(shard, vectors, item_embedding)
    result = embedding_map(
        inputs.embeddings,
        max_points=settings["max_points"],
        seed=seed,
        perplexity=settings["perplexity"],
        pca_dims=settings["pca_dims"],
        n_jobs=threads,
    )
    log.info("%s: mapped %d of %d items", model, result.items.size, len(inputs.item_ids))
    table = pl.DataFrame({"item_id": inputs.item_ids[result.items], "x": result.xy[:, 0], "y": result.xy[:, 1]})
    write_table(out, table)


def map_figures_job(map_path, vectors, images, *, scatter_out, collage_out, model: str, settings) -> None:
    """The map coloured by a category, and its thumbnail collage."""
    points = pl.read_parquet(map_path)
    tags = load_tags(vectors)
    category = choose_category(settings["category"], tags)
    row_of = {item: i for i, item in enumerate(tags.item_ids.tolist())}
    rows = np.array([row_of[i] for i in points["item_id"].to_list()], dtype=np.int64)
    xy = np.column_stack([points["x"].to_numpy(), points["y"].to_numpy()])
    labels = primary_value(tags.matrix, tags.slot_category, tags.slot_value, category)[rows]
    map_scatter(
        scatter_out,
        xy,
        labels,
        category=category,
        title=f"{model}: t-SNE map of {len(rows)} items, coloured by {category}",
    )
    grid = settings["collage_grid"]
    map_collage(
        collage_out,
        xy,
        item_images(images, tags.item_ids)[rows],
        grid=grid,
        title=f"{model}: the same map as thumbnails (one item per cell of a {grid} x {grid} grid)",
    )


def comparison_job(per_anchor_paths, *, models, ranking_out, pairs_out, plot_out, settings, scoring, log) -> None:
    """Paired bootstrap between every pair of models (one weighting): ranking, pairs and plot."""
    tables = {m: pl.read_parquet(p) for m, p in zip(models, per_anchor_paths)}
    ids, per_anchor = align_per_anchor(tables)
    if any(len(ids) != t.height for t in tables.values()):
        log.warning("models differ in their anchors; comparing on the %d anchors they share", len(ids))
    result = compare_models(
        per_anchor,
        resamples=max(scoring["bootstrap"], 1),
        confidence=scoring["confidence"],
        alpha=settings["alpha"],
        correction=settings["correction"],
        seed=scoring["seed"],
    )
    log.info("ranking:\n%s\npairs:\n%s", result.ranking, result.pairs)
    write_table(ranking_out, result.ranking.with_columns(tied_with=pl.col("tied_with").list.join(";")))
    write_table(pairs_out, result.pairs)
    comparison_plot(plot_out, result.ranking, result.pairs)


def model_figures_job(ranking_path, attributes_paths, retrieval_paths, *, heatmap_out, scatter_out, weighting) -> None:
    """The models x categories heatmap and CorrEmbed against nDCG@k across models (one weighting)."""
    ranking = pl.read_csv(ranking_path)
    order = ranking["model"].to_list()
    attributes = pl.concat([pl.read_csv(p) for p in attributes_paths])
    attributes = attributes.sort(pl.col("model").replace_strict(order, list(range(len(order)))))
    attribute_heatmap(heatmap_out, attributes, title=f"What each model captures ({weighting} tag vectors)")
    ndcg = pl.concat([pl.read_csv(p) for p in retrieval_paths]).filter(pl.col("metric") == "ndcg")
    k = int(ndcg["k"][0])
    table = ranking.join(
        ndcg.select("model", ndcg="mean", ndcg_low="ci_low", ndcg_high="ci_high"), on="model", how="inner"
    )
    corrembed_vs_ndcg(scatter_out, table, k=k)


def best_vs_worst_job(ranking_path, neighbours_paths, vectors, images, *, out, models, weighting, log) -> None:
    """The same queries' neighbours under the best and the worst model (by CorrEmbed), side by side."""
    ranking = pl.read_csv(ranking_path)
    best, worst = ranking["model"][0], ranking["model"][-1]
    files = dict(zip(models, neighbours_paths))
    tables = {m: pl.read_parquet(files[m]) for m in dict.fromkeys([best, worst])}
    shared = set(tables[best]["query"]) & set(tables[worst]["query"])
    tables = {m: t.filter(pl.col("query").is_in(shared)) for m, t in tables.items()}
    log.info("best %s, worst %s, %d shared queries", best, worst, len(shared))
    tags = load_tags(vectors)
    panels, queries = [], None
    for model, table in tables.items():
        order = tables[best]["query"].unique(maintain_order=True).to_list()
        table = table.sort(pl.col("query").replace_strict(order, list(range(len(order)))), "rank")
        nb = read_neighbour_table(table, tags.item_ids)
        queries = nb.queries
        label = f"best: {model}" if model == best else f"worst: {model}"
        panels.append((label, nb.indices, nb.similarities))
    neighbour_sheet(
        out,
        queries,
        panels,
        item_images(images, tags.item_ids),
        all_item_values(tags.matrix, tags.slot_category, tags.slot_value),
        title=f"Same queries, best vs worst model by CorrEmbed ({weighting}): left {best}, right {worst}",
    )

"""The workflow's diagnostics report: which tables and figures, in what order, with which captions.

Reads the files the diagnostics rules write (layout below, relative to ``root``) and writes one
self-contained HTML page with :func:`corrembed.diagnostics.report.write_report`:

- ``models/{model}/neighbours.png``, ``map.png``, ``collage.png``; ``layers.csv``, ``layers.png``
  for a model with a layer sweep
- ``models/{model}/{weighting}.attributes.csv``, ``{weighting}.retrieval.csv``
- ``comparison/{weighting}/ranking.csv``, ``pairs.csv``, ``ranking.png``, ``attributes.png``,
  ``corrembed_vs_ndcg.png``, ``best_vs_worst.png``
- ``tag_audit.csv``, ``audit/*``, ``model_agreement.csv`` (:mod:`.audit_report`)
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from .audit_report import audit_sections
from .report import Figure, Section, Table, write_report

INTRO = (
    "This report explains the scores in <code>results/summary.csv</code>. <b>CorrEmbed</b> asks, for "
    "each of a set of anchor items, whether the items a model finds similar to it (cosine similarity "
    "of the model's image embeddings) are the items whose human tags are similar (cosine similarity "
    "of the tag vectors): the Pearson correlation of the two similarity rows. The score is the mean "
    "over anchors: 0 means no agreement (random or shuffled embeddings score about 0), higher is "
    "better. The sections below show <i>why</i> a model scores as it does: which tags it captures, "
    "what its nearest neighbours look like, whether its lead over the next model is real, and how "
    "CorrEmbed relates to retrieval metrics."
)

SUMMARY_COLUMNS = (
    "model",
    "weighting",
    "headline",
    "corrembed",
    "ci_low",
    "ci_high",
    "rank",
    "tied_with",
    "imagenet_acc1",
    "n_items",
    "n_anchors",
)


def _summary_section(summary: pl.DataFrame, headline_png) -> Section:
    shown = summary.select([c for c in SUMMARY_COLUMNS if c in summary.columns])
    return Section(
        "Summary",
        "One row per model and tag weighting. <i>headline</i> marks the weighting the project reports "
        "(interaction-learned entropy weights when an interactions log exists, else binary tags); "
        "<i>ci_low</i>/<i>ci_high</i> bound a 95&nbsp;% bootstrap interval over anchors.",
        tables=[Table(shown, "CorrEmbed per model and weighting (all columns: results/summary.csv).")],
        figures=[
            Figure(
                headline_png,
                "CorrEmbed against ImageNet accuracy",
                "Each point is a model with its 95 % interval; the line is a least-squares fit with its "
                "Pearson r; the grey band shows the controls (random, shuffled), which should be near 0.",
            )
        ],
    )


def _weighting_section(root: Path, weighting: str, models: list[str], is_headline: bool) -> Section:
    comp = root / "comparison" / weighting
    ranking = pl.read_csv(comp / "ranking.csv")
    pairs = pl.read_csv(comp / "pairs.csv")
    retrieval = pl.concat([pl.read_csv(root / "models" / m / f"{weighting}.retrieval.csv") for m in models])
    # One row per metric (and category), one column per model: "mean [low, high]".
    category = pl.col("category").cast(pl.String).fill_null("")
    labelled = retrieval.with_columns(
        metric=pl.when(category == "").then(pl.col("metric")).otherwise(pl.col("metric") + " " + category),
        value=pl.format("{} [{}, {}]", pl.col("mean").round(3), pl.col("ci_low").round(3), pl.col("ci_high").round(3)),
    )
    wide = labelled.pivot(on="model", index="metric", values="value", maintain_order=True)
    k = int(retrieval["k"][0])
    title = f"Comparing models ({weighting} tag vectors{', the headline' if is_headline else ''})"
    return Section(
        title,
        "Every pair of models is compared on the same anchors by a paired bootstrap: the difference of their "
        "CorrEmbed, its interval and a p-value (Benjamini-Hochberg corrected over all pairs unless configured "
        "otherwise). Models whose difference is not significant are <i>tied</i>.",
        tables=[
            Table(ranking, "Models ranked by CorrEmbed; tied_with lists the models each does not differ from."),
            Table(pairs, "Every pair: difference (model_a - model_b) with interval, p-value, adjusted p, tied."),
            Table(
                wide,
                f"Retrieval at k = {k}, mean [95 % interval] over the same anchors as queries: ndcg = "
                f"nDCG@{k} with the tag similarity as graded relevance; precision/map <category> = "
                f"precision@{k} and mAP@{k}, an item being relevant if it shares the query's value of that "
                f"category; recall = Recall@{k} (a relevant item among the first {k}); r_precision, map_at_r = "
                "R-precision and mAP@R (Musgrave et al. 2020, R = the number of relevant items); mrr = mean "
                "reciprocal rank of the first relevant item.",
            ),
        ],
        figures=[
            Figure(
                comp / "ranking.png",
                "Ranked models",
                "Bars: CorrEmbed with 95 % interval, best first. A bracket marked n.s. joins two models whose "
                "difference is not statistically significant: do not read their order as real.",
            ),
            Figure(
                comp / "attributes.png",
                "What each model captures, category by category",
                "Top: CorrEmbed computed with one tag category alone (e.g. only colour): high means the "
                "model's similarities follow that category (where each item has one value of it, as in a wide "
                "manifest, this is the same under every weighting: two items' similarity is then 1 or 0 "
                "whatever the weights). Bottom: how much the score drops when that category is left out "
                "of the tag vectors (negative: the category disagrees with the model).",
            ),
            Figure(
                comp / "corrembed_vs_ndcg.png",
                f"CorrEmbed vs nDCG@{k}",
                f"Each point is a model. If CorrEmbed and the retrieval metric nDCG@{k} rank models alike, the "
                "points rise together; the correlation across models is in the title.",
            ),
            Figure(
                comp / "best_vs_worst.png",
                "The same queries under the best and the worst model",
                "Each row is a query item (blue frame), then its nearest neighbours under the best model "
                "(left) and the worst (right). Under each image its tags; green ticks mark values it shares "
                "with the query, a green frame that all its tags match.",
            ),
        ],
    )


def _layer_sweep(folder: Path, model: str) -> tuple[list[Table], list[Figure]]:
    """The model's layer sweep table and plot, when it has one (config ``layers:``)."""
    if not (folder / "layers.csv").exists():
        return [], []
    table = pl.read_csv(folder / "layers.csv").select(
        "layer",
        "entry",
        "relative_depth",
        "dim",
        "weighting",
        "corrembed",
        "ci_low",
        "ci_high",
        "n_anchors",
        "headline",
    )
    best = table.sort("corrembed", descending=True).row(0, named=True)
    caption = (
        f"CorrEmbed at each layer of the sweep (config layers:), on the headline anchors; best: {best['layer']} "
        f"({best['weighting']}, {best['corrembed']:.3f}). headline marks the model's own layer (layer:), "
        "whose row equals the score above."
    )
    figure = Figure(
        folder / "layers.png",
        f"{model}: which layer?",
        "CorrEmbed of the embeddings taken at each listed layer (pooled over space), from the first blocks "
        "(left) to the output (right); the ringed point is the layer the headline score uses. A peak before "
        "the end means an earlier layer agrees more with the tags than the one used.",
    )
    return [Table(table, caption)], [figure]


def _model_section(root: Path, model: str) -> Section:
    folder = root / "models" / model
    sweep_tables, sweep_figures = _layer_sweep(folder, model)
    return Section(
        f"Model {model}",
        "",
        tables=sweep_tables,
        figures=[
            *sweep_figures,
            Figure(
                folder / "neighbours.png",
                f"{model}: nearest neighbours",
                "Each row: a query item (blue frame), then the items the model finds most similar, nearest "
                "first, with their cosine similarity and how many tag categories match the query's. Green "
                "ticks mark tag values shared with the query.",
            ),
            Figure(
                folder / "map.png",
                f"{model}: map of the embedding",
                "t-SNE places items that the model finds similar close together. Colours are one tag "
                "category: clean colour islands mean the model separates that category.",
            ),
            Figure(
                folder / "collage.png",
                f"{model}: the map as pictures",
                "The same map cut into a grid; each cell shows the item nearest its centre, so you can see "
                "what the model groups together (shape, colour, background, ...).",
            ),
        ],
    )


def build_workflow_report(
    path: str | os.PathLike,
    *,
    summary_csv: str | os.PathLike,
    headline_png: str | os.PathLike,
    root: str | os.PathLike,
    models: list[str],
    weightings: list[str],
    extra_sections: list[Section] = (),
) -> None:
    """Write the diagnostics report for ``models`` x ``weightings`` (files under ``root``) to ``path``;
    ``extra_sections`` (e.g. the deployment study's) follow the summary."""
    root = Path(root)
    summary = pl.read_csv(summary_csv)
    headline = (
        set(summary.filter(pl.col("headline"))["weighting"].to_list()) if "headline" in summary.columns else set()
    )
    ordered = sorted(weightings, key=lambda w: w not in headline)
    sections = [_summary_section(summary, headline_png), *extra_sections]
    sections += [_weighting_section(root, w, models, w in headline) for w in ordered]
    best_first = pl.read_csv(root / "comparison" / ordered[0] / "ranking.csv")["model"].to_list()
    sections += audit_sections(root)
    sections += [_model_section(root, m) for m in best_first if m in models]
    write_report(path, "CorrEmbed diagnostics", INTRO, sections)

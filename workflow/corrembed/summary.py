"""The results table: one row per model x layer x weighting (``results/summary.csv``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

SUMMARY_COLUMNS = (
    "model",
    "arch",
    "weights",
    "layer",
    "weighting",
    "weight_source",
    "headline",
    "corrembed",
    "ci_low",
    "ci_high",
    "allpairs_pearson",
    "anchor_spearman",
    "allpairs_spearman",
    "n_items",
    "n_anchors",
    "n_anchors_skipped",
    "control_random",
    "control_shuffled_embeddings",
    "control_shuffled_tags",
    "imagenet_acc1",
    "imagenet_acc5",
    "num_params",
    "gflops",
    "dim",
    "device",
    "images_per_second",
    "precision",
    "decoder",
    "channels_last",
    "compile",
    "n_rejected",
    "n_items_set_aside",
    "n_images_set_aside",
    "n_duplicate_images",
    "n_items_without_tags",
    "set_aside_by_kind",
    "n_excluded_embeddings",
    "n_excluded_items",
)

#: Columns filled from the ingest report (report.json) rather than from scores or meta.
INGEST_COLUMNS = {
    "n_items_set_aside": "n_dropped_items",
    "n_images_set_aside": "n_rejected_images",
    "n_duplicate_images": "n_duplicate_images",
    "n_items_without_tags": "n_items_without_tags",
}


def weight_source(categories: pl.DataFrame) -> str:
    """Where a weighting's weights came from: binary, interactions or catalogue."""
    sources = set(categories["source"].to_list())
    return sources.pop() if len(sources) == 1 else "mixed"


def headline_weighting(sources: dict[str, str]) -> str:
    """The weighting whose score is the headline (the one plotted).

    Entropy weights learned from interactions (the paper's method) when available; otherwise
    the binary vector, since catalogue entropy measures catalogue skew, not user consistency.
    """
    if sources.get("entropy") == "interactions":
        return "entropy"
    if "binary" in sources:
        return "binary"
    return next(iter(sources))


def summary_table(
    scores: list[dict],
    metas: dict[str, dict],
    imagenet: dict[str, dict],
    sources: dict[str, str],
    n_rejected: int,
    ingest_report: dict | None = None,
) -> pl.DataFrame:
    """Join scores with embedding metadata and ImageNet figures.

    scores: score records (each with ``model`` and ``weighting``; ``n_excluded_embeddings``
    and ``n_excluded_items`` when the score stage excluded unusable embeddings); metas: model
    -> meta.json; imagenet: model -> {acc1, acc5, num_params, gflops}; sources: weighting ->
    weight source; n_rejected: catalogue rows set aside by ingest; ingest_report: the ingest
    stage's report.json (counts of items/images set aside, duplicates, untagged items, and
    ``set_aside_by_kind``, written as ``"kind=count;..."``).
    """
    ingest_report = ingest_report or {}
    by_kind = ingest_report.get("set_aside_by_kind") or {}
    ingest_values = {
        column: ingest_report.get(key) for column, key in INGEST_COLUMNS.items()
    }
    ingest_values["set_aside_by_kind"] = ";".join(f"{k}={n}" for k, n in sorted(by_kind.items()))
    headline = headline_weighting(sources)
    rows = []
    for score in scores:
        model, weighting = score["model"], score["weighting"]
        meta, metrics = metas[model], imagenet[model]
        rows.append(
            {
                **{key: score.get(key) for key in SUMMARY_COLUMNS},
                "arch": meta["arch"],
                "weights": meta["weights"]["resolved"] or "random",
                "layer": meta["layer"],
                "weight_source": sources[weighting],
                "headline": weighting == headline,
                "imagenet_acc1": metrics.get("acc1"),
                "imagenet_acc5": metrics.get("acc5"),
                "num_params": metrics.get("num_params"),
                "gflops": metrics.get("gflops"),
                "dim": meta["dim"],
                "device": meta["device"],
                "images_per_second": meta.get("images_per_second"),
                # How the embeddings were computed (older meta.json files lack these).
                "precision": meta.get("precision", "fp32"),
                "decoder": meta.get("decoder", "pil"),
                "channels_last": meta.get("channels_last", False),
                "compile": meta.get("compile", False),
                "n_rejected": n_rejected,
                **ingest_values,
                "n_excluded_embeddings": score.get("n_excluded_embeddings", 0),
                "n_excluded_items": score.get("n_excluded_items", 0),
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None).select(SUMMARY_COLUMNS)


def read_scores(paths: list[str | os.PathLike]) -> list[dict]:
    """Score records written by the score stage."""
    return [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]

"""The results table: one row per model x layer x weighting (``results/summary.csv``).

Built from the stages' typed records (:mod:`corrembed.records`): each model's
:class:`~corrembed.records.EmbeddingMeta`, each score's :class:`~corrembed.records.ScoreRecord` and
ingest's :class:`~corrembed.records.CatalogueReport`, whose structured counts (``n_rejected``,
``set_aside_by_kind``, ...) give the catalogue columns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from ..records import CatalogueReport, EmbeddingMeta, ScoreRecord

SUMMARY_COLUMNS = (
    "model",
    "source",
    "arch",
    "weights",
    "layer",
    "weighting",
    "weight_source",
    "headline",
    "corrembed",
    "ci_low",
    "ci_high",
    # Filled from the diagnostics' paired model comparison (empty when diagnostics are off):
    # rank by CorrEmbed within the weighting, and the models not significantly different.
    "rank",
    "tied_with",
    # Filled from the diagnostics' retrieval tables (diagnostics/retrieval_columns.py; empty when off).
    "ndcg_at_10",
    "recall_at_10",
    "map_at_r",
    "mrr",
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
    "imagenet_acc1_kind",
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
    "embed_set_aside_by_kind",
    "n_cache_quarantined",
    "n_excluded_embeddings",
    "n_excluded_items",
)

#: Columns filled from the catalogue report (report.json) rather than from scores or meta:
#: column -> CatalogueReport field.
INGEST_COLUMNS = {
    "n_rejected": "n_rejected",
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
    scores: Sequence[ScoreRecord],
    metas: Mapping[str, EmbeddingMeta],
    imagenet: Mapping[str, dict],
    sources: Mapping[str, str],
    catalogue: CatalogueReport | None = None,
) -> pl.DataFrame:
    """Join scores with embedding metadata, ImageNet figures and the catalogue's counts.

    scores: score records (the score stage's files); metas: model -> its embedding metadata;
    imagenet: model -> {acc1, acc5, num_params, gflops, acc1_kind, source}; sources: weighting -> weight source;
    catalogue: ingest's report (rows set aside, items/images set aside, duplicates, untagged items,
    and ``set_aside_by_kind`` written as ``"kind=count;..."``); None leaves those columns empty.
    ``embed_set_aside_by_kind``: images the model's embed jobs could not decode, by kind (the
    score stage excludes them: they are in ``n_excluded_embeddings`` too).
    """
    catalogue_values: dict[str, object] = {column: None for column in INGEST_COLUMNS}
    catalogue_values["set_aside_by_kind"] = ""
    if catalogue is not None:
        catalogue_values = {column: getattr(catalogue, key) for column, key in INGEST_COLUMNS.items()}
        catalogue_values["set_aside_by_kind"] = _by_kind(catalogue.set_aside_by_kind)
    headline = headline_weighting(dict(sources))
    rows = []
    for score in scores:
        model, weighting = score.model, score.weighting
        meta, metrics = metas[model], imagenet[model]
        rows.append(
            {
                **{key: score.get(key) for key in SUMMARY_COLUMNS},
                "arch": meta.arch,
                "weights": meta.resolved_weights or "random",
                "layer": meta.layer,
                "weight_source": sources[weighting],
                "headline": weighting == headline,
                "source": metrics.get("source", "torchvision"),
                "imagenet_acc1": metrics.get("acc1"),
                # supervised, zero-shot (CLIP-style, open_clip's table), config, or "" (unknown)
                "imagenet_acc1_kind": metrics.get("acc1_kind") or "",
                "imagenet_acc5": metrics.get("acc5"),
                "num_params": metrics.get("num_params"),
                "gflops": metrics.get("gflops"),
                "dim": meta.dim,
                "device": meta.device,
                "images_per_second": meta.images_per_second,
                # How the embeddings were computed (EmbeddingMeta fills in older files' defaults).
                "precision": meta.precision,
                "decoder": meta.decoder,
                "channels_last": meta.channels_last,
                "compile": meta.compile,
                **catalogue_values,
                # Images only the embed stage found undecodable (NaN embeddings, excluded by score).
                "embed_set_aside_by_kind": _by_kind(meta.set_aside_by_kind),
                # Cache entries found damaged and embedded again (corrembed.embed.integrity).
                "n_cache_quarantined": meta.n_quarantined,
                "n_excluded_embeddings": score.n_excluded_embeddings,
                "n_excluded_items": score.n_excluded_items,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None).select(SUMMARY_COLUMNS)


def _by_kind(counts: Mapping[str, int]) -> str:
    """``{"missing": 1, "corrupt_image": 2}`` -> ``"corrupt_image=2;missing=1"``."""
    return ";".join(f"{k}={n}" for k, n in sorted(counts.items()))


def read_scores(paths: Sequence[str | os.PathLike]) -> list[ScoreRecord]:
    """Score records written by the score stage."""
    return [ScoreRecord.read(p) for p in paths]


def read_metas(paths: Sequence[str | os.PathLike]) -> dict[str, EmbeddingMeta]:
    """model -> embedding metadata, from ``results/embeddings/{model}/meta.json`` paths (the
    model name is the folder's name)."""
    return {Path(p).parent.name: EmbeddingMeta.read(p) for p in paths}

"""``results/deployment.csv``: every model x variant x weighting with its quality, its paired
tests against the model's full embedding and the best model, and its cost.

Costs are never invented: throughput, device and embedding precision come from the model's
:class:`~corrembed.records.EmbeddingMeta` (measured by its embed stage), parameters and GFLOPs
from the model source's metadata (:func:`corrembed.models.imagenet_metadata`); unknown is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..diagnostics.comparison import adjust_p
from ..errors import ScoringError
from ..records import DEPLOYMENT_SCHEMA_VERSION, EmbeddingMeta
from .study import VariantScores, paired_difference, variant_rows

#: The columns of results/deployment.csv, in order (``ndcg_at_{k}`` is named after the cut-off).
DEPLOYMENT_COLUMNS = (
    "schema_version",
    "model",
    "variant",
    "reduction",
    "dims",
    "precision",
    "bytes_per_item",
    "n_items",
    "index_mib",
    "weighting",
    "corrembed",
    "ci_low",
    "ci_high",
    "ndcg_at_k",
    "n_anchors",
    "delta_vs_full",
    "delta_vs_full_low",
    "delta_vs_full_high",
    "p_vs_full",
    "tied_with_full",
    "best_model",
    "delta_vs_best",
    "delta_vs_best_low",
    "delta_vs_best_high",
    "p_vs_best",
    "tied_with_best",
    "images_per_second",
    "device",
    "device_name",
    "embed_precision",
    "num_params",
    "gflops",
)


@dataclass(frozen=True)
class ModelCost:
    """What running a model costs, as measured or documented (None: unknown).

    Attributes:
        images_per_second: the embed stage's measured throughput; device, device_name, precision:
            where and how it ran; num_params, gflops: from the model source's metadata.
    """

    images_per_second: float | None = None
    device: str | None = None
    device_name: str | None = None
    precision: str | None = None
    num_params: float | None = None
    gflops: float | None = None

    @classmethod
    def of(cls, meta: EmbeddingMeta | None, metadata: dict | None = None) -> ModelCost:
        """The cost of a model from its embedding metadata and its source's metadata dict
        (``num_params``, ``gflops``), either may be None."""
        metadata = metadata or {}
        if meta is None:
            return cls(num_params=metadata.get("num_params"), gflops=metadata.get("gflops"))
        return cls(
            meta.images_per_second,
            meta.device,
            meta.device_name,
            meta.precision,
            metadata.get("num_params"),
            metadata.get("gflops"),
        )


def _aligned(scores: VariantScores, weighting: str, ids: np.ndarray) -> np.ndarray:
    """The variant's r_a on the anchors ``ids`` (NaN where it lacks one)."""
    r = scores.per_anchor[weighting]
    if scores.anchor_ids is None or np.array_equal(scores.anchor_ids, ids):
        return r
    lookup = dict(zip(scores.anchor_ids.tolist(), r.tolist()))
    return np.array([lookup.get(i, np.nan) for i in ids.tolist()])


def _best_comparison(rows, scores, weighting, resamples, confidence, seed) -> list[dict]:
    """delta/p against the best model's full embedding for each row of ``weighting``."""
    part = rows.filter((pl.col("weighting") == weighting) & (pl.col("variant") == "full"))
    best = part.sort(["corrembed", "model"], descending=[True, False])["model"][0]
    best_full = next(s for s in scores[best] if s.variant.name == "full")
    ids = best_full.anchor_ids
    reference = best_full.per_anchor[weighting]
    out = []
    for model, variants in scores.items():
        for s in variants:
            r = s.per_anchor[weighting] if ids is None else _aligned(s, weighting, ids)
            if np.isfinite(r - reference).any():
                delta, low, high, p = paired_difference(
                    r, reference, resamples=resamples, confidence=confidence, seed=seed
                )
            else:
                delta = low = high = p = float("nan")
            out.append(
                {
                    "model": model,
                    "variant": s.variant.name,
                    "weighting": weighting,
                    "best_model": best,
                    "delta_vs_best": delta,
                    "delta_vs_best_low": low,
                    "delta_vs_best_high": high,
                    "p_vs_best_raw": p,
                    "is_best": model == best and s.variant.name == "full",
                }
            )
    return out


def _adjusted(frame: pl.DataFrame, raw: str, skip: pl.Expr, correction: str) -> pl.Series:
    """Adjusted p-values of column ``raw`` over the rows not in ``skip`` (those keep p = 1)."""
    p = frame[raw].to_numpy()
    keep = ~frame.select(skip.alias("s"))["s"].to_numpy() & np.isfinite(p)
    out = np.where(np.isfinite(p), 1.0, np.nan)  # NaN: an undefined variant, never tied
    out[keep] = adjust_p(p[keep], correction)
    return pl.Series(out)


def _cost_rows(costs: dict[str, ModelCost], n_items: dict[str, int]) -> pl.DataFrame:
    """One row per model: items scored, measured throughput and device, parameters and GFLOPs."""
    return pl.DataFrame(
        [
            {
                "model": m,
                "n_items": int(n_items[m]),
                "images_per_second": c.images_per_second,
                "device": c.device,
                "device_name": c.device_name,
                "embed_precision": c.precision,
                "num_params": None if c.num_params is None else float(c.num_params),
                "gflops": None if c.gflops is None else float(c.gflops),
            }
            for m, c in costs.items()
        ],
        schema={
            "model": pl.String,
            "n_items": pl.Int64,
            "images_per_second": pl.Float64,
            "device": pl.String,
            "device_name": pl.String,
            "embed_precision": pl.String,
            "num_params": pl.Float64,
            "gflops": pl.Float64,
        },
    )


def deployment_table(
    scores: dict[str, list[VariantScores]],
    costs: dict[str, ModelCost],
    n_items: dict[str, int],
    *,
    alpha: float = 0.05,
    correction: str = "fdr",
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
) -> pl.DataFrame:
    """The deployment table (:data:`DEPLOYMENT_COLUMNS`) of every model's scored variants.

    Parameters
    ----------
    scores : model -> its :class:`VariantScores` (``full`` among them), same weightings each
    costs : model -> :class:`ModelCost`
    n_items : model -> items scored (for the index size)
    alpha, correction : "tied" when the p-value adjusted over the weighting's rows is >= alpha
    resamples, confidence, seed : the bootstrap (as the score's)

    Examples
    --------
    >>> from corrembed.deployment.variants import parse_variant
    >>> r = np.linspace(0.1, 0.5, 50)
    >>> full = VariantScores(parse_variant("full"), 8, 32, np.arange(50), {"binary": r}, {"binary": r}, 10)
    >>> t = deployment_table({"m": [full]}, {"m": ModelCost()}, {"m": 100}, resamples=100)
    >>> t.select("variant", "bytes_per_item", "tied_with_best").row(0)
    ('full', 32, True)
    """
    if not scores:
        raise ScoringError("deployment: no model to study")
    rows = pl.concat(
        [variant_rows(m, s, resamples=resamples, confidence=confidence, seed=seed) for m, s in scores.items()],
        how="vertical_relaxed",
    )
    weightings = list(dict.fromkeys(rows["weighting"].to_list()))
    best = pl.DataFrame([b for w in weightings for b in _best_comparison(rows, scores, w, resamples, confidence, seed)])
    table = rows.join(best, on=["model", "variant", "weighting"], how="left")
    parts = []
    for w in weightings:
        part = table.filter(pl.col("weighting") == w)
        part = part.with_columns(
            p_vs_full=_adjusted(part, "p_vs_full_raw", pl.col("variant") == "full", correction),
            p_vs_best=_adjusted(part, "p_vs_best_raw", pl.col("is_best"), correction),
        )
        parts.append(part)
    table = pl.concat(parts)
    cost_rows = _cost_rows(costs, n_items)
    table = table.join(cost_rows, on="model", how="left").with_columns(
        schema_version=pl.lit(DEPLOYMENT_SCHEMA_VERSION),
        index_mib=pl.col("n_items") * pl.col("bytes_per_item") / 2.0**20,
        # Polars orders NaN above every number: an undefined p must not read as tied.
        tied_with_full=pl.col("p_vs_full").is_not_nan() & (pl.col("p_vs_full") >= alpha),
        tied_with_best=pl.col("p_vs_best").is_not_nan() & (pl.col("p_vs_best") >= alpha),
        ndcg_at_k=pl.col("ndcg"),
    )
    k = int(rows["ndcg_k"][0])
    return table.select(DEPLOYMENT_COLUMNS).rename({"ndcg_at_k": f"ndcg_at_{k}"})

"""Scoring deployment variants: CorrEmbed with its interval, nDCG@k, and paired tests against the
model's full embedding and against the best model, on the headline score's anchors.

One variant of one model is scored by :func:`score_variant` (the workflow caches its per-anchor
values like a score: ``results/deployment/{model}/{variant}.parquet``); :func:`deployment_table`
then joins every model's variants with their costs and tests them:

- CorrEmbed is the score's own per-anchor Pearson (:func:`corrembed.score.corrembed`, the
  factored route through the (k, k) scatter of the variant's vectors; the ``full`` variant takes
  the score stage's per-anchor values as they are), its interval
  :func:`corrembed.score.bootstrap_interval`;
- nDCG@k with the tag similarity as graded gain
  (as :func:`corrembed.diagnostics.retrieval.ndcg_at_k`; the ideal DCG, which depends on the
  tags only, can be computed once for all variants: :func:`ideal_dcg`), the anchors as queries;
- delta_vs_full, delta_vs_best: the paired bootstrap of the model comparison
  (:func:`corrembed.diagnostics.comparison.compare_models`, same draws and p-value), the
  p-values adjusted over all rows of a weighting (its correction, Benjamini-Hochberg by default);
  a row is tied when the adjusted p is at least alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from ..diagnostics.comparison import compare_models
from ..diagnostics.neighbours import Neighbours, top_k_neighbours, unit_rows
from ..diagnostics.retrieval import discounts
from ..errors import ScoringError
from ..score import ScoreOptions, bootstrap_interval, corrembed
from .variants import PcaBasis, Variant, apply_variant

#: Columns of a variant's cached per-anchor table.
VARIANT_COLUMNS = ("weighting", "anchor", "item_id", "r_pearson", "ndcg")


@dataclass(frozen=True)
class VariantScores:
    """Per-anchor results of one variant of one model.

    Attributes:
        variant: what was scored; dims: stored dimensions; bytes_per_item: stored bytes per vector.
        anchors: (k,) int64 item positions (the score's anchors, its order).
        per_anchor: weighting -> (k,) float64 Pearson r_a (NaN = undefined).
        ndcg: weighting -> (k,) float64 nDCG@``retrieval_k`` of each anchor as query (NaN = undefined).
        retrieval_k: the cut-off.
        anchor_ids: (k,) item ids of the anchors (None: unknown; models are then aligned by position).
    """

    variant: Variant
    dims: int
    bytes_per_item: int
    anchors: np.ndarray
    per_anchor: dict[str, np.ndarray]
    ndcg: dict[str, np.ndarray]
    retrieval_k: int
    anchor_ids: np.ndarray | None = None

    def to_table(self, item_ids) -> pl.DataFrame:
        """Long table (:data:`VARIANT_COLUMNS`), one row per weighting and anchor."""
        ids = np.asarray(item_ids, dtype=str)[self.anchors]
        parts = [
            pl.DataFrame(
                {
                    "weighting": [w] * self.anchors.size,
                    "anchor": self.anchors,
                    "item_id": ids,
                    "r_pearson": self.per_anchor[w],
                    "ndcg": self.ndcg[w],
                }
            )
            for w in self.per_anchor
        ]
        return pl.concat(parts)

    @classmethod
    def from_table(cls, table: pl.DataFrame, variant: Variant, dims: int, bytes_per_item: int, retrieval_k: int):
        """The scores back from :meth:`to_table`'s frame."""
        per_anchor, ndcg, anchors, ids = {}, {}, None, None
        for (w,), part in table.group_by("weighting", maintain_order=True):
            anchors = part["anchor"].to_numpy().astype(np.int64)
            ids = np.asarray(part["item_id"].to_list(), dtype=str)
            per_anchor[w] = part["r_pearson"].to_numpy().astype(np.float64)
            ndcg[w] = part["ndcg"].to_numpy().astype(np.float64)
        return cls(variant, dims, bytes_per_item, anchors, per_anchor, ndcg, retrieval_k, ids)


def ideal_dcg(tag_matrix, anchors, k: int, *, memory_budget_mb: float = 256.0) -> np.ndarray:
    """(q,) IDCG@k of each anchor as query: the discounted sum of its k largest tag cosines with
    other items (the nDCG denominator of :mod:`corrembed.diagnostics.retrieval`). It depends on
    the tags and anchors only, so one computation serves every variant of every model.

    Examples
    --------
    >>> tags = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    >>> ideal_dcg(tags, np.array([0]), 2).round(3).tolist()
    [1.0]
    """
    unit = unit_rows(sp.csr_matrix(tag_matrix))
    ideal = top_k_neighbours(unit, np.asarray(anchors, dtype=np.int64), k, memory_budget_mb=memory_budget_mb)
    return ideal.similarities @ discounts(k)


def _ndcg(tag_matrix, neighbours: Neighbours, idcg: np.ndarray, k: int) -> np.ndarray:
    """(q,) nDCG@k of the retrieved ``neighbours`` (gain = tag cosine), NaN where IDCG is 0."""
    unit = sp.csr_matrix(unit_rows(sp.csr_matrix(tag_matrix)))
    q = neighbours.queries.size
    left = unit[np.repeat(neighbours.queries, k)]
    right = unit[neighbours.indices[:, :k].ravel()]
    gains = np.asarray(left.multiply(right).sum(axis=1)).reshape(q, k)
    dcg = gains @ discounts(k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)


def score_variant(
    embeddings,
    tag_matrices: dict,
    anchors,
    variant: Variant,
    *,
    options: ScoreOptions | None = None,
    basis: PcaBasis | None = None,
    retrieval_k: int = 10,
    full_per_anchor: dict | None = None,
    model: str = "model",
    item_ids=None,
    ideal: dict | None = None,
) -> VariantScores:
    """Score one variant of (n, d) ``embeddings`` against each weighting's tag matrix.

    Parameters
    ----------
    embeddings : (n, d) float32/float64 array (not modified)
    tag_matrices : weighting -> (n, t) tag vectors, rows aligned with ``embeddings``
    anchors : (k,) int item positions (the score's anchors; also the nDCG queries)
    variant : Variant
    options : ScoreOptions (``include_self``, memory, device; its ``anchors`` are replaced)
    basis : PcaBasis for ``pca`` variants
    retrieval_k : nDCG cut-off
    full_per_anchor : weighting -> (k,) the score stage's r_a, used as they are for ``full``
    model : named in errors
    item_ids : (n,) item ids, to record the anchors' ids
    ideal : weighting -> (k,) :func:`ideal_dcg` of the anchors (computed when not given)

    Returns
    -------
    VariantScores

    Examples
    --------
    >>> from corrembed.deployment.variants import parse_variant
    >>> rng = np.random.default_rng(0)
    >>> tags = (rng.random((60, 6)) < 0.4).astype(float)
    >>> x = tags + 0.1 * rng.standard_normal((60, 6))
    >>> s = score_variant(x, {"binary": tags}, np.arange(20), parse_variant("binary"), retrieval_k=5)
    >>> s.bytes_per_item, bool(np.nanmean(s.per_anchor["binary"]) > 0.5)
    (1, True)
    """
    x = np.asarray(embeddings)
    anchors = np.asarray(anchors, dtype=np.int64)
    n, d = x.shape
    k = min(int(retrieval_k), n - 1)
    opts = (options or ScoreOptions()).with_overrides(anchors=anchors, normalize_in_place=True)
    if variant.name == "full" and full_per_anchor is not None:
        vectors = x
        per_anchor = {w: np.asarray(full_per_anchor[w], dtype=np.float64) for w in tag_matrices}
    else:
        # The variant's decoded vectors are this call's own copy: normalized in place.
        vectors = apply_variant(x, variant, basis, model)
        if vectors is x:
            vectors = x.copy()
        per_anchor = {}
        for w, tags in tag_matrices.items():
            try:
                per_anchor[w] = corrembed(vectors, tags, opts).per_anchor
            except ScoringError:
                # No defined anchor: the variant destroyed the similarities (e.g. tiny values that
                # fp16 flushes to zero). Reported as undefined (NaN), never as tied.
                per_anchor[w] = np.full(anchors.size, np.nan)
            opts = opts.with_overrides(normalize_in_place=False)  # normalized by the first call
    neighbours = top_k_neighbours(vectors, anchors, k, memory_budget_mb=opts.memory_budget_mb)
    ndcg = {}
    for w, tags in tag_matrices.items():
        idcg = ideal[w] if ideal is not None else ideal_dcg(tags, anchors, k, memory_budget_mb=opts.memory_budget_mb)
        ndcg[w] = _ndcg(tags, neighbours, idcg, k)
    ids = None if item_ids is None else np.asarray(item_ids, dtype=str)[anchors]
    return VariantScores(variant, variant.stored_dims(d), variant.bytes_per_item(d), anchors, per_anchor, ndcg, k, ids)


def paired_difference(a, b, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 42):
    """(mean of a - b, interval low, high, two-sided p) by the model comparison's paired bootstrap.

    ``a`` and ``b`` are (k,) per-anchor values on the same anchors (NaN = undefined); the draws
    and p-value are :func:`~corrembed.diagnostics.comparison.compare_models`'s (uncorrected).

    Examples
    --------
    >>> a = np.array([0.3, 0.2, 0.4, 0.5]); delta, low, high, p = paired_difference(a, a - 0.1, resamples=200)
    >>> round(delta, 3), bool(p < 0.05)
    (0.1, True)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.array_equal(a, b, equal_nan=True):
        return 0.0, 0.0, 0.0, 1.0
    cmp = compare_models({"a": a, "b": b}, resamples=resamples, confidence=confidence, correction="none", seed=seed)
    row = cmp.pairs.row(0, named=True)
    sign = 1.0 if row["model_a"] == "a" else -1.0
    low, high = sorted((sign * row["ci_low"], sign * row["ci_high"]))
    return sign * row["difference"], low, high, row["p_value"]


def variant_rows(
    model: str, scores: list[VariantScores], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 42
) -> pl.DataFrame:
    """One row per variant x weighting: CorrEmbed and interval, nDCG, raw paired test vs ``full``."""
    full = next((s for s in scores if s.variant.name == "full"), None)
    if full is None:
        raise ScoringError(f"{model}: the deployment study needs the model's full variant")
    rows = []
    for s in scores:
        for w, r in s.per_anchor.items():
            if np.isfinite(r).any():
                low, high = bootstrap_interval(r, resamples, confidence, seed)
                delta, d_low, d_high, p = paired_difference(
                    r, full.per_anchor[w], resamples=resamples, confidence=confidence, seed=seed
                )
            else:  # undefined everywhere (see score_variant): no score, no test, never tied
                low = high = delta = d_low = d_high = p = float("nan")
            nd = s.ndcg[w]
            rows.append(
                {
                    "model": model,
                    "variant": s.variant.name,
                    "reduction": s.variant.reduction,
                    "dims": s.dims,
                    "precision": s.variant.precision,
                    "bytes_per_item": s.bytes_per_item,
                    "weighting": w,
                    "corrembed": float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"),
                    "ci_low": low,
                    "ci_high": high,
                    "ndcg_k": s.retrieval_k,
                    "ndcg": float(np.nanmean(nd)) if np.isfinite(nd).any() else float("nan"),
                    "n_anchors": int(np.isfinite(r).sum()),
                    "delta_vs_full": delta,
                    "delta_vs_full_low": d_low,
                    "delta_vs_full_high": d_high,
                    "p_vs_full_raw": p,
                }
            )
    return pl.DataFrame(rows)

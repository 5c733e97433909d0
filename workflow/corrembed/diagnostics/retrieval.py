"""Retrieval metrics beside CorrEmbed: nDCG@k graded by tag similarity, precision@k and mAP@k per category,
and (from :mod:`.ranking_metrics`) Recall@k, R-precision, mAP@R and MRR per category.

Every query q (by default the headline score's anchors) retrieves its k nearest items by embedding
cosine (:func:`~corrembed.diagnostics.neighbours.top_k_neighbours`): the query itself is never
retrieved nor counted as relevant, and equal embedding similarities are ordered by increasing item
index (deterministic; with float embeddings exact ties occur only for identical images).

- nDCG@k: gain of the item at rank i (1-based) = its tag-vector cosine with the query (weighted
  tag vectors; values in [0, 1]), discount 1 / log2(i + 1), linear gain (as ``sklearn.metrics.ndcg_score``).
  IDCG@k = the same sum over the k largest tag similarities of all other items. Undefined (NaN)
  when IDCG is 0 (the query has no tags, or no other item shares any of them).
- precision@k for a category c: an item is relevant when it shares at least one value of c with
  the query; P@k = relevant among the k retrieved / k.
- AP@k = (1 / min(k, R)) * sum_{i <= k} P@i * rel_i, with R the number of relevant items in the
  catalogue (query excluded); mAP@k is its mean over queries.
  Both are undefined (NaN) for a query without a value in c or with R = 0 (nothing to find).

Means are over defined queries; intervals are percentile bootstraps over queries
(:func:`corrembed.score.bootstrap_interval`, as for CorrEmbed). Memory: the neighbour search's
bound plus (b, n) blocks for counting R; never n x n.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from ..errors import ScoringError
from ..score import bootstrap_interval
from .categories import category_slots, membership
from .neighbours import DEFAULT_MEMORY_BUDGET_MB, Neighbours, block_rows, top_k_neighbours, unit_rows
from .ranking_metrics import ranking_metrics, recall_at_k

METRIC_COLUMNS = ("metric", "category", "k", "mean", "ci_low", "ci_high", "n_queries", "n_defined")


@dataclass(frozen=True)
class RetrievalScores:
    """Per-query retrieval metrics.

    Attributes:
        queries: (q,) int64 item indices.
        k: cut-off.
        ndcg: (q,) float64 nDCG@k, NaN where undefined.
        precision: category -> (q,) float64 precision@k, NaN where undefined.
        average_precision: category -> (q,) float64 AP@k, NaN where undefined.
        ranked: metric -> category -> (q,) float64: ``recall`` (Recall@k) and the full-ranking
            metrics of :mod:`.ranking_metrics` (``r_precision``, ``map_at_r``, ``mrr``).
    """

    queries: np.ndarray
    k: int
    ndcg: np.ndarray
    precision: dict[str, np.ndarray]
    average_precision: dict[str, np.ndarray]
    ranked: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def summary(self, resamples: int = 1000, confidence: float = 0.95, seed: int = 42) -> pl.DataFrame:
        """One row per metric (and category): mean over defined queries with its bootstrap interval."""
        rows = [_summary_row("ndcg", "", self.k, self.ndcg, resamples, confidence, seed)]
        for category in self.precision:
            rows.append(
                _summary_row("precision", category, self.k, self.precision[category], resamples, confidence, seed)
            )
            rows.append(
                _summary_row("map", category, self.k, self.average_precision[category], resamples, confidence, seed)
            )
            for metric, values in self.ranked.items():
                rows.append(_summary_row(metric, category, self.k, values[category], resamples, confidence, seed))
        return pl.DataFrame(rows, schema=list(METRIC_COLUMNS), orient="row")


def _summary_row(metric, category, k, values, resamples, confidence, seed) -> tuple:
    defined = np.isfinite(values)
    if defined.any():
        mean = float(values[defined].mean())
        low, high = bootstrap_interval(values, resamples=resamples, confidence=confidence, seed=seed)
    else:
        mean = low = high = float("nan")
    return (metric, category, int(k), mean, low, high, int(values.size), int(defined.sum()))


def _pair_dots(unit: sp.csr_matrix, queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(q, k) row dot products unit[queries[i]] . unit[items[i, j]] (sparse rows)."""
    q, k = items.shape
    left = unit[np.repeat(queries, k)]
    right = unit[items.ravel()]
    return np.asarray(left.multiply(right).sum(axis=1)).reshape(q, k)


def discounts(k: int) -> np.ndarray:
    """(k,) 1 / log2(i + 1) for ranks i = 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def ndcg_at_k(
    tag_vectors, neighbours: Neighbours, k: int | None = None, *, memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB
) -> np.ndarray:
    """(q,) nDCG@k of the retrieved ``neighbours`` with gain = tag cosine (see module docstring)."""
    k = neighbours.k if k is None else int(k)
    if k > neighbours.k:
        raise ScoringError(f"nDCG@{k} needs at least {k} neighbours per query, got {neighbours.k}")
    unit = sp.csr_matrix(unit_rows(sp.csr_matrix(tag_vectors)))
    gains = _pair_dots(unit, neighbours.queries, neighbours.indices[:, :k])
    ideal = top_k_neighbours(unit, neighbours.queries, k, memory_budget_mb=memory_budget_mb).similarities
    d = discounts(k)
    dcg, idcg = gains @ d, ideal @ d
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)


def relevant_counts(
    member: sp.csr_matrix, queries: np.ndarray, memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB
) -> np.ndarray:
    """(q,) int64 number of items other than the query sharing a value with it (0/1 ``member`` rows)."""
    n = member.shape[0]
    b = block_rows(n, memory_budget_mb, arrays_per_entry=2)
    out = np.empty(queries.size, dtype=np.int64)
    has_value = np.diff(member.indptr) > 0
    for start in range(0, queries.size, b):
        rows = queries[start : start + b]
        shared = (member[rows] @ member.T).toarray() > 0
        out[start : start + rows.size] = shared.sum(axis=1) - has_value[rows]
    return out


def precision_and_ap(
    member: sp.csr_matrix, neighbours: Neighbours, k: int | None = None, *, memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB
):
    """((q,) precision@k, (q,) AP@k) for relevance = shares a value in ``member`` (see module docstring)."""
    k = neighbours.k if k is None else int(k)
    if k > neighbours.k:
        raise ScoringError(f"precision@{k} needs at least {k} neighbours per query, got {neighbours.k}")
    rel = _pair_dots(member, neighbours.queries, neighbours.indices[:, :k]) > 0
    total = relevant_counts(member, neighbours.queries, memory_budget_mb)
    hits = np.cumsum(rel, axis=1)
    precision = hits[:, -1] / k
    precision_at_i = hits / np.arange(1, k + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision_at_i * rel).sum(axis=1) / np.minimum(k, total)
    undefined = total == 0
    return np.where(undefined, np.nan, precision), np.where(undefined, np.nan, ap)


def retrieval_scores(
    embeddings,
    tag_vectors,
    slot_category,
    queries,
    *,
    k: int = 10,
    categories=None,
    neighbours: Neighbours | None = None,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
) -> RetrievalScores:
    """nDCG@k, and precision@k / AP@k for each category, for ``queries`` retrieving by embedding cosine.

    Parameters
    ----------
    embeddings : (n, d) ndarray
        Item embeddings.
    tag_vectors : (n, t) ndarray or scipy sparse matrix
        Tag matrix (weighted: the nDCG gains; categories use only its non-zeros).
    slot_category : (t,) str array
        Category of each tag column.
    queries : (q,) int array
        Item indices (e.g. ``resolve_anchors(1000, n, 42)``).
    k : int
        Cut-off.
    categories : sequence of str, optional
        Categories for precision/mAP (default: every category).
    neighbours : Neighbours, optional
        Precomputed embedding neighbours of ``queries`` with at least k columns.
    memory_budget_mb : float
        Bound on the (b, n) similarity blocks.

    Returns
    -------
    RetrievalScores
        Per query: ``ndcg`` (q,) float64, and per category precision@k and AP@k.

    Examples
    --------
    >>> tags = np.eye(2)[[0, 0, 1, 1]]                    # 4 items, 2 colours
    >>> x = tags + [[0.1, 0], [0, 0.1], [0.1, 0], [0, 0.1]]
    >>> scores = retrieval_scores(x, tags, np.array(["colour", "colour"]), [0, 2], k=1)
    >>> scores.ndcg.tolist()
    [1.0, 1.0]
    """
    queries = np.asarray(queries, dtype=np.int64)
    if neighbours is None:
        neighbours = top_k_neighbours(embeddings, queries, k, memory_budget_mb=memory_budget_mb)
    elif not np.array_equal(neighbours.queries, queries):
        raise ScoringError("precomputed neighbours were found for other queries")
    slots = category_slots(slot_category)
    chosen = list(slots) if categories is None else list(categories)
    ndcg = ndcg_at_k(tag_vectors, neighbours, k, memory_budget_mb=memory_budget_mb)
    precision, ap, members = {}, {}, {}
    for category in chosen:
        if category not in slots:
            raise ScoringError(f"unknown tag category {category!r}; known: {', '.join(slots)}")
        members[category] = membership(tag_vectors, slots[category])
        precision[category], ap[category] = precision_and_ap(
            members[category], neighbours, k, memory_budget_mb=memory_budget_mb
        )
    ranked = {"recall": {c: recall_at_k(m, neighbours, k) for c, m in members.items()}}
    ranked.update(ranking_metrics(embeddings, members, queries, memory_budget_mb=memory_budget_mb))
    return RetrievalScores(queries=queries, k=k, ndcg=ndcg, precision=precision, average_precision=ap, ranked=ranked)

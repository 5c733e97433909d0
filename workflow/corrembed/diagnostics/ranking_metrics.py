"""Retrieval metrics over the whole ranking: Recall@k, R-precision, mAP@R and MRR per category.

Each query q ranks every other item by embedding cosine (the tie rule of
:mod:`~corrembed.diagnostics.neighbours`: similarities rounded to ``TIE_DECIMALS`` decimals, equal
ones by increasing item index; the query itself is never retrieved nor relevant). An item is
relevant for category c when it shares at least one value of c with the query; R = the number of
relevant items (query excluded). With rel_i = 1 when the item at rank i (1-based) is relevant and
P(i) = relevant among the first i / i:

- Recall@k = 1 when any relevant item is among the first k, else 0 (CLIP_benchmark's
  ``recall@k``, the product-search papers' Recall@k);
- R-precision = P(R) (Musgrave et al. 2020, "A Metric Learning Reality Check");
- mAP@R = (1 / R) * sum_{i <= R} P(i) * rel_i (Musgrave et al. 2020; pytorch-metric-learning's
  ``mean_average_precision_at_r``, ``avg_of_avgs=False``: the mean over queries);
- MRR: 1 / rank of the first relevant item, over the full ranking (pytorch-metric-learning ranks only
  its k neighbours and gives 0 beyond them; here the ranking is complete, so nothing is cut off).

All are undefined (NaN) for a query without a value in c or with R = 0. Memory: (b, n) blocks
(similarities, their order, relevance); never n x n.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import ScoringError
from .neighbours import DEFAULT_MEMORY_BUDGET_MB, TIE_DECIMALS, Neighbours, block_rows, similarity_rows, unit_rows

#: Metrics of :func:`ranking_metrics`, as named in the retrieval tables.
RANKING_METRICS = ("r_precision", "map_at_r", "mrr")


def relevance_rows(member: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """(b, n) bool: items sharing at least one value with each of ``rows`` (the row itself excluded)."""
    rel = (member[rows] @ member.T).toarray() > 0
    rel[np.arange(rows.size), rows] = False
    return rel


def recall_at_k(member: sp.csr_matrix, neighbours: Neighbours, k: int | None = None) -> np.ndarray:
    """(q,) Recall@k (1.0 when a relevant item is among the first k neighbours, else 0.0; NaN when R = 0).

    ``member``: (n, s) 0/1 CSR of one category's values (:func:`~corrembed.diagnostics.categories.membership`).

    Examples:
        >>> import scipy.sparse as sp
        >>> from corrembed.diagnostics.neighbours import top_k_neighbours
        >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> member = sp.csr_matrix(np.array([[1.0, 0], [0, 1], [1, 0], [0, 1]]))
        >>> recall_at_k(member, top_k_neighbours(x, [0, 1], k=1)).tolist()
        [0.0, 0.0]
        >>> recall_at_k(member, top_k_neighbours(x, [0, 1], k=2)).tolist()
        [0.0, 1.0]
    """
    k = neighbours.k if k is None else int(k)
    if k > neighbours.k:
        raise ScoringError(f"Recall@{k} needs at least {k} neighbours per query, got {neighbours.k}")
    out = np.empty(neighbours.queries.size, dtype=np.float64)
    b = block_rows(member.shape[0], DEFAULT_MEMORY_BUDGET_MB, arrays_per_entry=1)
    for start in range(0, out.size, b):
        rows = neighbours.queries[start : start + b]
        rel = relevance_rows(member, rows)
        hit = np.take_along_axis(rel, neighbours.indices[start : start + b, :k], axis=1).any(axis=1)
        out[start : start + rows.size] = np.where(rel.any(axis=1), hit.astype(np.float64), np.nan)
    return out


def ranking_keys(similarities: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(b, n) int64 keys whose decreasing order is the tie rule's ranking; the query's own item last.

    key = round(similarity * 10^TIE_DECIMALS) * n + (n - 1 - item index): the rounded similarity
    first (exactly the ordering of ``np.round(s, TIE_DECIMALS)``, which rounds the same product),
    then the lower item index. Unique per row, so any (unstable, faster) sort gives the same order.
    """
    b, n = similarities.shape
    if n > 9_000_000:  # |key| <= 10^12 * n must fit in int64
        raise ScoringError(f"ranking metrics support at most 9,000,000 items, got {n}")
    keys = np.rint(similarities * 10.0**TIE_DECIMALS).astype(np.int64)
    keys *= n
    keys += np.arange(n - 1, -1, -1, dtype=np.int64)
    keys[np.arange(b), rows] = np.iinfo(np.int64).min + 1  # + 1: its negation must not overflow
    return keys


def _row_metrics(key: np.ndarray, relevant: list[np.ndarray], totals: list[int]) -> list[tuple[float, float, float]]:
    """(R-precision, mAP@R, MRR) of one query for each relevance mask (n,) bool with R = ``totals``."""
    m = max(totals, default=0)
    if m == 0:
        return [(np.nan, np.nan, np.nan)] * len(relevant)
    n = key.size
    negated = -key
    # Only the first max(R) ranks matter for R-precision and mAP@R: partial sort when that is short.
    top = np.argpartition(negated, m - 1)[:m] if m < n // 2 else np.arange(n)
    top = top[np.argsort(negated[top])][:m]
    out = []
    for rel, total in zip(relevant, totals):
        if total == 0:
            out.append((np.nan, np.nan, np.nan))
            continue
        positions = np.flatnonzero(rel[top[:total]]) + 1  # ranks (1-based) of the relevant within the first R
        found = np.arange(1, positions.size + 1)
        # rank of the best-ranked relevant item (beyond R only when none is within it)
        first = int(positions[0]) if positions.size else int((key > key[rel].max()).sum()) + 1
        out.append((positions.size / total, float((found / positions).sum()) / total, 1.0 / first))
    return out


def ranking_metrics(
    embeddings,
    members: dict[str, sp.csr_matrix],
    queries,
    *,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
) -> dict[str, dict[str, np.ndarray]]:
    """R-precision, mAP@R and MRR of ``queries`` for each category (see module docstring).

    Args:
        embeddings: (n, d) array; items are ranked by cosine similarity to the query.
        members: category -> (n, s) 0/1 CSR of its values.
        queries: (q,) int item indices.
        memory_budget_mb: bound on the (b, n) blocks.

    Returns:
        metric (:data:`RANKING_METRICS`) -> category -> (q,) float64, NaN where undefined.

    Examples:
        >>> import scipy.sparse as sp
        >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> member = sp.csr_matrix(np.array([[1.0, 0], [0, 1], [1, 0], [0, 1]]))
        >>> out = ranking_metrics(x, {"c": member}, [0])
        >>> out["r_precision"]["c"].tolist(), out["map_at_r"]["c"].tolist(), round(float(out["mrr"]["c"][0]), 3)
        ([0.0], [0.0], 0.333)
    """
    queries = np.asarray(queries, dtype=np.int64).ravel()
    n = embeddings.shape[0]
    if queries.size and (queries.min() < 0 or queries.max() >= n):
        raise ScoringError(f"query indices must lie in [0, {n})")
    unit = unit_rows(embeddings)
    out = {m: {c: np.empty(queries.size, dtype=np.float64) for c in members} for m in RANKING_METRICS}
    names = list(members)
    # similarities, their int64 keys, one bool relevance block per category
    b = block_rows(n, memory_budget_mb, arrays_per_entry=2 + len(names))
    for start in range(0, queries.size, b):
        rows = queries[start : start + b]
        keys = ranking_keys(similarity_rows(unit, rows), rows)
        relevance = [relevance_rows(members[c], rows) for c in names]
        totals = np.stack([r.sum(axis=1) for r in relevance], axis=1).tolist()
        for i in range(rows.size):
            for c, values in zip(names, _row_metrics(keys[i], [r[i] for r in relevance], totals[i])):
                for metric, value in zip(RANKING_METRICS, values):
                    out[metric][c][start + i] = value
    return out

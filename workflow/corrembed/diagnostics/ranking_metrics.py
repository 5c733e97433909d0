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


def _block_metrics(order: np.ndarray, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R-precision, mAP@R, MRR of each row of ``rel`` (b, n) under the ranking ``order`` (b, n)."""
    ranked = np.take_along_axis(rel, order, axis=1)
    total = ranked.sum(axis=1)
    hits = np.cumsum(ranked, axis=1)
    positions = np.arange(1, ranked.shape[1] + 1)
    within_r = positions[None, :] <= total[:, None]
    defined = total > 0
    safe = np.where(defined, total, 1)
    r_precision = hits[np.arange(hits.shape[0]), safe - 1] / safe
    map_at_r = (np.where(ranked & within_r, hits / positions, 0.0)).sum(axis=1) / safe
    mrr = 1.0 / (np.argmax(ranked, axis=1) + 1)
    return tuple(np.where(defined, m, np.nan) for m in (r_precision, map_at_r, mrr))


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
    # similarities, rounded keys, order (int64), relevance, hits (int64), a float temporary
    b = block_rows(n, memory_budget_mb, arrays_per_entry=6)
    for start in range(0, queries.size, b):
        rows = queries[start : start + b]
        keys = np.round(similarity_rows(unit, rows), TIE_DECIMALS)
        keys[np.arange(rows.size), rows] = -np.inf
        # stable sort of -keys: decreasing similarity, equal ones by increasing item index
        order = np.argsort(-keys, axis=1, kind="stable")
        del keys
        for category, member in members.items():
            values = _block_metrics(order, relevance_rows(member, rows))
            for name, value in zip(RANKING_METRICS, values):
                out[name][category][start : start + rows.size] = value
    return out

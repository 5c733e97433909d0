"""Exact nearest neighbours by cosine similarity, blockwise (never an n x n matrix).

For a set of query rows, the top-k most similar items among all items, the query itself excluded.
Works for embeddings (dense) and tag vectors (scipy sparse) alike.

Order and ties (exact and deterministic): neighbours are sorted by decreasing cosine similarity
rounded to :data:`TIE_DECIMALS` decimals (the scoring's tie rule: values equal by construction can
differ in the last bit depending on summation order, e.g. sparse vs dense tag vectors); equal
rounded similarities are ordered by increasing item index. Similarities are computed in float64
(rows normalized in float64, one float64 product per block) and returned unrounded. A zero row
has similarity 0 to everything (as in scoring).

Memory: the normalized (n, d) float64 copy plus one (b, n) float64 block of similarities, with b
set by ``memory_budget_mb``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import ScoringError

DEFAULT_MEMORY_BUDGET_MB = 256

#: Similarities are compared after rounding to this many decimals (as ``corrembed.score`` ranks them).
TIE_DECIMALS = 12


@dataclass(frozen=True)
class Neighbours:
    """Top-k neighbours of a set of queries.

    Attributes:
        queries: (q,) int64 item indices of the queries.
        indices: (q, k) int64 item indices of the neighbours, best first.
        similarities: (q, k) float64 cosine similarities, non-increasing along each row.
    """

    queries: np.ndarray
    indices: np.ndarray
    similarities: np.ndarray

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def unit_rows(matrix) -> np.ndarray | sp.csr_matrix:
    """Rows scaled to unit L2 norm in float64 (zero rows stay zero); dense stays dense, sparse CSR."""
    if sp.issparse(matrix):
        m = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(scale) @ m)
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2:
        raise ScoringError(f"expected a 2-D (items, features) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return x * scale[:, None]


def similarity_rows(unit, rows: np.ndarray) -> np.ndarray:
    """(b, n) float64 cosine similarities of items ``rows`` against all items (``unit`` from :func:`unit_rows`)."""
    if sp.issparse(unit):
        return np.asarray((unit[rows] @ unit.T).toarray(), dtype=np.float64)
    return unit[rows] @ unit.T


def block_rows(n: int, memory_budget_mb: float, arrays_per_entry: int = 3) -> int:
    """Queries per (b, n) block so that ``arrays_per_entry`` float64 blocks fit the budget."""
    if not memory_budget_mb > 0:
        raise ScoringError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
    return int(max(1, min(8192, memory_budget_mb * 2**20 // (8 * arrays_per_entry * max(n, 1)))))


def _top_k_block(sims: np.ndarray, k: int) -> np.ndarray:
    """(b, k) column indices of the k largest entries per row, ties to the lower index, best first.

    ``sims`` holds the comparison keys (rounded similarities; -inf excludes an entry).
    """
    b, n = sims.shape
    # Threshold = the k-th largest value of each row; everything strictly above it is in, and
    # the remaining places go to the lowest-indexed entries equal to it.
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(sims, part, axis=1).min(axis=1)
    out = np.empty((b, k), dtype=np.int64)
    for i in range(b):
        row = sims[i]
        above = np.flatnonzero(row > kth[i])
        equal = np.flatnonzero(row == kth[i])[: k - above.size]
        chosen = np.concatenate([above, equal])
        # lexsort: last key primary -> by -similarity, then by index
        out[i] = chosen[np.lexsort((chosen, -row[chosen]))]
    return out


def top_k_neighbours(
    matrix,
    queries,
    k: int = 8,
    *,
    exclude_self: bool = True,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    block_size: int | None = None,
) -> Neighbours:
    """Exact top-k cosine neighbours of ``queries`` among all rows of ``matrix``.

    Parameters
    ----------
    matrix : (n, d) ndarray or scipy sparse matrix
        Embeddings (dense) or tag vectors (sparse).
    queries : (q,) int array
        Item indices.
    k : int
        Neighbours per query (1 <= k <= n - 1 when excluding self).
    exclude_self : bool
        Leave the query's own row out of its neighbours.
    memory_budget_mb : float
        Bound on the (b, n) similarity blocks.
    block_size : int, optional
        Queries per block (overrides the budget).

    Returns
    -------
    Neighbours
        ``indices`` (q, k) int64 and ``similarities`` (q, k) float64, ties ordered by
        increasing item index (see the module docstring).

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> top_k_neighbours(x, [0], k=1).indices.tolist()
    [[1]]
    """
    queries = np.asarray(queries, dtype=np.int64).ravel()
    n = matrix.shape[0]
    if queries.size and (queries.min() < 0 or queries.max() >= n):
        raise ScoringError(f"query indices must lie in [0, {n})")
    limit = n - 1 if exclude_self else n
    if not 1 <= k <= limit:
        raise ScoringError(f"k must lie in [1, {limit}] for {n} items, got {k}")
    unit = unit_rows(matrix)
    b = int(block_size) if block_size else block_rows(n, memory_budget_mb)
    indices = np.empty((queries.size, k), dtype=np.int64)
    sims_out = np.empty((queries.size, k), dtype=np.float64)
    for start in range(0, queries.size, b):
        rows = queries[start : start + b]
        sims = similarity_rows(unit, rows)
        if exclude_self:
            sims[np.arange(rows.size), rows] = -np.inf
        top = _top_k_block(np.round(sims, TIE_DECIMALS), k)
        indices[start : start + rows.size] = top
        sims_out[start : start + rows.size] = np.take_along_axis(sims, top, axis=1)
    return Neighbours(queries=queries, indices=indices, similarities=sims_out)


def stratified_queries(values, n_queries: int = 12, seed: int = 42, eligible=None) -> np.ndarray:
    """Seeded query items spread over the values of one category.

    Values are visited most frequent first (ties by name), round-robin, each contributing its next
    item from a seeded shuffle of its items, until ``n_queries`` items are chosen (or none are left).
    With more values than queries, the most frequent values get one query each.

    Args:
        values: (n,) str, each item's value of the stratifying category.
        n_queries: number of queries.
        seed: seed of the shuffles.
        eligible: (n,) bool, items that may be queries (e.g. those with tags); default all.

    Returns:
        (<= n_queries,) int64 item indices, in the order drawn.
    """
    values = np.asarray(values, dtype=str)
    ok = np.ones(values.size, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    rng = np.random.default_rng(seed)
    kinds, counts = np.unique(values[ok], return_counts=True)
    order = sorted(range(kinds.size), key=lambda i: (-counts[i], kinds[i]))
    pools = [list(rng.permutation(np.flatnonzero(ok & (values == kinds[i])))) for i in order]
    chosen: list[int] = []
    while len(chosen) < n_queries and any(pools):
        for pool in pools:
            if pool and len(chosen) < n_queries:
                chosen.append(int(pool.pop(0)))
    return np.asarray(chosen, dtype=np.int64)

"""Which models see the catalogue alike: debiased linear CKA and mutual k-NN agreement per pair.

- **Debiased linear CKA** (Kornblith et al. 2019 with Song et al. 2012's unbiased HSIC): with
  linear Gram matrices K = X Xᵀ, L = Y Yᵀ and K̃, L̃ their copies with a zero diagonal,
  HSIC_u(K, L) = [tr(K̃ L̃) + 1ᵀK̃1 · 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃L̃1] / (n(n-3)), and
  CKA = HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L)). It is computed in feature space, never
  with an n x n matrix: after centring the columns (HSIC_u does not change when a constant vector
  is added to every row), with k_i = ||x_i||², l_i = ||y_i||²:
  tr(K̃ L̃) = ||XᵀY||_F² - Σ k_i l_i, 1ᵀK̃1 = -Σ k_i, 1ᵀK̃L̃1 = Σ k_i l_i. One pass over row blocks
  accumulates every model's d x d cross-products (products in the embeddings' dtype, float32 by
  default; sums over blocks in float64): O(n (Σd)²) time, O((Σd)²) memory.
- **Mutual k-NN** (Huh et al. 2024, "The Platonic Representation Hypothesis"): for each query item,
  |N_A(q) ∩ N_B(q)| / k with N the k nearest other items by cosine in each model (the blocked
  top-k of :mod:`.neighbours`, the neighbour sheets' tie rule); the mean over queries. Queries are a
  seeded sample (all items when there are fewer); neighbours are searched among all items.

Above ``cka_items`` items (default 20,000), CKA is computed on a seeded sample of that many items
(the debiased estimator is unbiased at any n, so this bounds the cost, not the accuracy's centre).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import polars as pl

from ..errors import ScoringError
from .neighbours import DEFAULT_MEMORY_BUDGET_MB, Neighbours, top_k_neighbours

AGREEMENT_COLUMNS = ("model_a", "model_b", "cka", "mutual_knn", "k")


def cka_matrix(embeddings: Sequence[np.ndarray], *, block_rows: int = 4096) -> np.ndarray:
    """(m, m) float64 debiased linear CKA between every pair of the m embeddings (rows aligned).

    Args:
        embeddings: m arrays (n, d_j), the same n items in the same order (d_j may differ).
        block_rows: rows per block of the single pass.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(200, 5))
        >>> m = cka_matrix([x, 2 * x @ np.linalg.qr(rng.normal(size=(5, 5)))[0] + 1, rng.normal(size=(200, 3))])
        >>> bool(np.isclose(m[0, 1], 1.0)), bool(abs(m[0, 2]) < 0.1)
        (True, True)
    """
    n = embeddings[0].shape[0]
    if n < 4:
        raise ScoringError(f"debiased CKA needs at least 4 items, got {n}")
    if any(e.shape[0] != n for e in embeddings):
        raise ScoringError("CKA: every model must have the same items (rows aligned)")
    dtype = np.result_type(*[e.dtype for e in embeddings], np.float32)
    means = np.concatenate([np.asarray(e, dtype=np.float64).mean(axis=0) for e in embeddings])
    edges = np.cumsum([0] + [e.shape[1] for e in embeddings])
    total = edges[-1]
    cross = np.zeros((total, total), dtype=np.float64)
    norms = np.zeros((len(embeddings), n), dtype=np.float64)
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        block = np.concatenate([np.asarray(e[start:stop], dtype=np.float64) for e in embeddings], axis=1)
        block = (block - means).astype(dtype)
        cross += block.T @ block
        for j in range(len(embeddings)):
            part = block[:, edges[j] : edges[j + 1]].astype(np.float64)
            norms[j, start:stop] = np.einsum("ij,ij->i", part, part)
    m = len(embeddings)
    hsic = np.empty((m, m), dtype=np.float64)
    for a in range(m):
        for b in range(a, m):
            block = cross[edges[a] : edges[a + 1], edges[b] : edges[b + 1]]
            hsic[a, b] = hsic[b, a] = _hsic_u(float(np.sum(block * block)), norms[a], norms[b], n)
    scale = np.sqrt(np.clip(np.diag(hsic), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return hsic / np.outer(scale, scale)


def _hsic_u(cross_frobenius: float, k: np.ndarray, l: np.ndarray, n: int) -> float:  # noqa: E741
    """Unbiased HSIC from ||XᵀY||_F² and the squared row norms of centred X and Y."""
    kl = float(k @ l)
    trace = cross_frobenius - kl
    return (trace + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * kl) / (n * (n - 3))


def mutual_knn(a: Neighbours, b: Neighbours) -> float:
    """Mean over queries of |N_a(q) ∩ N_b(q)| / k (same queries, same k).

    Examples:
        >>> q = np.array([0, 1])
        >>> a = Neighbours(q, np.array([[1, 2], [0, 2]]), np.zeros((2, 2)))
        >>> b = Neighbours(q, np.array([[2, 3], [0, 2]]), np.zeros((2, 2)))
        >>> mutual_knn(a, b)
        0.75
    """
    if not np.array_equal(a.queries, b.queries) or a.k != b.k:
        raise ScoringError("mutual k-NN: both models need neighbours of the same queries with the same k")
    overlap = [np.intersect1d(x, y).size for x, y in zip(a.indices, b.indices)]
    return float(np.mean(overlap) / a.k)


def agreement_queries(n: int, n_queries: int, seed: int = 42) -> np.ndarray:
    """(q,) int64 sorted seeded sample of ``min(n, n_queries)`` item positions."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, int(n_queries)), replace=False)).astype(np.int64)


def model_agreement(
    embeddings: Mapping[str, np.ndarray],
    *,
    k: int = 10,
    n_queries: int = 1000,
    cka_items: int | None = 20_000,
    seed: int = 42,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
) -> pl.DataFrame:
    """CKA and mutual k-NN for every pair of models (:data:`AGREEMENT_COLUMNS`, pairs in config order).

    Args:
        embeddings: model -> (n, d) item embeddings, rows aligned (the same items in the same order).
        k: neighbours per query of the mutual k-NN.
        n_queries: seeded query sample of the mutual k-NN (all items when fewer).
        cka_items: CKA on a seeded sample of this many items (all when fewer; None = all). The
            debiased estimator is unbiased at any sample size, so a sample keeps the cost bounded
            in n (O(cka_items (Σd)²)) for an estimate whose spread shrinks as 1/sqrt(cka_items).
        seed: seed of both samples.
        memory_budget_mb: bound on the neighbour search's blocks.

    Examples:
        >>> rng = np.random.default_rng(1)
        >>> x = rng.normal(size=(50, 4)).astype(np.float32)
        >>> model_agreement({"a": x, "b": 3 * x}, k=5)["mutual_knn"].to_list()
        [1.0]
    """
    names = list(embeddings)
    if len(names) < 2:
        return pl.DataFrame(
            schema={c: t for c, t in zip(AGREEMENT_COLUMNS, (pl.String, pl.String) + (pl.Float64,) * 2 + (pl.Int64,))}
        )
    n = embeddings[names[0]].shape[0]
    k = min(int(k), n - 1)
    rows = np.arange(n) if cka_items is None or cka_items >= n else agreement_queries(n, cka_items, seed + 1)
    cka = cka_matrix([np.asarray(embeddings[m])[rows] for m in names])
    queries = agreement_queries(n, n_queries, seed)
    knn = {m: top_k_neighbours(embeddings[m], queries, k, memory_budget_mb=memory_budget_mb) for m in names}
    rows = [
        (names[i], names[j], float(cka[i, j]), mutual_knn(knn[names[i]], knn[names[j]]), k)
        for i, j in combinations(range(len(names)), 2)
    ]
    return pl.DataFrame(rows, schema=list(AGREEMENT_COLUMNS), orient="row")


def aligned_embeddings(embeddings: Mapping[str, np.ndarray], item_ids: Mapping[str, np.ndarray]):
    """(item ids common to every model, model -> (n, d) rows in that order), first model's order.

    Models may have dropped different items (unusable embeddings); agreement compares the items all
    of them have.
    """
    names = list(embeddings)
    common = set(np.asarray(item_ids[names[0]], dtype=str).tolist())
    for m in names[1:]:
        common &= set(np.asarray(item_ids[m], dtype=str).tolist())
    ids = [i for i in np.asarray(item_ids[names[0]], dtype=str).tolist() if i in common]
    out = {}
    for m in names:
        position = {item: p for p, item in enumerate(np.asarray(item_ids[m], dtype=str).tolist())}
        out[m] = np.asarray(embeddings[m])[[position[i] for i in ids]]
    return np.asarray(ids, dtype=object), out

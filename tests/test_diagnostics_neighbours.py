"""Exact blockwise top-k neighbours against a brute-force oracle; stratified query draw."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from corrembed.diagnostics.neighbours import stratified_queries, top_k_neighbours


def oracle(x: np.ndarray, queries, k: int, exclude_self: bool = True):
    """Full n x n cosine matrix, then sort each row by (-similarity rounded to 12 decimals, index)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    unit = np.divide(x, norms[:, None], out=np.zeros_like(x), where=norms[:, None] > 0)
    sims = unit @ unit.T
    out_idx, out_sim = [], []
    for q in queries:
        cand = [j for j in range(len(x)) if not (exclude_self and j == q)]
        cand.sort(key=lambda j: (-round(sims[q, j], 12), j))
        out_idx.append(cand[:k])
        out_sim.append([sims[q, j] for j in cand[:k]])
    return np.array(out_idx), np.array(out_sim)


@pytest.mark.parametrize("block_size", [None, 1, 3])
def test_matches_brute_force_with_ties(block_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    x[10] = x[3]  # exact duplicates: equal similarities to every query
    x[11] = 2.0 * x[3]  # same direction: cosine ties with x[3] too
    x[12] = 0.0  # zero row: similarity 0 to everything
    queries = np.array([0, 3, 10, 12, 39])
    got = top_k_neighbours(x, queries, k=7, block_size=block_size)
    idx, sim = oracle(x, queries, 7)
    np.testing.assert_array_equal(got.indices, idx)
    np.testing.assert_allclose(got.similarities, sim, atol=1e-12)
    # query 0's neighbours list 3 before 10 before 11 when they are all in: ties to the lower index
    assert 3 not in got.indices[1] and 10 in got.indices[1] and 11 in got.indices[1]


def test_tie_at_the_cut_goes_to_lower_indices():
    # Items 1..5 are identical: query 0 sees five equal similarities, k=3 must keep 1, 2, 3.
    x = np.array([[1.0, 0.0]] + [[1.0, 1.0]] * 5 + [[0.0, 1.0]])
    got = top_k_neighbours(x, [0], k=3)
    assert got.indices.tolist() == [[1, 2, 3]]


def test_sparse_tags_equal_dense():
    rng = np.random.default_rng(1)
    dense = (rng.random((30, 12)) < 0.25) * rng.choice([1.0, 0.5], size=(30, 12))
    q = np.arange(30)
    a = top_k_neighbours(sp.csr_matrix(dense), q, k=5)
    b = top_k_neighbours(dense, q, k=5)
    np.testing.assert_array_equal(a.indices, b.indices)
    idx, sim = oracle(dense, q, 5)
    np.testing.assert_array_equal(a.indices, idx)


def test_include_self_and_bad_k():
    x = np.random.default_rng(2).normal(size=(8, 3))
    got = top_k_neighbours(x, [2, 5], k=1, exclude_self=False)
    assert got.indices[:, 0].tolist() == [2, 5]
    with pytest.raises(Exception, match="k must lie"):
        top_k_neighbours(x, [0], k=8)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 25),
    d=st.integers(1, 4),
    k=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    levels=st.integers(2, 4),
)
def test_property_matches_oracle_on_coarse_values(n, d, k, seed, levels):
    # Few distinct coordinates: many exact ties and duplicates.
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, levels, size=(n, d)).astype(np.float64)
    k = min(k, n - 1)
    queries = rng.choice(n, size=min(n, 5), replace=False)
    got = top_k_neighbours(x, queries, k=k, block_size=2)
    idx, sim = oracle(x, queries, k)
    np.testing.assert_allclose(got.similarities, sim, atol=1e-12)
    np.testing.assert_array_equal(got.indices, idx)


def test_stratified_queries_cover_values_and_are_seeded():
    values = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 5 + ["d"] * 1)
    q = stratified_queries(values, 12, seed=3)
    assert q.size == 12 and len(set(q.tolist())) == 12
    assert set(values[q]) == {"a", "b", "c", "d"}
    counts = {v: int((values[q] == v).sum()) for v in "abcd"}
    assert counts == {"a": 4, "b": 4, "c": 3, "d": 1}  # round-robin, d exhausted after one
    np.testing.assert_array_equal(q, stratified_queries(values, 12, seed=3))
    assert not np.array_equal(q, stratified_queries(values, 12, seed=4))
    # more values than queries: the most frequent values get one each
    assert sorted(values[stratified_queries(values, 2, seed=0)].tolist()) == ["a", "b"]
    eligible = values != "a"
    assert "a" not in values[stratified_queries(values, 12, seed=0, eligible=eligible)]

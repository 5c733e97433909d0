"""Model agreement: debiased linear CKA and mutual k-NN against direct O(n^2) implementations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corrembed.diagnostics.agreement import aligned_embeddings, cka_matrix, model_agreement


def hsic_unbiased_direct(x, y):
    """Song et al. (2012), eq. 5, with the n x n Gram matrices (float64)."""
    n = x.shape[0]
    k = x @ x.T
    l = y @ y.T  # noqa: E741
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    return (
        np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (one @ k @ l @ one)
    ) / (n * (n - 3))


def cka_direct(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return hsic_unbiased_direct(x, y) / np.sqrt(hsic_unbiased_direct(x, x) * hsic_unbiased_direct(y, y))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cka_matches_direct_gram_implementation(seed):
    rng = np.random.default_rng(seed)
    n = 60
    x = rng.normal(size=(n, 7)) + 3.0  # an offset: the feature-space route centres, the direct one does not
    y = x[:, :4] @ rng.normal(size=(4, 5)) + 0.5 * rng.normal(size=(n, 5))
    z = rng.normal(size=(n, 3))
    got = cka_matrix([x, y, z], block_rows=17)  # several blocks
    for i, a in enumerate((x, y, z)):
        for j, b in enumerate((x, y, z)):
            assert got[i, j] == pytest.approx(cka_direct(a, b), abs=1e-10)


def test_cka_float32_close_to_float64():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 32))
    y = np.tanh(x @ rng.normal(size=(32, 16)))
    exact = cka_direct(x, y)
    got = cka_matrix([x.astype(np.float32), y.astype(np.float32)])[0, 1]
    assert got == pytest.approx(exact, abs=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100.0), shift=st.floats(-50.0, 50.0))
def test_cka_invariant_to_rotation_scale_and_shift(seed, scale, shift):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 6)) + rng.normal(size=(40, 6))
    q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    m = cka_matrix([x, y, scale * x @ q + shift])
    assert m[0, 2] == pytest.approx(1.0, abs=1e-8)
    assert m[1, 2] == pytest.approx(m[0, 1], abs=1e-8)
    np.testing.assert_allclose(m, m.T, atol=1e-12)


def knn_direct(x, q, k):
    """Top-k other items by cosine, the neighbour sheets' tie rule (rounded, then lower index)."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = np.round(u @ u.T, 12)
    return set(sorted((j for j in range(len(x)) if j != q), key=lambda j: (-s[q, j], j))[:k])


@pytest.mark.parametrize("seed", [0, 3])
def test_mutual_knn_matches_direct_sets(seed):
    rng = np.random.default_rng(seed)
    n, k = 45, 6
    a = rng.normal(size=(n, 5))
    b = a + rng.normal(scale=0.8, size=(n, 5))
    b[10] = b[11]  # a tie
    table = model_agreement({"a": a, "b": b, "c": rng.normal(size=(n, 4))}, k=k, n_queries=1000)
    assert table["model_a"].to_list() == ["a", "a", "b"] and table["model_b"].to_list() == ["b", "c", "c"]
    models = {"a": a, "b": b}
    expected = np.mean([len(knn_direct(models["a"], q, k) & knn_direct(models["b"], q, k)) / k for q in range(n)])
    assert table["mutual_knn"][0] == pytest.approx(expected, abs=1e-12)
    assert table["cka"][0] == pytest.approx(cka_direct(a, b), abs=1e-10)
    assert set(table["k"].to_list()) == {k}


def test_aligned_embeddings_keeps_common_items_in_first_order():
    ids, out = aligned_embeddings(
        {"a": np.arange(8.0).reshape(4, 2), "b": np.arange(6.0).reshape(3, 2) * 10},
        {"a": np.array(["w", "x", "y", "z"]), "b": np.array(["z", "x", "v"])},
    )
    assert ids.tolist() == ["x", "z"]
    np.testing.assert_array_equal(out["a"], [[2, 3], [6, 7]])
    np.testing.assert_array_equal(out["b"], [[20, 30], [0, 10]])


def test_cka_on_a_seeded_item_sample_above_cka_items():
    from corrembed.diagnostics.agreement import agreement_queries

    rng = np.random.default_rng(8)
    a = rng.normal(size=(300, 6))
    b = a @ rng.normal(size=(6, 4)) + rng.normal(size=(300, 4))
    sampled = model_agreement({"a": a, "b": b}, k=5, cka_items=120, seed=3)
    rows = agreement_queries(300, 120, 4)
    assert sampled["cka"][0] == pytest.approx(cka_direct(a[rows], b[rows]), abs=1e-10)
    full = model_agreement({"a": a, "b": b}, k=5, cka_items=None)["cka"][0]
    assert full == pytest.approx(cka_direct(a, b), abs=1e-10) and abs(full - sampled["cka"][0]) < 0.1

"""Retrieval metrics against sklearn.metrics.ndcg_score and slow per-query loops."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score

from corrembed.diagnostics.retrieval import retrieval_scores


def catalogue(n: int, seed: int):
    """Random embeddings and a 3-category tag matrix (weighted), with some items lacking categories."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 5))
    cats = {"colour": 4, "type": 3, "usage": 2}
    cols, slot_category = [], []
    for c, m in cats.items():
        block = np.zeros((n, m))
        block[np.arange(n), rng.integers(0, m, n)] = {"colour": 0.7, "type": 1.0, "usage": 0.3}[c]
        block[rng.random(n) < 0.15] = 0.0  # lacking the category
        if c == "colour":  # multi-valued: some items have two colours
            two = rng.random(n) < 0.2
            block[two, (rng.integers(0, m, n)[two])] = 0.7
        cols.append(block)
        slot_category += [c] * m
    tags = np.hstack(cols)
    tags[0] = 0.0  # an item without any tag
    return emb, tags, np.array(slot_category)


def cosine(a):
    n = np.linalg.norm(a, axis=1)
    u = np.divide(a, n[:, None], out=np.zeros_like(a), where=n[:, None] > 0)
    return u @ u.T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ndcg_matches_sklearn(seed):
    emb, tags, slot_category = catalogue(40, seed)
    queries = np.arange(40)
    got = retrieval_scores(emb, sp.csr_matrix(tags), slot_category, queries, k=10)
    s_emb, s_tag = cosine(emb), cosine(tags)
    for q in queries:
        others = np.delete(np.arange(40), q)  # the query itself is not a candidate
        y_true, y_score = s_tag[q, others], s_emb[q, others]
        if y_true.max() <= 0:
            assert np.isnan(got.ndcg[q])  # sklearn returns 0 here; we call it undefined
            continue
        expected = ndcg_score(y_true[None], y_score[None], k=10)
        assert got.ndcg[q] == pytest.approx(expected, abs=1e-12)


def slow_precision_ap(emb, tags, slot_category, category, q, k):
    """P@k and AP@k for one query by the definitions, item by item."""
    n = len(emb)
    cols = np.flatnonzero(slot_category == category)
    has = [set(np.flatnonzero(tags[i, cols])) for i in range(n)]
    if not has[q]:
        return np.nan, np.nan
    relevant = [j for j in range(n) if j != q and has[j] & has[q]]
    if not relevant:
        return np.nan, np.nan
    s = cosine(emb)[q]
    ranked = sorted((j for j in range(n) if j != q), key=lambda j: (-round(s[j], 12), j))[:k]
    hits, total = 0, 0.0
    for i, j in enumerate(ranked, start=1):
        if j in relevant:
            hits += 1
            total += hits / i
    return hits / k, total / min(k, len(relevant))


@pytest.mark.parametrize("seed", [0, 3])
def test_precision_and_map_match_slow_loop(seed):
    emb, tags, slot_category = catalogue(35, seed)
    emb[7] = emb[3]  # a duplicate: tie broken by the lower index, as the loop does
    queries = np.arange(35)
    got = retrieval_scores(emb, tags, slot_category, queries, k=6, memory_budget_mb=0.01)
    for category in ("colour", "type", "usage"):
        for q in queries:
            p, ap = slow_precision_ap(emb, tags, slot_category, category, q, 6)
            np.testing.assert_allclose(got.precision[category][q], p, atol=1e-12)
            np.testing.assert_allclose(got.average_precision[category][q], ap, atol=1e-12)


def test_ideal_ranking_scores_one_and_summary_has_intervals():
    # Embeddings equal to the tag vectors: the embedding ranking is the ideal one, nDCG = 1.
    _, tags, slot_category = catalogue(30, 5)
    got = retrieval_scores(tags + 0.0, tags, slot_category, np.arange(1, 30), k=5)
    np.testing.assert_allclose(got.ndcg[np.isfinite(got.ndcg)], 1.0, atol=1e-12)
    table = got.summary(resamples=200)
    assert table.height == 1 + 6 * 3  # precision, map, recall, r_precision, map_at_r, mrr
    row = table.row(0, named=True)
    assert row["metric"] == "ndcg" and row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert row["n_defined"] == np.isfinite(got.ndcg).sum()


def test_only_chosen_categories_and_unknown_category():
    emb, tags, slot_category = catalogue(20, 1)
    got = retrieval_scores(emb, tags, slot_category, [1, 2], k=3, categories=["type"])
    assert list(got.precision) == ["type"]
    with pytest.raises(Exception, match="unknown tag category 'size'"):
        retrieval_scores(emb, tags, slot_category, [1], k=3, categories=["size"])

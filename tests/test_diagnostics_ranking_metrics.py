"""Recall@k, R-precision, mAP@R and MRR against a slow per-query loop and hand-made rankings."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from corrembed.diagnostics.neighbours import top_k_neighbours
from corrembed.diagnostics.ranking_metrics import ranking_metrics, recall_at_k
from corrembed.diagnostics.retrieval import retrieval_scores
from test_diagnostics_retrieval import catalogue, cosine


def ranked_by_angle(relevance):
    """Embeddings whose ranking from item 0 is items 1, 2, ... in order; relevance[i] for item i+1."""
    n = len(relevance) + 1
    angles = np.linspace(0.0, 2.5, n)
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    member = np.zeros((n, 2))
    member[0, 0] = 1.0
    for i, r in enumerate(relevance, start=1):
        member[i, 0 if r else 1] = 1.0
    return emb, sp.csr_matrix(member)


def test_hand_made_ranking_from_the_definitions():
    # Relevant at ranks 1, 3, 6, 7 of 8: R = 4, top-4 = [1, 0, 1, 0].
    emb, member = ranked_by_angle([1, 0, 1, 0, 0, 1, 1, 0])
    out = ranking_metrics(emb, {"c": member}, [0])
    assert out["r_precision"]["c"][0] == pytest.approx(2 / 4)
    assert out["map_at_r"]["c"][0] == pytest.approx((1 / 1 + 2 / 3) / 4)
    assert out["mrr"]["c"][0] == pytest.approx(1.0)
    recall = [recall_at_k(member, top_k_neighbours(emb, [0], k=k))[0] for k in (1, 2)]
    assert recall == [1.0, 1.0]


def test_hand_made_first_relevant_late():
    # Musgrave et al.'s point: R-precision / mAP@R ignore what lies beyond rank R; MRR does not.
    emb, member = ranked_by_angle([0, 0, 0, 1, 1])
    out = ranking_metrics(emb, {"c": member}, [0])
    assert out["r_precision"]["c"][0] == 0.0 and out["map_at_r"]["c"][0] == 0.0
    assert out["mrr"]["c"][0] == pytest.approx(1 / 4)
    assert recall_at_k(member, top_k_neighbours(emb, [0], k=3))[0] == 0.0
    assert recall_at_k(member, top_k_neighbours(emb, [0], k=4))[0] == 1.0


def test_perfect_ranking_and_undefined_queries():
    emb, member = ranked_by_angle([1, 1, 1, 0, 0])
    out = ranking_metrics(emb, {"c": member}, [0, 5])
    assert out["r_precision"]["c"][0] == 1.0 and out["map_at_r"]["c"][0] == 1.0
    # item 5's value (the second) is shared with item 4 only, which is its nearest other item
    assert out["mrr"]["c"][1] == 1.0
    lonely = sp.csr_matrix(np.eye(3))
    assert np.isnan(ranking_metrics(emb[:3], {"c": lonely}, [0])["map_at_r"]["c"][0])


def slow_metrics(emb, tags, slot_category, category, q, k):
    """Recall@k, R-precision, mAP@R, MRR of one query by the definitions, item by item."""
    n = len(emb)
    cols = np.flatnonzero(slot_category == category)
    has = [set(np.flatnonzero(tags[i, cols])) for i in range(n)]
    relevant = {j for j in range(n) if j != q and has[j] & has[q]}
    if not has[q] or not relevant:
        return (np.nan,) * 4
    s = cosine(emb)[q]
    ranked = sorted((j for j in range(n) if j != q), key=lambda j: (-round(s[j], 12), j))
    r = len(relevant)
    recall = float(any(j in relevant for j in ranked[:k]))
    r_precision = sum(j in relevant for j in ranked[:r]) / r
    hits, total = 0, 0.0
    for i, j in enumerate(ranked[:r], start=1):
        if j in relevant:
            hits += 1
            total += hits / i
    first = next(i for i, j in enumerate(ranked, start=1) if j in relevant)
    return recall, r_precision, total / r, 1.0 / first


@pytest.mark.parametrize("seed", [0, 4])
def test_match_slow_per_query_loop(seed):
    emb, tags, slot_category = catalogue(33, seed)
    emb[9] = emb[2]  # a duplicate: the tie goes to the lower index, as in the loop
    queries = np.arange(33)
    got = retrieval_scores(emb, tags, slot_category, queries, k=5, memory_budget_mb=0.01)
    for category in ("colour", "type", "usage"):
        for q in queries:
            expected = slow_metrics(emb, tags, slot_category, category, q, 5)
            actual = [got.ranked[m][category][q] for m in ("recall", "r_precision", "map_at_r", "mrr")]
            np.testing.assert_allclose(actual, expected, atol=1e-12)
    table = got.summary(resamples=50)
    assert set(table["metric"].to_list()) == {"ndcg", "precision", "map", "recall", "r_precision", "map_at_r", "mrr"}

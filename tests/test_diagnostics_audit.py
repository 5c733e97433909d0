"""Tag audit: against a slow per-item loop, chance correction under random embeddings, planted errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from corrembed.diagnostics.audit import (
    audit_category,
    audit_neighbours,
    auditable_categories,
    confusion_pairs,
    consensus_models,
    tag_audit,
)
from corrembed.diagnostics.audit_validation import flip_validation, flip_values, precision_at_flipped, roc_auc
from corrembed.diagnostics.categories import membership


def skewed_catalogue(n, seed, probabilities=(0.78, 0.15, 0.05, 0.02), separation=0.0, dim=8):
    """One category with skewed values; embeddings = value centroid * separation + noise."""
    rng = np.random.default_rng(seed)
    values = rng.choice(len(probabilities), size=n, p=probabilities)
    centroids = rng.normal(size=(len(probabilities), dim))
    emb = separation * centroids[values] + rng.normal(size=(n, dim))
    tags = sp.csr_matrix((np.ones(n), (np.arange(n), values)), shape=(n, len(probabilities)))
    return emb, tags, values


def brute_neighbours(emb, k):
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    s = np.round(u @ u.T, 12)
    return [sorted((j for j in range(len(emb)) if j != i), key=lambda j: (-s[i, j], j))[:k] for i in range(len(emb))]


def test_matches_slow_per_item_loop_multi_valued_and_two_models():
    rng = np.random.default_rng(3)
    n, s, k = 40, 4, 5
    member = (rng.random((n, s)) < 0.3).astype(float)
    member[np.arange(n), rng.integers(0, s, n)] = 1.0
    member[:3] = 0.0
    member[3] = [1, 1, 0, 0]
    embs = {"a": rng.normal(size=(n, 6)), "b": rng.normal(size=(n, 6))}
    nbs = {m: audit_neighbours(e, k) for m, e in embs.items()}
    got = audit_category(sp.csr_matrix(member), nbs)
    sets = [set(np.flatnonzero(row)) for row in member]
    lists = {m: brute_neighbours(e, k) for m, e in embs.items()}
    for i in range(3, n):
        agree = np.mean([np.mean([bool(sets[j] & sets[i]) for j in lists[m][i]]) for m in embs])
        chance = sum(bool(sets[j] & sets[i]) for j in range(n) if j != i) / (n - 1)
        share = {x: np.mean([np.mean([x in sets[j] for j in lists[m][i]]) for m in embs]) for x in range(s)}
        others = [x for x in range(s) if x not in sets[i] and share[x] > 0]
        surplus = {x: share[x] - member[:, x].sum() / (n - 1) for x in others}
        best = min(others, key=lambda x: (-surplus[x], -share[x], x)) if others else -1
        assert got["agreement"][i] == pytest.approx(agree, abs=1e-12)
        assert got["chance_agreement"][i] == pytest.approx(chance, abs=1e-12)
        assert got["suggested"][i] == best
        expected = chance - agree + (max(surplus[best], 0.0) if others else 0.0)
        assert got["suspicion"][i] == pytest.approx(expected, abs=1e-12)


def test_chance_corrected_score_ignores_value_frequency_under_random_embeddings():
    # Random embeddings: neighbours carry no information about the tags.
    emb, tags, values = skewed_catalogue(3000, 0, separation=0.0)
    got = audit_category(tags, {"random": audit_neighbours(emb, 10)})
    rare, common = values >= 2, values == 0
    # The naive score calls every rare-valued item suspect; the corrected one does not.
    assert got["naive_suspicion"][rare].mean() - got["naive_suspicion"][common].mean() > 0.6
    assert abs(got["suspicion"][rare].mean() - got["suspicion"][common].mean()) < 0.1


def test_planted_errors_found_with_informative_embeddings_not_with_random_ones():
    emb, tags, values = skewed_catalogue(2000, 1, separation=2.5)
    flipped_tags, flipped = flip_values(tags, np.array(["usage"] * 4), "usage", fraction=0.05, seed=7)
    assert flipped.sum() == 100
    member = membership(flipped_tags, np.arange(4))
    good = audit_category(member, {"m": audit_neighbours(emb, 10)})
    noise = audit_category(member, {"m": audit_neighbours(np.random.default_rng(2).normal(size=emb.shape), 10)})
    assert roc_auc(good["suspicion"], flipped) > 0.95
    assert precision_at_flipped(good["suspicion"], flipped) > 0.7
    assert 0.4 < roc_auc(noise["suspicion"], flipped) < 0.6
    # the base-rate trap: the naive vote "finds" the flips even with random vectors
    assert roc_auc(noise["naive_suspicion"], flipped) > 0.7
    table = flip_validation(
        tags, np.array(["usage"] * 4), ["usage"], {"good": {"m": audit_neighbours(emb, 10)}}, fraction=0.05, seed=7
    )
    row = table.filter(pl.col("score") == "suspicion").row(0, named=True)
    assert row["auc"] == pytest.approx(roc_auc(good["suspicion"], flipped))


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(300), 1)
    labels = rng.random(300) < 0.2
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_flip_values_moves_only_single_valued_items_to_another_value():
    rng = np.random.default_rng(4)
    tags = np.zeros((200, 5))
    tags[np.arange(200), rng.integers(0, 3, 200)] = 0.5
    tags[:20, 3] = 0.5  # two values in the category: never flipped
    tags[:, 4] = 1.0  # another category, untouched
    cats = np.array(["c", "c", "c", "c", "other"])
    out, mask = flip_values(sp.csr_matrix(tags), cats, "c", fraction=0.1, seed=1)
    out = out.toarray()
    assert mask.sum() == 18 and not mask[:20].any()
    np.testing.assert_array_equal(out[~mask], tags[~mask])
    assert (out[mask, :4] != tags[mask, :4]).any(axis=1).all()
    assert ((out[mask, :4] > 0).sum(axis=1) == 1).all() and (out[mask, :4].sum(axis=1) == 0.5).all()


def test_table_categories_confusions_and_consensus():
    emb, tags, values = skewed_catalogue(300, 5, probabilities=(0.5, 0.5), separation=3.0)
    ids = np.array([f"i{j}" for j in range(300)])
    name = sp.csr_matrix(np.eye(300))
    matrix = sp.hstack([tags, name]).tocsr()
    cats = np.array(["usage"] * 2 + ["name"] * 300)
    names = np.array(["Casual", "Sports"] + [f"n{j}" for j in range(300)])
    assert auditable_categories(matrix, cats) == ["usage"]
    flipped_matrix, flipped = flip_values(matrix, cats, "usage", fraction=0.05, seed=3)
    table = tag_audit(flipped_matrix, cats, names, ids, {"m": audit_neighbours(emb, 8)})
    assert table.height == 300 and table["category"].unique().to_list() == ["usage"]
    assert table["suspicion"].is_sorted(descending=True)
    top = table.head(int(flipped.sum()))
    assert np.isin(top["item_id"].to_numpy(), ids[flipped]).mean() > 0.8
    assert set(table.columns) >= {"item_id", "category", "value", "suggested_value", "agreement", "suspicion", "models"}
    pairs = confusion_pairs(table)
    assert pairs.row(0, named=True)["pair"] == "Casual ↔ Sports"
    ranking = pl.DataFrame({"model": ["b", "a", "c"], "rank": [2, 1, 3], "tied_with": ["a", "b;c", "a"]})
    assert consensus_models(ranking) == ["a", "b", "c"] and consensus_models(ranking, 2) == ["a", "b"]
    with pytest.raises(Exception, match="not a tag category"):
        tag_audit(matrix, cats, names, ids, {"m": audit_neighbours(emb, 8)}, categories=["size"])

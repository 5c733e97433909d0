"""Per-attribute CorrEmbed equals the headline computed on independently built tag matrices."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from corrembed.diagnostics.attributes import attribute_scores
from corrembed.score import corrembed, resolve_anchors
from corrembed.tags import tag_vectors


def long_tags(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append((f"i{i}", "colour", ["red", "blue", "green", "black"][rng.integers(4)]))
        if rng.random() < 0.8:  # some items lack a type
            rows.append((f"i{i}", "type", ["shirt", "shoe", "bag"][rng.integers(3)]))
        rows.append((f"i{i}", "usage", ["casual", "formal"][rng.integers(2)]))
        if rng.random() < 0.2:
            rows.append((f"i{i}", "colour", "white"))  # multi-valued colour
    return pl.DataFrame(rows, schema=["item_id", "category", "value"], orient="row")


@pytest.mark.parametrize("anchors", [25, "all"])
def test_alone_and_without_equal_headline_on_one_category_matrices(anchors):
    n = 60
    ids = [f"i{i}" for i in range(n)]
    tags = long_tags(n, 0)
    weights = {"colour": 0.4, "type": 0.9, "usage": 0.15}
    vectors = tag_vectors(tags, ids, weights)
    rng = np.random.default_rng(1)
    # embeddings that carry type strongly and colour weakly
    type_code = {v: rng.normal(size=8) for v in ["shirt", "shoe", "bag"]}
    emb = rng.normal(size=(n, 8)) * 0.8
    for row in tags.filter(pl.col("category") == "type").iter_rows(named=True):
        emb[int(row["item_id"][1:])] += type_code[row["value"]]
    table = attribute_scores(emb, vectors.matrix, vectors.slot_category, anchors=anchors, seed=7)
    fixed = resolve_anchors(anchors, n, 7)
    headline = corrembed(emb, vectors.matrix, anchors=fixed).mean
    assert table["category"].to_list() == ["colour", "type", "usage"]
    for row in table.iter_rows(named=True):
        c = row["category"]
        one = tag_vectors(tags.filter(pl.col("category") == c), ids, {c: 1.0})
        expected = corrembed(emb, one.matrix, anchors=fixed)
        assert row["alone"] == pytest.approx(expected.mean, abs=1e-12)
        assert row["n_defined"] == expected.n_defined
        rest = {k: w for k, w in weights.items() if k != c}
        others = tag_vectors(tags.filter(pl.col("category") != c), ids, rest)
        assert row["without"] == pytest.approx(corrembed(emb, others.matrix, anchors=fixed).mean, abs=1e-12)
        assert row["drop"] == pytest.approx(headline - row["without"], abs=1e-12)
        assert row["headline"] == pytest.approx(headline, abs=1e-12)
    by = {r["category"]: r for r in table.iter_rows(named=True)}
    assert by["type"]["alone"] > by["colour"]["alone"] + 0.1  # what the embeddings were built to carry
    assert by["type"]["n_defined"] < by["colour"]["n_defined"]  # anchors without a type are skipped


def test_category_no_anchor_has_is_nan():
    n = 30
    ids = [f"i{i}" for i in range(n)]
    tags = long_tags(n, 2).filter(~((pl.col("category") == "type") & (pl.col("item_id") != "i0")))
    vectors = tag_vectors(tags, ids, {"colour": 1.0, "type": 1.0, "usage": 1.0})
    emb = np.random.default_rng(0).normal(size=(n, 4))
    anchors = np.arange(1, n)  # i0, the only item with a type, is no anchor
    table = attribute_scores(emb, vectors.matrix, vectors.slot_category, anchors=anchors)
    row = table.filter(pl.col("category") == "type").row(0, named=True)
    assert np.isnan(row["alone"]) and row["n_defined"] == 0

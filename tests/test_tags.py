"""Tag vectors and entropy weights against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corrembed.errors import ConfigError
from corrembed.tags import (
    catalogue_weights,
    category_table,
    interaction_weights,
    load_tag_vectors,
    save_tag_vectors,
    tag_vectors,
)


def _tags(rows):
    return pl.DataFrame(rows, schema=["item_id", "category", "value"], orient="row")


# Four items; colour: a red, b red, c blue, d lacks it. Shape: one value for everyone.
TAGS = _tags(
    [
        ("a", "colour", "red"),
        ("b", "colour", "red"),
        ("c", "colour", "blue"),
        ("a", "shape", "round"),
        ("b", "shape", "round"),
        ("c", "shape", "round"),
        ("d", "shape", "round"),
    ]
)
ITEMS = ["a", "b", "c", "d"]


def _h(*probabilities):
    return -sum(p * math.log(p) for p in probabilities if p > 0)


def test_catalogue_weights_hand_computed():
    table = catalogue_weights(TAGS, ITEMS)
    colour = table.filter(pl.col("category") == "colour").row(0, named=True)
    # red 2/4, blue 1/4, None 1/4; n_c = 2 -> normalized by ln 3.
    h = _h(0.5, 0.25, 0.25)
    assert colour["n_values"] == 2
    assert colour["entropy"] == pytest.approx(h, abs=1e-12)
    assert colour["normalized_entropy"] == pytest.approx(h / math.log(3), abs=1e-12)
    assert colour["weight"] == pytest.approx(1 - h / math.log(3), abs=1e-12)
    assert colour["source"] == "catalogue"
    # A single value everybody has: zero entropy, weight 1, no division by zero.
    shape = table.filter(pl.col("category") == "shape").row(0, named=True)
    assert shape["entropy"] == pytest.approx(0.0, abs=1e-15)
    assert shape["weight"] == pytest.approx(1.0)


def test_catalogue_weights_multivalued_counts_occurrences():
    tags = _tags([("a", "style", "x"), ("a", "style", "y"), ("b", "style", "x")])
    row = catalogue_weights(tags, ["a", "b", "c"]).row(0, named=True)
    # occurrences: x 2, y 1, None 1 (item c) -> p = 2/4, 1/4, 1/4
    assert row["entropy"] == pytest.approx(_h(0.5, 0.25, 0.25), abs=1e-12)
    assert row["n_values"] == 2


def _interactions(per_user):
    rows = [(user, item) for user, items in per_user.items() for item in items]
    return pl.DataFrame(rows, schema=["user_id", "item_id"], orient="row")


def test_interaction_weights_hand_computed():
    interactions = _interactions(
        {
            # u1: 11 interactions: colour red x8 (a,b), blue x2, none x1; always round.
            "u1": ["a"] * 4 + ["b"] * 4 + ["c"] * 2 + ["d"],
            # u2: 12 interactions: colour red x6, blue x6.
            "u2": ["a"] * 6 + ["c"] * 6,
            # u3: only 10 interactions: not more than 10, ignored.
            "u3": ["d"] * 10,
        }
    )
    table = interaction_weights(TAGS, interactions, min_user_interactions=10)
    colour = table.filter(pl.col("category") == "colour").row(0, named=True)
    h1 = _h(8 / 11, 2 / 11, 1 / 11)
    h2 = _h(0.5, 0.5)
    assert colour["n_users"] == 2
    assert colour["entropy"] == pytest.approx((h1 + h2) / 2, abs=1e-12)
    expected_norm = (h1 / math.log(3) + h2 / math.log(3)) / 2
    assert colour["normalized_entropy"] == pytest.approx(expected_norm, abs=1e-12)
    assert colour["weight"] == pytest.approx(1 - expected_norm, abs=1e-12)
    assert colour["source"] == "interactions"
    shape = table.filter(pl.col("category") == "shape").row(0, named=True)
    assert shape["weight"] == pytest.approx(1.0)


def test_interaction_weights_none_when_no_user_qualifies():
    interactions = _interactions({"u": ["a"] * 3})
    assert interaction_weights(TAGS, interactions, min_user_interactions=10) is None
    table = category_table(TAGS, ITEMS, "entropy", interactions=interactions)
    assert set(table["source"]) == {"catalogue"}


def test_category_table_binary_and_unknown():
    table = category_table(TAGS, ITEMS, "binary")
    assert table["weight"].to_list() == [1.0, 1.0]
    assert set(table["source"]) == {"binary"}
    with pytest.raises(ConfigError, match="unknown weighting"):
        category_table(TAGS, ITEMS, "tfidf")


def test_tag_vectors_layout_and_roundtrip(tmp_path):
    vectors = tag_vectors(TAGS, ["d", "c", "b", "a", "e"], {"colour": 0.5, "shape": 2.0})
    dense = vectors.matrix.toarray()
    slots = list(zip(vectors.slot_category, vectors.slot_value))
    assert slots == [("colour", "blue"), ("colour", "red"), ("shape", "round")]
    expected = np.array(
        [
            [0.0, 0.0, 2.0],  # d
            [0.5, 0.0, 2.0],  # c
            [0.0, 0.5, 2.0],  # b
            [0.0, 0.5, 2.0],  # a
            [0.0, 0.0, 0.0],  # e: unknown to the tags table -> zero vector
        ]
    )
    np.testing.assert_array_equal(dense, expected)
    path = tmp_path / "v.npz"
    save_tag_vectors(path, vectors)
    back = load_tag_vectors(path)
    np.testing.assert_array_equal(back.matrix.toarray(), dense)
    assert list(back.item_ids) == ["d", "c", "b", "a", "e"]


def test_tag_vectors_excluded_and_zero_weight_categories():
    vectors = tag_vectors(TAGS, ITEMS, {"colour": 0.0})
    assert vectors.matrix.nnz == 0
    assert set(vectors.slot_category) == {"colour"}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["i1", "i2", "i3", "i4", "i5"]),
            st.sampled_from(["c1", "c2", "c3"]),
            st.sampled_from(["v1", "v2", "v3", "v4"]),
        ),
        min_size=1,
        max_size=30,
        unique=True,
    )
)
def test_weights_are_within_unit_interval_and_catalogue_matches_slow_count(rows):
    tags = _tags(rows)
    items = ["i1", "i2", "i3", "i4", "i5"]
    table = catalogue_weights(tags, items)
    for row in table.iter_rows(named=True):
        have = [r for r in rows if r[1] == row["category"]]
        values = sorted({r[2] for r in have})
        counts = [sum(1 for r in have if r[2] == v) for v in values]
        counts.append(len(items) - len({r[0] for r in have}))
        total = sum(counts)
        h = _h(*(c / total for c in counts))
        assert row["n_values"] == len(values)
        assert row["entropy"] == pytest.approx(h, abs=1e-12)
        assert -1e-12 <= row["weight"] <= 1 + 1e-12


def _many_tags(seed: int, n_items: int = 400) -> tuple[pl.DataFrame, list[str], pl.DataFrame]:
    """A catalogue with many values of skewed frequency (so float sums depend on their order)
    and an interactions log."""
    rng = np.random.default_rng(seed)
    items = [f"i{k}" for k in range(n_items)]
    rows = [
        (item, category, f"{category}{int(v)}")
        for item in items
        for category, n_values in (("colour", 37), ("type", 11), ("usage", 5))
        if rng.random() < 0.9
        for v in [min(rng.zipf(1.3), n_values)]
    ]
    events = pl.DataFrame({"user_id": [f"u{k}" for k in rng.integers(0, 40, 3000)], "item_id": rng.choice(items, 3000)})
    return _tags(rows), items, events


@pytest.mark.parametrize("weighting", ["entropy", "binary"])
def test_weights_are_bit_identical_whatever_the_row_order(weighting):
    # Shuffled input rows must give the same weights to the last bit (polars' group_by hands
    # groups over in an arbitrary order; the sums must not follow it).
    tags, items, events = _many_tags(3)
    first = category_table(tags, items, weighting, interactions=events)
    for seed in range(6):
        again = category_table(
            tags.sample(fraction=1.0, shuffle=True, seed=seed),
            items,
            weighting,
            interactions=events.sample(fraction=1.0, shuffle=True, seed=seed),
        )
        assert again.sort("category").equals(first.sort("category"))
    without_log = category_table(tags, items, weighting)
    for seed in range(6):
        shuffled = tags.sample(fraction=1.0, shuffle=True, seed=seed)
        assert category_table(shuffled, items, weighting).sort("category").equals(without_log.sort("category"))

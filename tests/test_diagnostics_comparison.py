"""Paired bootstrap model comparison: a case computed by hand, BH against scipy, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from corrembed.diagnostics.comparison import adjust_p, compare_models

NAN = float("nan")
# r_a of three models on four anchors (anchor 2 undefined for A).
R = {
    "B": np.array([0.1, 0.3, 0.4, 0.0]),
    "C": np.array([0.0, 0.0, 0.0, 0.0]),
    "A": np.array([0.5, 0.3, NAN, 0.2]),
}
DRAWS = np.array([[0, 1, 2, 3], [0, 0, 1, 1], [2, 2, 3, 3], [1, 1, 1, 1]])


def test_hand_computed_case():
    # By hand: d(A-B) = [.4, 0, nan, .2] -> observed .2; resampled means .2, .2, .2, 0
    #   -> #<=0 = 1, #>=0 = 4, p = min(1, 2 * min(2, 5) / 5) = 0.8
    # d(A-C) = [.5, .3, nan, .2] -> observed 1/3; resampled 1/3, .4, .2, .3 -> p = 2 * 1 / 5 = 0.4
    # d(B-C) = [.1, .3, .4, 0] -> observed .2; resampled .2, .2, .2, .3 -> p = 0.4
    # BH over (0.8, 0.4, 0.4): sorted .4*3/1, .4*3/2, .8*3/3 = 1.2, .6, .8 -> step-up .6, .6, .8
    cmp = compare_models(R, draws=DRAWS, confidence=0.5, alpha=0.5, correction="fdr")
    assert cmp.ranking["model"].to_list() == ["A", "B", "C"]
    assert cmp.ranking["corrembed"].to_list() == pytest.approx([1 / 3, 0.2, 0.0])
    pairs = {(r["model_a"], r["model_b"]): r for r in cmp.pairs.iter_rows(named=True)}
    assert list(pairs) == [("A", "B"), ("A", "C"), ("B", "C")]
    assert pairs["A", "B"]["difference"] == pytest.approx(0.2)
    assert pairs["A", "C"]["difference"] == pytest.approx(1 / 3)
    assert pairs["A", "B"]["n_paired"] == 3 and pairs["B", "C"]["n_paired"] == 4
    assert [pairs[p]["p_value"] for p in pairs] == pytest.approx([0.8, 0.4, 0.4])
    assert [pairs[p]["p_adjusted"] for p in pairs] == pytest.approx([0.8, 0.6, 0.6])
    # percentile interval (numpy linear quantiles at .25/.75) of A-B's (0, .2, .2, .2): .15, .2
    assert (pairs["A", "B"]["ci_low"], pairs["A", "B"]["ci_high"]) == pytest.approx((0.15, 0.2))
    assert all(pairs[p]["tied"] for p in pairs)  # adjusted p >= alpha = 0.5 everywhere
    uncorrected = compare_models(R, draws=DRAWS, alpha=0.5, correction="none")
    tied = dict(zip(uncorrected.ranking["model"], uncorrected.ranking["tied_with"].to_list()))
    assert tied == {"A": ["B"], "B": ["A"], "C": []}
    assert uncorrected.ranking["rank"].to_list() == [1, 2, 3]


def test_fdr_matches_scipy():
    p = np.random.default_rng(0).random(15) ** 2
    np.testing.assert_allclose(adjust_p(p, "fdr"), stats.false_discovery_control(p, method="bh"))
    np.testing.assert_allclose(adjust_p(p, "bonferroni"), np.minimum(1, 15 * p))


def test_seeded_bootstrap_separates_a_clear_winner_and_ties_equal_models():
    rng = np.random.default_rng(3)
    base = rng.normal(0.2, 0.1, 500)
    r = {"same1": base + rng.normal(0, 0.01, 500), "same2": base + rng.normal(0, 0.01, 500), "better": base + 0.05}
    a = compare_models(r, resamples=500, seed=1)
    b = compare_models(r, resamples=500, seed=1)
    assert a.pairs.equals(b.pairs)
    ranking = dict(zip(a.ranking["model"], a.ranking["tied_with"].to_list()))
    assert a.ranking["model"][0] == "better" and ranking["better"] == []
    assert set(ranking["same1"]) == {"same2"}
    row = a.pairs.filter(a.pairs["model_a"] == "better").row(0, named=True)
    assert row["ci_low"] <= row["difference"] <= row["ci_high"] and row["p_value"] == pytest.approx(2 / 501)


def test_model_ci_equals_the_score_interval():
    from corrembed.score import bootstrap_interval

    cmp = compare_models(R, resamples=300, seed=5)
    row = cmp.ranking.filter(cmp.ranking["model"] == "A").row(0, named=True)
    assert (row["ci_low"], row["ci_high"]) == bootstrap_interval(R["A"], 300, 0.95, 5)


def test_rank_columns_fill_the_summary_per_model_and_weighting():
    import polars as pl

    from corrembed.diagnostics.comparison import with_rank_columns

    summary = pl.DataFrame(
        {
            "model": ["A", "B", "A", "B"],
            "weighting": ["binary", "binary", "entropy", "entropy"],
            "rank": [None] * 4,
            "tied_with": [None] * 4,
            "corrembed": [0.3, 0.2, 0.1, 0.4],
        }
    )
    cmp = compare_models(R, draws=DRAWS, alpha=0.5, correction="none")
    ranking_csv = pl.DataFrame({"model": ["B", "A"], "rank": [1, 2], "tied_with": [None, None]})  # as read back
    out = with_rank_columns(summary, {"binary": cmp.ranking, "entropy": ranking_csv})
    assert out.columns == summary.columns
    assert out["rank"].to_list() == [1, 2, 2, 1]
    assert out["tied_with"].to_list() == ["B", "A", "", ""]
    empty = with_rank_columns(summary.drop("rank", "tied_with"), {})
    assert empty.columns[-2:] == ["rank", "tied_with"] and empty["rank"].is_null().all()

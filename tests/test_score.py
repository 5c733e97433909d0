"""Tests of corrembed.score against slow independent oracles (scipy) and invariances."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist, squareform
from scipy.stats import pearsonr, spearmanr

from corrembed import score
from corrembed.errors import ScoringError
from corrembed.records import ScoreRecord
from corrembed.score import backends, pearson, prepare, tag_layout, threads
from corrembed.score.files import write_score

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------
# Oracles: naive full float64 similarity matrices, scipy statistics row by row
# --------------------------------------------------------------------------------------------


def cosine_matrix(a: np.ndarray) -> np.ndarray:
    """Naive (n, n) float64 cosine similarity, pair by pair; a zero row has similarity 0."""
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    norms = [np.sqrt(np.dot(row, row)) for row in a]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            if norms[i] > 0 and norms[j] > 0:
                out[i, j] = out[j, i] = np.dot(a[i], a[j]) / (norms[i] * norms[j])
    return out


def oracle_per_anchor(sim_emb, sim_tag, tags_dense, anchors, include_self, ranks=False):
    """r_a by scipy.stats.pearsonr (or spearmanr on 12-decimal rounded rows), NaN where undefined."""
    n = sim_emb.shape[0]
    out = []
    for a in anchors:
        keep = np.ones(n, dtype=bool)
        if not include_self:
            keep[a] = False
        x, y = sim_emb[a, keep], sim_tag[a, keep]
        if ranks:
            x, y = np.round(x, 12), np.round(y, 12)
        if not tags_dense[a].any() or np.ptp(x) == 0 or np.ptp(y) == 0:
            out.append(np.nan)
            continue
        out.append(spearmanr(x, y)[0] if ranks else pearsonr(x, y)[0])
    return np.array(out)


def assert_same_nan_close(actual, expected, atol):
    actual, expected = np.asarray(actual), np.asarray(expected)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(actual[ok], expected[ok], rtol=0, atol=atol)


def make_data(n=101, d=9, t=24, seed=0, structured=0.0):
    """Random float64 embeddings and sparse-ish tag vectors with awkward rows.

    Rows 3, 7, 40: all-zero tags (duplicated zero tag vectors); row 5: zero embedding;
    rows 11, 12: identical tags; rows 20, 21: identical embeddings.
    """
    rng = np.random.default_rng(seed)
    tags = (rng.random((n, t)) < 0.2) * rng.choice([1.0, 0.5, 2.0], size=(n, t))
    if n > 40:
        tags[[3, 7, 40]] = 0.0
        tags[12] = tags[11]
    x = rng.standard_normal((n, d)) + structured * (tags @ rng.standard_normal((t, d)))
    if n > 40:
        x[5] = 0.0
        x[21] = x[20]
    return x, tags


@pytest.fixture(scope="module")
def data():
    x, tags = make_data()
    return x, tags, cosine_matrix(x), cosine_matrix(tags)


# --------------------------------------------------------------------------------------------
# Per-anchor Pearson (CorrEmbed) against the oracle
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["blockwise", "factored"])
@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("block_size", [7, 64, 1000])
def test_corrembed_matches_scipy_oracle(data, strategy, include_self, block_size):
    x, tags, sim_x, sim_t = data
    result = score.corrembed(
        x,
        sp.csr_matrix(tags),
        anchors="all",
        include_self=include_self,
        block_size=block_size,
        strategy=strategy,
    )
    expected = oracle_per_anchor(sim_x, sim_t, tags, np.arange(len(x)), include_self)
    assert_same_nan_close(result.per_anchor, expected, atol=1e-9)
    assert result.mean == pytest.approx(np.nanmean(expected), abs=1e-12)
    assert result.n_skipped == int(np.isnan(expected).sum())
    # Zero tag rows 3, 7, 40 and the zero embedding row 5 are skipped.
    assert result.n_zero_tags == 3
    assert result.n_skipped == 4
    assert result.n_items == len(x)
    np.testing.assert_array_equal(result.anchors, np.arange(len(x)))


@pytest.mark.parametrize("strategy", ["blockwise", "factored"])
def test_corrembed_explicit_anchors_with_duplicates_and_dense_tags(data, strategy):
    x, tags, sim_x, sim_t = data
    anchors = np.array([40, 3, 3, 11, 12, 0, 100, 5, 11])
    result = score.corrembed(x, tags, anchors=anchors, block_size=4, strategy=strategy)
    np.testing.assert_array_equal(result.anchors, anchors)
    expected = oracle_per_anchor(sim_x, sim_t, tags, anchors, include_self=False)
    assert_same_nan_close(result.per_anchor, expected, atol=1e-9)
    assert result.n_zero_tags == 3
    assert result.n_skipped == 4


def test_float32_input_close_to_float64_oracle(data):
    x, tags, sim_x, sim_t = data
    expected = oracle_per_anchor(sim_x, sim_t, tags, np.arange(len(x)), False)
    for strategy in ("blockwise", "factored"):
        result = score.corrembed(x.astype(np.float32), tags, anchors="all", strategy=strategy, block_size=16)
        assert_same_nan_close(result.per_anchor, expected, atol=2e-5)


def test_float32_mean_within_float32_product_noise_of_float64():
    """The design's precision claim: float32 products with float64 sums move CorrEmbed and the
    all-pairs Pearson by far less than the per-anchor float32 noise (~1e-7), in both routes."""
    x, tags = make_data(n=3000, d=64, t=40, seed=11, structured=0.4)
    ref, ref_pairs = score.pearson_scores(x, tags)
    x32 = x.astype(np.float32)
    for strategy in ("blockwise", "factored"):
        got, got_pairs = score.pearson_scores(x32, tags, strategy=strategy)
        assert_same_nan_close(got.per_anchor, ref.per_anchor, atol=2e-6)
        assert abs(got.mean - ref.mean) < 2e-8
        assert abs(got_pairs - ref_pairs) < 2e-8


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    b=st.integers(1, 40),
    d=st.integers(1, 40),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_blocked_triangular_quadratic_forms_match_direct(seed, b, d, dtype):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((d + 5, d))
    scatter = y.T @ y  # symmetric positive semi-definite, like C
    xa = rng.standard_normal((b, d)).astype(dtype)
    be = backends.NumpyBackend()
    got = pearson.quadratic_forms(be, xa, pearson.half_upper(scatter, be, xa))
    x64 = xa.astype(np.float64)
    expected = np.einsum("ij,jk,ik->i", x64, scatter, x64)
    tol = 1e-9 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())
    np.testing.assert_array_equal(scatter, scatter.T)  # the input was not modified


def test_scatter_chunks_and_pass_threads_do_not_change_results(monkeypatch):
    x, tags = make_data(n=257, d=7, t=20, seed=4)
    ops = prepare.prepare_operands(x, tags)
    one = pearson.pearson_factors(ops, scatter=True, centred=True, chunk=10_000)
    monkeypatch.setattr(threads, "_MIN_ROWS_PER_THREAD", 10)  # several threads per chunk
    many = pearson.pearson_factors(ops, scatter=True, centred=True, chunk=50)
    for name in ("x_mean", "cross", "scatter_t", "scatter_x", "x_centred", "x_dot_mean"):
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), rtol=0, atol=1e-12, err_msg=name)


def test_map_rows_covers_the_range_in_order(monkeypatch):
    monkeypatch.setattr(threads, "_MIN_ROWS_PER_THREAD", 3)
    for start, stop in ((0, 0), (0, 2), (5, 6), (0, 100), (7, 1000)):
        ranges = threads.map_rows(lambda a, b: (a, b), start, stop)
        assert ranges[0][0] == start and ranges[-1][1] == stop
        assert all(prev[1] == nxt[0] for prev, nxt in zip(ranges, ranges[1:]))


def _child_scores(queue):
    x, tags = make_data(n=3000, d=5, t=12, seed=2)
    queue.put(score.corrembed(x, tags, anchors=50).mean)


def test_threaded_passes_work_in_a_forked_child(monkeypatch):
    import multiprocessing

    monkeypatch.setattr(threads, "_MIN_ROWS_PER_THREAD", 10)
    x, tags = make_data(n=3000, d=5, t=12, seed=2)
    expected = score.corrembed(x, tags, anchors=50).mean  # the parent's pool now exists
    assert threads._pass_pool is not None or threads._pass_threads() == 1
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_scores, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the forked child hung or failed in a threaded pass"
    assert queue.get(timeout=5) == pytest.approx(expected, abs=1e-12)


def test_huge_finite_embedding_values_are_normalized_not_rejected():
    x, tags = make_data(n=60, d=5, t=12, seed=2)
    huge = x.copy()
    huge[9] *= 1e200  # squares overflow float64; the row is still a valid direction
    np.testing.assert_allclose(score.corrembed(huge, tags).per_anchor, score.corrembed(x, tags).per_anchor, atol=1e-12)
    inf = x.copy()
    inf[9, 2] = np.inf
    with pytest.raises(ScoringError, match="first row 9"):
        score.corrembed(inf, tags)


def test_auto_strategy_equals_both_forced_strategies():
    x, tags = make_data(n=400, d=6, t=30, seed=3)
    ops = prepare.prepare_operands(x, tags)
    assert pearson.use_factored(ops, 400, "auto")  # d << n: factored is cheaper
    wide = prepare.prepare_operands(np.random.default_rng(0).standard_normal((50, 4096)), tags[:50])
    assert not pearson.use_factored(wide, 50, "auto")
    results = [score.corrembed(x, tags, anchors=150, strategy=s).per_anchor for s in ("auto", "blockwise", "factored")]
    np.testing.assert_allclose(results[0], results[1], atol=1e-12)
    np.testing.assert_allclose(results[0], results[2], atol=1e-12)


def test_joint_plan_shares_one_scatter_between_anchors_and_all_pairs():
    rng = np.random.default_rng(8)
    x, tags = rng.standard_normal((60, 64)), (rng.random((60, 10)) < 0.3) * 1.0
    ops = prepare.prepare_operands(x, tags)
    # Alone, per-anchor Pearson is (just) cheaper blockwise; with the all-pairs Pearson also
    # needing the scatter, both factored is the cheapest plan.
    assert not pearson.use_factored(ops, 60, "auto")
    assert pearson.pearson_plan(ops, 60, "auto") == (True, True)
    assert pearson.pearson_plan(ops, 60, "blockwise") == (False, False)
    auto, auto_pairs = score.pearson_scores(x, tags)
    forced, forced_pairs = score.pearson_scores(x, tags, strategy="blockwise")
    assert_same_nan_close(auto.per_anchor, forced.per_anchor, atol=1e-12)
    assert auto_pairs == pytest.approx(forced_pairs, abs=1e-12)


def test_block_size_larger_than_n_and_tiny_n():
    x, tags = make_data(n=5, d=3, t=6, seed=1)
    tags[3] = 0.0  # one all-zero tag vector
    sim_x, sim_t = cosine_matrix(x), cosine_matrix(tags)
    for include_self in (False, True):
        result = score.corrembed(x, tags, anchors="all", block_size=50, include_self=include_self, strategy="blockwise")
        expected = oracle_per_anchor(sim_x, sim_t, tags, np.arange(5), include_self)
        assert_same_nan_close(result.per_anchor, expected, atol=1e-9)
        assert result.n_zero_tags == 1


# --------------------------------------------------------------------------------------------
# All-pairs Pearson, Spearman variants
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["blockwise", "factored"])
@pytest.mark.parametrize("block_size", [6, 33, 500])
def test_allpairs_pearson_matches_pdist(strategy, block_size):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((90, 11))
    tags = (rng.random((90, 20)) < 0.25).astype(float)
    tags[tags.sum(1) == 0, 0] = 1.0  # pdist's cosine needs non-zero rows
    expected = pearsonr(1 - pdist(x, "cosine"), 1 - pdist(tags, "cosine"))[0]
    got = score.allpairs_pearson(x, sp.csr_matrix(tags), block_size=block_size, strategy=strategy)
    assert got == pytest.approx(expected, abs=1e-9)


def test_allpairs_pearson_with_zero_rows_matches_naive_upper_triangle(data):
    x, tags, sim_x, sim_t = data
    iu = np.triu_indices(len(x), 1)
    expected = pearsonr(sim_x[iu], sim_t[iu])[0]
    for strategy in ("blockwise", "factored"):
        assert score.allpairs_pearson(x, tags, strategy=strategy, block_size=10) == pytest.approx(expected, abs=1e-9)


def tied_data(n=500, seed=11):
    """Tags from few categorical values (many tied tag similarities) and embeddings with
    duplicated rows and few distinct coordinates (tied embedding similarities)."""
    rng = np.random.default_rng(seed)
    slots = []
    for size in (2, 3, 4):
        one_hot = np.zeros((n, size))
        one_hot[np.arange(n), rng.integers(0, size, n)] = 1.0
        slots.append(one_hot)
    tags = np.hstack(slots)
    tags[rng.random(n) < 0.05] = 0.0  # some untagged items
    x = rng.integers(-2, 3, size=(n, 4)).astype(float) + tags[:, :4]
    return x, tags


def test_allpairs_spearman_exact_matches_scipy_with_ties():
    x, tags = tied_data()
    sim_x, sim_t = cosine_matrix(x), cosine_matrix(tags)
    iu = np.triu_indices(len(x), 1)
    expected = spearmanr(np.round(sim_x[iu], 12), np.round(sim_t[iu], 12))[0]
    result = score.allpairs_spearman(x, sp.csr_matrix(tags), block_size=37)
    assert result.method == "exact"
    assert result.n_pairs == iu[0].size
    assert result.standard_error == 0.0
    assert result.value == pytest.approx(expected, abs=1e-9)
    # Many exact ties on both sides, so the tie handling is really exercised.
    assert np.unique(np.round(sim_t[iu], 12)).size < 30
    assert np.unique(np.round(sim_x[iu], 12)).size < iu[0].size / 50


def test_allpairs_spearman_float32_embeddings_with_ties():
    x, tags = tied_data(n=300, seed=5)
    sim_x = cosine_matrix(x.astype(np.float32).astype(np.float64))
    sim_t = cosine_matrix(tags)
    iu = np.triu_indices(len(x), 1)
    result = score.allpairs_spearman(x.astype(np.float32), tags, block_size=64)
    # float32 products differ from the float64 oracle in the last bits, which can reorder near-ties.
    assert result.value == pytest.approx(spearmanr(np.round(sim_x[iu], 12), np.round(sim_t[iu], 12))[0], abs=2e-3)


def test_allpairs_spearman_sampled_is_seeded_and_close_to_exact():
    x, tags = tied_data(n=400, seed=2)
    x = x + 0.3 * np.random.default_rng(0).standard_normal(x.shape)
    exact = score.allpairs_spearman(x, tags)
    sampled = score.allpairs_spearman(x, tags, max_exact_pairs=1000, sample_pairs=40_000, seed=9)
    again = score.allpairs_spearman(x, tags, max_exact_pairs=1000, sample_pairs=40_000, seed=9)
    other = score.allpairs_spearman(x, tags, max_exact_pairs=1000, sample_pairs=40_000, seed=10)
    assert sampled.method == "sampled" and sampled.n_pairs == 40_000
    assert sampled == again
    assert other.value != sampled.value
    assert 0 < sampled.standard_error < 0.02
    assert abs(sampled.value - exact.value) < 5 * sampled.standard_error


@pytest.mark.parametrize("include_self", [False, True])
def test_anchor_spearman_matches_scipy_with_ties(include_self):
    x, tags = tied_data(n=200, seed=4)
    sim_x, sim_t = cosine_matrix(x), cosine_matrix(tags)
    result = score.anchor_spearman(x, tags, anchors=60, include_self=include_self, block_size=25)
    expected = oracle_per_anchor(sim_x, sim_t, tags, result.anchors, include_self, ranks=True)
    assert_same_nan_close(result.per_anchor, expected, atol=1e-9)
    via_method = score.corrembed(x, tags, anchors=60, include_self=include_self, method="spearman")
    np.testing.assert_array_equal(via_method.per_anchor, result.per_anchor)


# --------------------------------------------------------------------------------------------
# Invariances (hypothesis)
# --------------------------------------------------------------------------------------------


def random_case(seed, n, d, t):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    tags = (rng.random((n, t)) < 0.3) * rng.random((n, t))
    return rng, x, tags


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(4, 40),
    d=st.integers(1, 6),
    t=st.integers(1, 8),
    scale=st.floats(1e-3, 1e3),
    include_self=st.booleans(),
    strategy=st.sampled_from(["blockwise", "factored"]),
)
def test_invariant_to_positive_scaling(seed, n, d, t, scale, include_self, strategy):
    rng, x, tags = random_case(seed, n, d, t)
    tags[0, 0] = 1.0  # at least one tagged item
    kwargs = dict(anchors="all", include_self=include_self, strategy=strategy, block_size=5)
    try:
        base = score.corrembed(x, tags, **kwargs)
    except ScoringError:
        return  # degenerate draw: no defined anchor at all
    row_scales = rng.uniform(0.01, 100.0, size=(n, 1))
    tag_scales = rng.uniform(0.01, 100.0, size=(n, 1))
    for x2, t2 in ((scale * x, tags), (row_scales * x, tag_scales * tags)):
        other = score.corrembed(x2, t2, **kwargs)
        assert_same_nan_close(other.per_anchor, base.per_anchor, atol=1e-9)
    assert score.allpairs_pearson(row_scales * x, tags) == pytest.approx(
        score.allpairs_pearson(x, tags), abs=1e-9, nan_ok=True
    )


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(4, 40),
    d=st.integers(1, 6),
    t=st.integers(1, 8),
    include_self=st.booleans(),
    method=st.sampled_from(["pearson", "spearman"]),
)
def test_invariant_to_consistent_permutation_of_items(seed, n, d, t, include_self, method):
    rng, x, tags = random_case(seed, n, d, t)
    tags[0, 0] = 1.0
    anchors = rng.integers(0, n, size=min(n, 7))
    perm = rng.permutation(n)  # new item k is old item perm[k]
    inverse = np.argsort(perm)
    try:
        base = score.corrembed(x, tags, anchors=anchors, include_self=include_self, method=method, block_size=3)
    except ScoringError:
        return
    moved = score.corrembed(
        x[perm],
        sp.csr_matrix(tags[perm]),
        anchors=inverse[anchors],
        include_self=include_self,
        method=method,
        block_size=4,
    )
    assert_same_nan_close(moved.per_anchor, base.per_anchor, atol=1e-9)
    assert score.allpairs_pearson(x[perm], tags[perm]) == pytest.approx(
        score.allpairs_pearson(x, tags), abs=1e-9, nan_ok=True
    )
    assert score.allpairs_spearman(x[perm], tags[perm]).value == pytest.approx(
        score.allpairs_spearman(x, tags).value, abs=1e-9, nan_ok=True
    )


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 40), d=st.integers(2, 6), include_self=st.booleans())
def test_cosine_distance_gives_the_same_correlation(seed, n, d, include_self):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    tags = (rng.random((n, 6)) < 0.4).astype(float)
    tags[:, 0] = 1.0  # no zero rows: pdist's cosine distance is defined everywhere
    dist_x, dist_t = squareform(pdist(x, "cosine")), squareform(pdist(tags, "cosine"))
    anchors = np.arange(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant rows: scipy warns, the oracle returns NaN
        from_distances = oracle_per_anchor(dist_x, dist_t, tags, anchors, include_self)
    result = score.corrembed(x, tags, anchors="all", include_self=include_self, block_size=8)
    assert_same_nan_close(result.per_anchor, from_distances, atol=1e-9)
    iu = np.triu_indices(n, 1)
    if np.ptp(dist_t[iu]) > 0:
        assert score.allpairs_pearson(x, tags) == pytest.approx(pearsonr(dist_x[iu], dist_t[iu])[0], abs=1e-9)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 300), k=st.integers(1, 320))
def test_anchor_sampling_reproducible_from_seed(seed, n, k):
    first = score.resolve_anchors(k, n, seed)
    np.testing.assert_array_equal(first, score.resolve_anchors(k, n, seed))
    assert first.dtype == np.int64
    assert first.size == min(k, n)
    assert np.unique(first).size == first.size
    assert first.min() >= 0 and first.max() < n
    np.testing.assert_array_equal(
        first, np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)) if k < n else np.arange(n)
    )


def test_different_seed_draws_different_anchors_and_report_is_reproducible():
    x, tags = make_data(n=300, d=5, t=20, seed=8, structured=1.0)
    a = score.corrembed(x, tags, anchors=50, seed=1)
    b = score.corrembed(x, tags, anchors=50, seed=1)
    c = score.corrembed(x, tags, anchors=50, seed=2)
    np.testing.assert_array_equal(a.per_anchor, b.per_anchor)
    assert not np.array_equal(a.anchors, c.anchors)
    r1 = score.score_report(x, tags, anchors=50, seed=3, bootstrap=200)
    r2 = score.score_report(x, tags, anchors=50, seed=3, bootstrap=200)
    assert same_scalars(r1.as_dict(), r2.as_dict())


def same_scalars(a: dict, b: dict) -> bool:
    """Dict equality where NaN equals NaN."""
    nan = lambda v: isinstance(v, float) and np.isnan(v)  # noqa: E731
    return a.keys() == b.keys() and all(a[k] == b[k] or (nan(a[k]) and nan(b[k])) for k in a)


# --------------------------------------------------------------------------------------------
# Report: controls, bootstrap, fields
# --------------------------------------------------------------------------------------------


def structured_catalogue(n=800, d=32, seed=21):
    """Items with 3 categorical tags; embeddings are a noisy function of the tags."""
    rng = np.random.default_rng(seed)
    blocks = []
    for size in (5, 8, 4):
        one_hot = np.zeros((n, size))
        one_hot[np.arange(n), rng.integers(0, size, n)] = 1.0
        blocks.append(one_hot)
    tags = np.hstack(blocks)
    x = tags @ rng.standard_normal((tags.shape[1], d)) + 0.8 * rng.standard_normal((n, d))
    return x, sp.csr_matrix(tags)


@pytest.fixture(scope="module")
def report():
    x, tags = structured_catalogue()
    return x, tags, score.score_report(x, tags, anchors=300, seed=5, bootstrap=500)


def test_controls_near_zero_where_real_embeddings_correlate(report):
    _, _, rep = report
    assert rep.corrembed > 0.4
    assert rep.allpairs_pearson > 0.4
    assert rep.anchor_spearman > 0.3
    assert rep.allpairs_spearman > 0.3
    for control in (rep.control_random, rep.control_shuffled_embeddings, rep.control_shuffled_tags):
        assert abs(control) < 0.03


def test_report_matches_standalone_functions(report):
    x, tags, rep = report
    base = score.corrembed(x, tags, anchors=300, seed=5)
    assert rep.corrembed == pytest.approx(base.mean, abs=1e-12)
    np.testing.assert_array_equal(rep.anchors, base.anchors)
    np.testing.assert_allclose(rep.per_anchor_pearson, base.per_anchor, atol=1e-12)
    assert rep.anchor_spearman == pytest.approx(score.anchor_spearman(x, tags, anchors=300, seed=5).mean, abs=1e-12)
    assert rep.allpairs_pearson == pytest.approx(score.allpairs_pearson(x, tags), abs=1e-12)
    assert rep.allpairs_spearman == pytest.approx(score.allpairs_spearman(x, tags).value, abs=1e-12)
    assert (rep.ci_low, rep.ci_high) == score.bootstrap_interval(base.per_anchor, 500, 0.95, 5)
    d = rep.as_dict()
    for key in (
        "corrembed",
        "ci_low",
        "ci_high",
        "allpairs_pearson",
        "anchor_spearman",
        "allpairs_spearman",
        "allpairs_spearman_method",
        "allpairs_spearman_se",
        "n_items",
        "n_anchors",
        "n_anchors_skipped",
        "control_random",
        "control_shuffled_embeddings",
        "control_shuffled_tags",
    ):
        assert key in d
    assert d["n_items"] == 800 and d["n_anchors"] == 300 and d["allpairs_spearman_method"] == "exact"
    table = rep.per_anchor_table()
    assert table.columns == ["anchor", "r_pearson", "r_spearman"]
    assert table.height == 300
    no_controls = score.score_report(x, tags, anchors=300, seed=5, bootstrap=500, controls=False)
    assert np.isnan(no_controls.control_random) and no_controls.corrembed == rep.corrembed


def test_bootstrap_interval_contains_mean_and_narrows_with_more_anchors():
    x, tags = structured_catalogue(n=1200, d=16, seed=2)
    widths = []
    for k in (60, 1000):
        result = score.corrembed(x, tags, anchors=k, seed=1)
        low, high = score.bootstrap_interval(result.per_anchor, 1000, 0.95, seed=0)
        assert low < result.mean < high
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]  # ~ 1/sqrt(k): sqrt(60/1000) = 0.24


def test_bootstrap_interval_oracle_and_nan_handling():
    values = np.random.default_rng(0).normal(0.2, 0.1, 400)
    with_nan = np.concatenate([values, [np.nan, np.nan]])
    low, high = score.bootstrap_interval(with_nan, 2000, 0.9, seed=4)
    rng = np.random.default_rng(4)
    means = values[rng.integers(0, values.size, size=(2000, values.size))].mean(axis=1)
    assert (low, high) == tuple(np.quantile(means, [0.05, 0.95]))
    # Normal theory: half-width ~ 1.645 * 0.1 / sqrt(400).
    assert (high - low) / 2 == pytest.approx(1.645 * values.std() / 20, rel=0.15)


# --------------------------------------------------------------------------------------------
# Errors a user can hit
# --------------------------------------------------------------------------------------------


def test_errors_name_the_problem():
    x, tags = make_data(n=20, d=3, t=5)
    with pytest.raises(ScoringError, match="rows must be aligned"):
        score.corrembed(x, tags[:-1])
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ScoringError, match="first row 4"):
        score.corrembed(bad, tags)
    with pytest.raises(ScoringError, match="no anchor has a defined"):
        score.corrembed(x, np.zeros_like(tags))
    with pytest.raises(ScoringError, match=r"\[0, 20\)"):
        score.corrembed(x, tags, anchors=np.array([0, 20]))
    with pytest.raises(ScoringError, match="at least 3 items"):
        score.corrembed(x[:2], tags[:2])
    with pytest.raises(ScoringError, match="anchors must be"):
        score.corrembed(x, tags, anchors="some")


# --------------------------------------------------------------------------------------------
# Vectorized row ranks
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 6), m=st.integers(1, 60), levels=st.integers(1, 8))
def test_row_ranks_match_scipy_rankdata_with_ties(seed, k, m, levels):
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    values = rng.integers(0, levels, size=(k, m)) / 7.0
    # Values equal by construction but differing in the last bits must tie.
    noisy = values + rng.choice([0.0, 1e-16, -2e-16], size=(k, m))
    expected = rankdata(np.round(values, 12), axis=1)
    np.testing.assert_array_equal(score.row_ranks(noisy), expected)
    continuous = rng.standard_normal((k, m))
    np.testing.assert_array_equal(score.row_ranks(continuous), rankdata(continuous, axis=1))


# --------------------------------------------------------------------------------------------
# Memory budget: blocks never span all rows
# --------------------------------------------------------------------------------------------


def test_memory_budget_bounds_every_similarity_block(monkeypatch):
    x, tags = make_data(n=400, d=6, t=20, seed=6, structured=1.0)
    budget_mb = 0.05
    blocks = prepare.block_sizes(None, 400, budget_mb)
    assert max(blocks.pearson, blocks.ranks, blocks.pairs) < 400
    assert blocks.ranks * 400 * prepare._BYTES_PER_ENTRY["ranks"] <= budget_mb * 2**20
    seen = []
    original = prepare.Operands.similarity_block

    def recording(self, rows, col_start=0):
        seen.append(len(rows))
        return original(self, rows, col_start)

    monkeypatch.setattr(prepare.Operands, "similarity_block", recording)
    small = score.score_report(x, tags, anchors=120, bootstrap=50, memory_budget_mb=budget_mb)
    assert seen and max(seen) <= max(blocks.pearson, blocks.ranks, blocks.pairs) < 400
    monkeypatch.setattr(prepare.Operands, "similarity_block", original)
    large = score.score_report(x, tags, anchors=120, bootstrap=50)
    for key, value in large.as_dict().items():
        if isinstance(value, float):
            assert small.as_dict()[key] == pytest.approx(value, abs=1e-12, nan_ok=True), key
    with pytest.raises(ScoringError, match="memory_budget_mb"):
        score.corrembed(x, tags, memory_budget_mb=0)


# --------------------------------------------------------------------------------------------
# Mantel permutation test
# --------------------------------------------------------------------------------------------


def test_mantel_null_matches_naive_permuted_matrices(data):
    x, tags, sim_x, sim_t = data
    result = score.mantel_test(x, tags, permutations=15, seed=3)
    iu = np.triu_indices(len(x), 1)
    assert result.statistic == pytest.approx(pearsonr(sim_x[iu], sim_t[iu])[0], abs=1e-6)
    rng = np.random.default_rng(3)
    expected = []
    for _ in range(15):
        perm = rng.permutation(len(x))
        expected.append(pearsonr(sim_x[iu], sim_t[np.ix_(perm, perm)][iu])[0])
    np.testing.assert_allclose(result.null, expected, atol=1e-6)
    assert result.p_value == (1 + np.sum(np.array(expected) >= result.statistic)) / 16


def test_mantel_p_small_for_structure_and_roughly_uniform_for_null():
    x, tags = structured_catalogue(n=150, d=8, seed=1)
    assert score.mantel_test(x, tags, permutations=99, seed=0).p_value == pytest.approx(0.01)
    rng = np.random.default_rng(5)
    p_values = []
    for _ in range(40):
        null_x = rng.standard_normal((60, 5))
        p_values.append(score.mantel_test(null_x, tags[:60], permutations=49, seed=int(rng.integers(1 << 31))).p_value)
    p_values = np.array(p_values)
    assert 0.35 < p_values.mean() < 0.65  # uniform on {1/50, ..., 1}: mean 0.51
    assert np.mean(p_values <= 0.1) < 0.25


def test_report_mantel_is_seeded_and_off_by_default():
    x, tags = make_data(n=120, d=5, t=20, seed=8, structured=1.0)
    off = score.score_report(x, tags, anchors=40, bootstrap=50)
    assert np.isnan(off.mantel_p) and off.permutations == 0
    on = score.score_report(x, tags, anchors=40, bootstrap=50, permutations=30)
    again = score.score_report(x, tags, anchors=40, bootstrap=50, permutations=30)
    assert on.mantel_p == again.mantel_p == pytest.approx(1 / 31)
    assert on.corrembed == off.corrembed
    with pytest.raises(ScoringError, match="permutations"):
        score.score_report(x, tags, permutations=-1)


# --------------------------------------------------------------------------------------------
# Written output: the drawn anchors are stored next to the score
# --------------------------------------------------------------------------------------------


def test_write_score_stores_drawn_anchor_ids(tmp_path, report):

    import polars as pl

    x, tags, rep = report
    ids = np.array([f"item-{i:04d}" for i in range(len(x))])
    write_score(
        rep,
        tmp_path / "score.json",
        tmp_path / "anchors.parquet",
        item_ids=ids,
        extra={"model": "m", "weighting": "binary"},
    )
    written = json.loads((tmp_path / "score.json").read_text())
    assert written["model"] == "m" and written["corrembed"] == rep.corrembed and written["seed"] == 5
    # Written through the typed record: it reads back through the same type, versioned.
    record = ScoreRecord.read(tmp_path / "score.json")
    assert written["schema_version"] == record.schema_version == ScoreRecord.SCHEMA_VERSION
    assert (record.model, record.weighting, record.corrembed) == ("m", "binary", rep.corrembed)
    table = pl.read_parquet(tmp_path / "anchors.parquet")
    assert table.columns == ["anchor", "item_id", "r_pearson", "r_spearman"]
    np.testing.assert_array_equal(table["anchor"].to_numpy(), score.resolve_anchors(300, len(x), 5))
    np.testing.assert_array_equal(table["item_id"].to_numpy(), ids[rep.anchors])
    np.testing.assert_array_equal(table["r_pearson"].to_numpy(), rep.per_anchor_pearson)
    # The stored anchors reproduce the score.
    again = score.corrembed(x, tags, anchors=table["anchor"].to_numpy())
    assert again.mean == pytest.approx(written["corrembed"], abs=1e-12)


# --------------------------------------------------------------------------------------------
# torch backend: run on the CPU here ("torch-cpu"), on CUDA when a GPU is present
# --------------------------------------------------------------------------------------------


def backend_agreement(x, tags, device, atol):
    """Every statistic on ``device`` equals the numpy backend's."""
    for strategy in ("blockwise", "factored"):
        for include_self in (False, True):
            got = score.corrembed(
                x, tags, anchors="all", strategy=strategy, include_self=include_self, block_size=37, device=device
            )
            ref = score.corrembed(x, tags, anchors="all", strategy=strategy, include_self=include_self, block_size=37)
            assert_same_nan_close(got.per_anchor, ref.per_anchor, atol=atol)
    got = score.corrembed(x, tags, anchors=60, method="spearman", block_size=16, device=device)
    ref = score.corrembed(x, tags, anchors=60, method="spearman", block_size=16)
    assert_same_nan_close(got.per_anchor, ref.per_anchor, atol=atol)
    for strategy in ("blockwise", "factored"):
        assert score.allpairs_pearson(x, tags, strategy=strategy, device=device) == pytest.approx(
            score.allpairs_pearson(x, tags, strategy=strategy), abs=atol
        )
    assert score.allpairs_spearman(x, tags, device=device).value == pytest.approx(
        score.allpairs_spearman(x, tags).value, abs=atol
    )
    got_m = score.mantel_test(x, tags, permutations=20, device=device)
    ref_m = score.mantel_test(x, tags, permutations=20)
    np.testing.assert_allclose(got_m.null, ref_m.null, atol=max(atol, 1e-6))


def test_torch_backend_on_cpu_equals_numpy(data):
    x, tags, sim_x, sim_t = data
    backend_agreement(x, tags, "torch-cpu", atol=1e-12)
    rep = score.score_report(x, tags, anchors=50, bootstrap=50, device="torch-cpu")
    ref = score.score_report(x, tags, anchors=50, bootstrap=50)
    assert rep.device == "torch-cpu" and ref.device == "cpu"
    assert rep.corrembed == pytest.approx(ref.corrembed, abs=1e-12)
    for key, value in ref.as_dict().items():  # controls included (torch: factored reuse too)
        if isinstance(value, float) and key != "device":
            assert rep.as_dict()[key] == pytest.approx(value, abs=1e-9, nan_ok=True), key
    with pytest.raises(ScoringError, match="device"):
        score.corrembed(x, tags, device="tpu")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device")
def test_cuda_backend_matches_oracle_and_numpy(data):
    import torch

    x, tags, sim_x, sim_t = data
    expected = oracle_per_anchor(sim_x, sim_t, tags, np.arange(len(x)), False)
    for strategy in ("blockwise", "factored"):
        got = score.corrembed(x, tags, anchors="all", strategy=strategy, block_size=7, device="cuda")
        assert_same_nan_close(got.per_anchor, expected, atol=1e-9)
    backend_agreement(x, tags, "cuda", atol=1e-9)
    # float32 products with TF32 off agree with the CPU's float32 products to float32 precision
    # (TF32 would be off by ~1e-3); the global TF32 flag is restored afterwards.
    x32, tags32 = structured_catalogue(n=3000, d=256, seed=4)
    x32 = x32.astype(np.float32)
    before = torch.backends.cuda.matmul.allow_tf32
    got = score.corrembed(x32, tags32, anchors="all", strategy="blockwise", device="cuda")
    ref = score.corrembed(x32, tags32, anchors="all", strategy="blockwise")
    assert torch.backends.cuda.matmul.allow_tf32 == before
    assert_same_nan_close(got.per_anchor, ref.per_anchor, atol=2e-5)
    rep = score.score_report(x32, tags32, anchors=500, bootstrap=100, device="cuda", permutations=20)
    assert rep.device.startswith("cuda") and rep.mantel_p == pytest.approx(1 / 21)


# --------------------------------------------------------------------------------------------
# The front: one options object, device "auto", public similarity blocks, docstring examples
# --------------------------------------------------------------------------------------------


def test_options_object_and_keyword_overrides_are_the_same_call():
    x, tags = make_data(n=120, d=6, t=15, seed=12)
    opts = score.ScoreOptions(anchors=40, seed=3, include_self=True, bootstrap=80, permutations=9)
    by_options = score.score_report(x, tags, opts)
    by_keywords = score.score_report(x, tags, anchors=40, seed=3, include_self=True, bootstrap=80, permutations=9)
    overridden = score.score_report(
        x, tags, score.ScoreOptions(anchors=7), anchors=40, seed=3, include_self=True, bootstrap=80, permutations=9
    )
    assert by_options.as_dict() == by_keywords.as_dict() == overridden.as_dict()
    np.testing.assert_array_equal(by_options.per_anchor_pearson, by_keywords.per_anchor_pearson)
    # Entry points keep their own defaults when no options object is given.
    assert score.pearson_scores(x, tags)[0].n_anchors == 120
    assert score.mantel_test(x, tags).permutations == 999
    with pytest.raises(TypeError, match="anchor_count"):
        score.corrembed(x, tags, anchor_count=5)


def test_options_from_the_workflow_config_match_the_schema_defaults():
    import yaml

    path = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"
    schema = yaml.safe_load(path.read_text())["properties"]["scoring"]["properties"]
    defaults = {key: spec["default"] for key, spec in schema.items()}
    opts = score.ScoreOptions.from_config(defaults)
    assert opts.max_exact_pairs == defaults["max_exact_spearman_pairs"] == score.DEFAULT_MAX_EXACT_PAIRS
    for key in (
        "anchors",
        "seed",
        "include_self",
        "bootstrap",
        "confidence",
        "permutations",
        "memory_budget_mb",
        "device",
        "allow_tf32",
    ):
        assert getattr(opts, key) == defaults[key], key


def test_device_auto_works_in_every_entry_point():
    x, tags = make_data(n=80, d=5, t=10, seed=13)
    expected = "cuda" if __import__("torch").cuda.is_available() else "cpu"
    assert score.resolve_score_device("auto") == expected
    rep = score.score_report(x, tags, anchors=20, bootstrap=20, device="auto")
    assert rep.device.startswith(expected)
    if expected == "cpu":
        cpu = score.score_report(x, tags, anchors=20, bootstrap=20, device="cpu")
        assert json.dumps(rep.as_dict()) == json.dumps(cpu.as_dict())  # NaN fields equal too
    for fn in (
        score.corrembed,
        score.anchor_spearman,
        score.allpairs_pearson,
        score.pearson_scores,
        score.allpairs_spearman,
    ):
        fn(x, tags, device="auto")
    score.mantel_test(x, tags, permutations=5, device="auto")
    score.similarity_block(x, tags, [0, 1], device="auto")


def test_public_similarity_block_matches_naive_cosine():
    x, tags = make_data(n=50, d=6, t=12, seed=14)
    rows = np.array([3, 0, 41])
    emb, tag = score.similarity_block(x, tags, rows, col_start=5)
    assert isinstance(emb, np.ndarray) and isinstance(tag, np.ndarray) and emb.shape == tag.shape == (3, 45)
    dense = tags.toarray() if sp.issparse(tags) else np.asarray(tags)
    np.testing.assert_allclose(emb, cosine_matrix(x)[rows, 5:], atol=1e-12)
    np.testing.assert_allclose(tag, cosine_matrix(dense)[rows, 5:], atol=1e-12)


def test_docstring_examples_run():
    import doctest
    import importlib

    modules = ["options", "backends", "threads", "prepare", "ranks", "inference", "api", "report", ""]
    failed = 0
    for name in modules:
        module = importlib.import_module("corrembed.score" + (f".{name}" if name else ""))
        result = doctest.testmod(module, extraglobs={"np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
        failed += result.failed
    assert failed == 0


def test_controls_equal_corrembed_of_their_shuffled_and_random_inputs():
    # The report's controls reuse the factor matrices (shuffles) or stream their random rows in
    # chunks; an independent CorrEmbed of the materialized control inputs must agree.
    x, tags = make_data(n=5000, d=8, t=30, seed=21, structured=1.0)
    for dtype in (np.float64, np.float32):
        data = x.astype(dtype)
        rep = score.score_report(data, tags, anchors=200, seed=9, bootstrap=10)
        seq_random, seq_emb, seq_tags, _ = np.random.SeedSequence(9).spawn(4)

        def ce(emb, tag_vectors, anchors=rep.anchors):
            return score.corrembed(emb, tag_vectors, anchors=anchors).mean

        tol = 1e-9 if dtype == np.float64 else 2e-6
        random_x = np.random.default_rng(seq_random).standard_normal(x.shape, dtype=dtype)
        assert rep.control_random == pytest.approx(ce(random_x, tags), abs=tol)
        perm = np.random.default_rng(seq_emb).permutation(len(x))
        assert rep.control_shuffled_embeddings == pytest.approx(ce(data[perm], tags), abs=tol)
        perm = np.random.default_rng(seq_tags).permutation(len(x))
        assert rep.control_shuffled_tags == pytest.approx(ce(data, tags[perm]), abs=tol)


def test_normalize_in_place_gives_the_same_report_and_overwrites_only_when_asked():
    x, tags = make_data(n=300, d=7, t=20, seed=22)
    x32 = x.astype(np.float32)
    kept = x32.copy()
    rep = score.score_report(x32, tags, anchors=50, bootstrap=20)
    np.testing.assert_array_equal(x32, kept)  # not asked: the caller's array is untouched
    again = score.score_report(x32, tags, anchors=50, bootstrap=20, normalize_in_place=True)
    assert json.dumps(again.as_dict()) == json.dumps(rep.as_dict())
    norms = np.linalg.norm(x32.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, atol=1e-6)  # asked: rows now unit


def test_sparse_tag_blocks_for_large_catalogues_equal_the_dense_route():
    # Above ~1 GiB of dense tags (n * t * 8 bytes) tag blocks come from sparse x dense products
    # over item ranges; they must equal the dense route's blocks.
    x, tags = make_data(n=3000, d=8, t=40, seed=23)
    dense_route = prepare.prepare_operands(x, tags)
    sparse_route = prepare.prepare_operands(x, tags)
    sparse_route.tag_layout.__dict__["dense_t"] = None  # what a large catalogue gets
    rows = np.array([5, 7, 2999, 100])
    for col_start in (0, 3):
        _, expected = dense_route.similarity_block(rows, col_start)
        _, got = sparse_route.similarity_block(rows, col_start)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    got = score.corrembed(x, tags, anchors=50, method="spearman").per_anchor
    monkey = tag_layout.HostTags.dense_t
    try:
        tag_layout.HostTags.dense_t = property(lambda self: None)
        sparse = score.corrembed(x, tags, anchors=50, method="spearman").per_anchor
    finally:
        tag_layout.HostTags.dense_t = monkey
    np.testing.assert_allclose(sparse, got, rtol=0, atol=1e-12)

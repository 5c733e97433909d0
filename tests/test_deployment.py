"""The deployment study (issue 23): variants against independent oracles, the paired tests and the
recommendation on hand-built cases, invariants by hypothesis."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA

from corrembed.deployment import (
    ModelCost,
    VariantScores,
    apply_variant,
    binary_codes,
    deployment_table,
    int8_decode,
    int8_encode,
    paired_difference,
    parse_variant,
    pca_basis,
    recommend,
    score_variant,
    variants_for,
    with_deployment_columns,
)
from corrembed.diagnostics.comparison import compare_models
from corrembed.errors import ConfigError
from corrembed.score import corrembed


def catalogue(n=400, d=24, t=12, seed=0, scales=None):
    """Tags and embeddings partly driven by the tags, with decaying per-dimension scales."""
    rng = np.random.default_rng(seed)
    tags = (rng.random((n, t)) < 0.3).astype(float)
    mix = rng.standard_normal((t, d))
    scales = np.linspace(3.0, 0.2, d) if scales is None else scales
    x = (tags @ mix + rng.standard_normal((n, d))) * scales + 5.0  # offset: not centred
    return x, sp.csr_matrix(tags)


# ---------------------------------------------------------------- variants against oracles


def test_pca_axes_match_scikit_learn_up_to_sign():
    x, _ = catalogue()
    basis = pca_basis(x)
    reference = PCA().fit(x)
    for i in range(x.shape[1]):
        assert abs(float(basis.components[:, i] @ reference.components_[i])) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(basis.variances, reference.explained_variance_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(basis.mean, reference.mean_, rtol=1e-12)


def test_pca_variant_projects_uncentred_embeddings():
    x, _ = catalogue()
    basis = pca_basis(x)
    got = apply_variant(x, parse_variant("pca5"), basis)
    np.testing.assert_allclose(got, x @ basis.components[:, :5], rtol=1e-12)


def test_pca_float32_scatter_close_to_float64():
    x, _ = catalogue(n=3000, d=32)
    v64 = pca_basis(x).components[:, :8]
    v32 = pca_basis(x.astype(np.float32)).components[:, :8]
    assert np.abs(np.abs(np.sum(v64 * v32, axis=0)) - 1).max() < 1e-5


def slow_int8(x):
    """Per-element reference of the FAISS QT_8bit min/max scalar quantizer."""
    n, d = x.shape
    out = np.empty_like(x)
    for j in range(d):
        lo, hi = min(x[:, j]), max(x[:, j])
        for i in range(n):
            if hi == lo:
                out[i, j] = lo
                continue
            code = int((x[i, j] - lo) / (hi - lo) * 255.0)  # floor of a value in [0, 255]
            code = min(code, 255)
            out[i, j] = lo + (code + 0.5) / 255.0 * (hi - lo)
    return out


def test_int8_matches_a_slow_per_element_reference():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 7)) * np.arange(1, 8)
    x[:, 3] = 2.5  # a constant dimension decodes to its value
    got = apply_variant(x, parse_variant("int8"))
    np.testing.assert_allclose(got, slow_int8(x), rtol=0, atol=1e-12)
    codes = int8_encode(x, x.min(axis=0), x.max(axis=0))
    assert codes.dtype == np.uint8 and codes[:, 0].min() == 0 and codes[:, 0].max() == 255
    # Decoding stays within half a level of the value.
    step = (x.max(axis=0) - x.min(axis=0)) / 255.0
    assert np.all(np.abs(int8_decode(codes, x.min(axis=0), x.max(axis=0), np.float64) - x) <= step + 1e-12)


def test_binary_cosine_is_one_minus_twice_the_hamming_fraction():
    x, _ = catalogue(n=50, d=33)
    b = apply_variant(x, parse_variant("binary"))
    bits = x >= x.mean(axis=0)  # the stored bits
    unit = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = unit @ unit.T
    for i in range(0, 50, 7):
        for j in range(50):
            hamming = sum(int(bits[i, k] != bits[j, k]) for k in range(33))
            assert cos[i, j] == pytest.approx(1.0 - 2.0 * hamming / 33, abs=1e-6)


def test_binary_codes_use_the_catalogue_mean_not_the_raw_sign():
    x = np.abs(catalogue(n=40)[0])  # non-negative, like ReLU features
    assert np.all(np.sign(x) == 1)
    b = binary_codes(x, x.mean(axis=0))
    assert (b == -1).any() and (b == 1).any()


def test_full_pca_basis_reproduces_the_full_model():
    x, tags = catalogue(n=300, d=20)
    anchors = np.arange(0, 300, 3)
    basis = pca_basis(x)
    full = corrembed(x, tags, anchors=anchors).per_anchor
    rotated = corrembed(apply_variant(x, parse_variant("pca20"), basis), tags, anchors=anchors).per_anchor
    np.testing.assert_allclose(rotated, full, rtol=0, atol=1e-9)


def test_fp16_is_close_to_float32():
    x, tags = catalogue(n=500, d=32)
    x = x.astype(np.float32)
    full = corrembed(x, tags, anchors=200).mean
    half = apply_variant(x, parse_variant("fp16"))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert half.dtype == np.float32 and np.abs(half - unit).max() <= 2.0**-11
    np.testing.assert_array_equal(half, unit.astype(np.float16).astype(np.float32))
    assert abs(corrembed(half, tags, anchors=200).mean - full) < 1e-4


def test_fp16_keeps_tiny_raw_features():
    # Raw random-init MobileNetV3 features are ~1e-9: cast as they are, fp16 makes them all 0.
    x, tags = catalogue(n=200, d=16)
    tiny = (x * 1e-9).astype(np.float32)
    assert not tiny.astype(np.float16).any()
    half = apply_variant(tiny, parse_variant("fp16"))
    assert abs(corrembed(half, tags, anchors=100).mean - corrembed(tiny, tags, anchors=100).mean) < 1e-4


def test_fewer_dimensions_can_score_higher():
    # Tag signal in the strongest directions, many weak noise directions: PCA drops the noise.
    rng = np.random.default_rng(7)
    n = 600
    tags = (rng.random((n, 4)) < 0.4).astype(float)
    signal = tags @ rng.standard_normal((4, 4)) * 5.0
    noise = rng.standard_normal((n, 60)) * 1.5
    x = np.hstack([signal + 0.1 * rng.standard_normal((n, 4)), noise]) + 3.0
    basis = pca_basis(x)
    full = corrembed(x, tags, anchors=300).mean
    small = corrembed(apply_variant(x, parse_variant("pca4"), basis), tags, anchors=300).mean
    assert small > full + 0.05


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.sampled_from([2, 4, 6]))
def test_pca_variant_is_invariant_to_a_rotation_of_the_embedding(seed, k):
    x, tags = catalogue(n=200, d=10, seed=seed, scales=np.array([8, 6, 4.5, 3.4, 2.6, 2, 1.5, 1.1, 0.8, 0.6]))
    q, _ = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal((10, 10)))
    name = parse_variant(f"pca{k}")
    a = corrembed(apply_variant(x, name, pca_basis(x)), tags, anchors="all").per_anchor
    b = corrembed(apply_variant(x @ q, name, pca_basis(x @ q)), tags, anchors="all").per_anchor
    np.testing.assert_allclose(a, b, atol=1e-7, equal_nan=True)


def test_variant_names_parse_and_bad_names_say_what_to_write():
    assert parse_variant("int8+pca128").name == "pca128+int8"
    assert parse_variant("fp32").name == "full"
    assert parse_variant("truncate64").bytes_per_item(1280) == 256
    assert parse_variant("pca128+binary").bytes_per_item(1280) == 16
    assert [v.name for v in variants_for(["pca32", "pca256", "pca32", "binary"], 128)] == ["full", "pca32", "binary"]
    for bad in ("pca0", "pca32+pca64", "int8+binary", "int4"):
        with pytest.raises(ConfigError, match="deployment.variants"):
            parse_variant(bad)


# ---------------------------------------------------------------- scoring and tests


def test_score_variant_full_equals_the_score_and_ndcg_matches_sklearn():
    from sklearn.metrics import ndcg_score

    x, tags = catalogue(n=120, d=16)
    anchors = np.arange(0, 120, 4)
    s = score_variant(x, {"binary": tags}, anchors, parse_variant("full"), retrieval_k=5)
    np.testing.assert_allclose(s.per_anchor["binary"], corrembed(x, tags, anchors=anchors).per_anchor, atol=1e-12)
    # nDCG@5 oracle: scikit-learn on the query's row without itself.
    unit_x = x / np.linalg.norm(x, axis=1, keepdims=True)
    dense = tags.toarray()
    norms = np.linalg.norm(dense, axis=1)
    unit_t = dense / np.where(norms > 0, norms, 1)[:, None]
    q = int(anchors[1])
    others = np.arange(120) != q
    expected = ndcg_score([(unit_t @ unit_t[q])[others]], [(unit_x @ unit_x[q])[others]], k=5)
    assert s.ndcg["binary"][1] == pytest.approx(expected, abs=1e-9)


def test_paired_difference_is_the_model_comparison_test():
    rng = np.random.default_rng(2)
    a = rng.normal(0.3, 0.1, 200)
    b = a - 0.01 + rng.normal(0, 0.05, 200)
    delta, low, high, p = paired_difference(b, a, resamples=500, seed=5)
    pair = compare_models({"a": a, "b": b}, resamples=500, seed=5, correction="none").pairs.row(0, named=True)
    assert pair["model_a"] == "a"
    assert delta == pytest.approx(-pair["difference"]) and p == pytest.approx(pair["p_value"])
    assert (low, high) == pytest.approx((-pair["ci_high"], -pair["ci_low"]))


def hand_built(r_best=0.30, shift_cheap=0.0005, shift_binary=-0.12, n_anchors=400):
    """Model a: full, pca16 (tied: a tiny shift), binary (clearly worse); model b: full (worse), faster."""
    rng = np.random.default_rng(11)
    base = rng.normal(r_best, 0.08, n_anchors)
    anchors = np.arange(n_anchors)

    def vs(name, r):
        v = parse_variant(name)
        return VariantScores(v, v.stored_dims(64), v.bytes_per_item(64), anchors, {"binary": r}, {"binary": r}, 10)

    scores = {
        "a": [
            vs("full", base),
            vs("pca16", base + shift_cheap + rng.normal(0, 0.05, n_anchors)),
            vs("binary", base + shift_binary),
        ],
        "b": [vs("full", base - 0.1 + rng.normal(0, 0.01, n_anchors)), vs("int8", base - 0.1)],
    }
    costs = {"a": ModelCost(images_per_second=50.0, device="cpu"), "b": ModelCost(images_per_second=500.0)}
    return deployment_table(scores, costs, {"a": 1000, "b": 1000}, resamples=400)


def test_recommendation_picks_the_cheapest_tied_configuration():
    table = hand_built()
    assert set(table.columns) >= {
        "model", "variant", "dims", "precision", "bytes_per_item", "weighting", "corrembed", "ci_low",
        "ci_high", "ndcg_at_10", "delta_vs_full", "p_vs_full", "delta_vs_best", "p_vs_best",
        "tied_with_best", "images_per_second", "schema_version",
    }  # fmt: skip
    rows = {(r["model"], r["variant"]): r for r in table.iter_rows(named=True)}
    assert rows[("a", "full")]["tied_with_best"] and rows[("a", "full")]["p_vs_best"] == 1.0
    assert rows[("a", "pca16")]["tied_with_best"] and not rows[("a", "binary")]["tied_with_best"]
    assert not rows[("b", "full")]["tied_with_best"]
    assert rows[("a", "binary")]["delta_vs_full"] == pytest.approx(-0.12)
    assert rows[("a", "full")]["index_mib"] == pytest.approx(1000 * 256 / 2**20)
    pick = recommend(table, "binary")
    assert pick.best_model == "a" and pick.cheaper_tied
    assert (pick.cheapest["model"], pick.cheapest["variant"], pick.cheapest["bytes_per_item"]) == ("a", "pca16", 64)
    # b is faster but not tied: the fastest tied model is a.
    assert pick.fastest["model"] == "a"
    assert "pca16" in pick.sentence() and "4x smaller" in pick.sentence()
    summary = pl.DataFrame({"model": ["a", "b"], "weighting": ["binary", "binary"], "corrembed": [0.3, 0.2]})
    extra = with_deployment_columns(summary, table)
    assert extra["deploy_variant"].to_list() == ["pca16", ""]
    assert extra["deploy_recommended"].to_list() == [True, False]


def test_no_cheaper_configuration_tied_is_a_valid_answer():
    table = hand_built(shift_cheap=-0.05)
    pick = recommend(table, "binary")
    assert not pick.cheaper_tied and pick.cheapest["variant"] == "full" and pick.cheapest["model"] == "a"
    assert pick.sentence().startswith("No cheaper configuration")


def test_an_undefined_variant_is_never_tied_nor_recommended():
    anchors = np.arange(100)
    r = np.random.default_rng(0).normal(0.3, 0.1, 100)
    full = VariantScores(parse_variant("full"), 64, 256, anchors, {"binary": r}, {"binary": r}, 10)
    dead = VariantScores(parse_variant("binary"), 64, 8, anchors, {"binary": np.full(100, np.nan)}, {"binary": r}, 10)
    table = deployment_table({"m": [full, dead]}, {"m": ModelCost()}, {"m": 10}, resamples=100)
    row = table.filter(pl.col("variant") == "binary").row(0, named=True)
    assert np.isnan(row["corrembed"]) and not row["tied_with_best"] and not row["tied_with_full"]
    assert recommend(table, "binary").cheapest["variant"] == "full"


@pytest.mark.parametrize("module", ["variants", "study", "table", "recommend", "stages"])
def test_documented_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"corrembed.deployment.{module}"))
    assert result.failed == 0


def test_ndcg_with_a_shared_ideal_equals_the_retrieval_metric():
    from corrembed.deployment.study import ideal_dcg
    from corrembed.diagnostics.neighbours import top_k_neighbours
    from corrembed.diagnostics.retrieval import ndcg_at_k

    x, tags = catalogue(n=150, d=12)
    anchors = np.arange(0, 150, 5)
    variant = parse_variant("int8")
    shared = {"binary": ideal_dcg(tags, anchors, 7)}
    got = score_variant(x, {"binary": tags}, anchors, variant, retrieval_k=7, ideal=shared).ndcg["binary"]
    expected = ndcg_at_k(tags, top_k_neighbours(apply_variant(x, variant), anchors, 7), 7)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)

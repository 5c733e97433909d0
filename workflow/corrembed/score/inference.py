"""Inference around the score: bootstrap interval, Mantel permutation test, controls."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ..errors import ScoringError
from .backends import NumpyBackend
from .options import Strategy
from .pearson import (
    MAX_DENSE_SLOTS,
    SCATTER_CHUNK,
    PearsonFactors,
    anchor_r,
    half_upper,
    pair_sums,
    pearson_factors,
    quadratic_forms,
)
from .peranchor import corrembed_of
from .prepare import BlockSizes, Operands, prepare_operands, row_norms, unit_rows
from .results import MantelResult
from .tag_layout import sparse_rowdot


def bootstrap_interval(
    per_anchor, resamples: int = 1000, confidence: float = 0.95, seed: int = 42
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of the defined (finite) per-anchor values.

    Parameters
    ----------
    per_anchor : (k,) float
        Per-anchor values, NaN entries ignored.
    resamples : int
        Bootstrap resamples (with replacement, same size as the defined values).
    confidence : float
        Interval coverage in (0, 1).
    seed : int
        Seed of ``np.random.default_rng``.

    Returns
    -------
    (low, high) floats.

    Examples
    --------
    >>> low, high = bootstrap_interval(np.linspace(0.0, 1.0, 101), resamples=200, seed=0)
    >>> bool(low < 0.5 < high)
    True
    """
    values = np.asarray(per_anchor, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ScoringError("bootstrap_interval: no defined per-anchor values")
    if not 0.0 < confidence < 1.0:
        raise ScoringError(f"confidence must lie in (0, 1), got {confidence}")
    if resamples < 1:
        raise ScoringError(f"bootstrap resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # Chunk the (resamples, k) index draw to bound memory.
    chunk = max(1, 2**24 // values.size)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def mantel_of(ops: Operands, fac: PearsonFactors, permutations: int, seed: int) -> MantelResult:
    """Mantel test from factors holding the scatter C and the centred embeddings.

    Each permutation re-labels the tag vectors and recomputes the all-pairs Pearson exactly:
    only K = sum_j (x_j - m) tau_pi(j)^T changes, one sparse (t, n) x dense (n, d) product.
    """
    if int(permutations) < 1:
        raise ScoringError(f"Mantel permutations must be >= 1, got {permutations}")
    sums = pair_sums(ops, fac)
    identity = np.arange(ops.n)
    # The observed value through the same float32 product as the null ones, so that rounding
    # cannot favour either side of the comparison.
    observed_sxy = sums.cross_sxy(ops.tag_layout.permuted_cross_sq_norm(fac.x_centred, identity))
    observed = sums.pearson(observed_sxy, ops.x.dtype)
    rng = np.random.default_rng(seed)
    null = np.empty(int(permutations))
    null_sxy = np.empty(int(permutations))
    for k in range(null.size):
        perm = rng.permutation(ops.n)
        null_sxy[k] = sums.cross_sxy(ops.tag_layout.permuted_cross_sq_norm(fac.x_centred, perm), perm)
        null[k] = sums.pearson(null_sxy[k], ops.x.dtype)
    if np.isnan(observed):
        return MantelResult(float("nan"), float("nan"), int(permutations), null)
    p = (1.0 + np.count_nonzero(null_sxy >= observed_sxy)) / (1.0 + null.size)
    return MantelResult(observed, float(p), int(permutations), null)


def _control(
    be,
    x: np.ndarray,
    tags: sp.csr_matrix,
    anchors: np.ndarray,
    include_self: bool,
    blocks: BlockSizes,
    strategy: Strategy = "auto",
) -> float:
    """CorrEmbed of a control input ((n, d) embeddings, (n, t) tags) over the same anchors; NaN
    when no anchor is defined."""
    ops = prepare_operands(x, tags, be)
    try:
        return corrembed_of(ops, anchors, include_self, blocks, "pearson", strategy).mean
    except ScoringError:
        return float("nan")


def control_scores(
    ops: Operands,
    factors: PearsonFactors | None,
    anchors: np.ndarray,
    include_self: bool,
    blocks: BlockSizes,
    strategy: Strategy,
    seeds,
) -> tuple[float, float, float]:
    """The three controls of :func:`score_report`: CorrEmbed of random Gaussian embeddings, of
    the embeddings shuffled across items and of the tags shuffled across items, over ``anchors``.

    When ``factors`` hold the embedding scatter C (the factored route), the controls reuse it: a
    permutation of the items changes neither C nor the tag scatter, only the cross matrix K (one
    sparse product, :func:`_paired_control`), and the random embeddings are streamed in chunks
    into their own small factor matrices (:func:`_random_control`), never held whole. Otherwise
    each control is a CorrEmbed of its own inputs (:func:`_control`).

    Parameters
    ----------
    seeds : three numpy SeedSequences (random, shuffled embeddings, shuffled tags).

    Returns
    -------
    (random, shuffled embeddings, shuffled tags) floats, NaN where no anchor is defined.
    """
    seq_random, seq_emb, seq_tags = seeds
    be, n = ops.backend, ops.n
    reuse = factors is not None and factors.scatter_x is not None and ops.tags.shape[1] <= MAX_DENSE_SLOTS
    if reuse and be.name == "numpy":
        random = _random_control(ops, factors, anchors, include_self, seq_random)
    else:
        random_x = np.random.default_rng(seq_random).standard_normal(ops.x.shape, dtype=ops.x.dtype)
        random = _control(be, random_x, ops.tags, anchors, include_self, blocks, strategy)
        del random_x
    perm_emb = np.random.default_rng(seq_emb).permutation(n)
    perm_tags = np.random.default_rng(seq_tags).permutation(n)
    if not reuse:
        shuffled_emb = _control(be, ops.x[perm_emb], ops.tags, anchors, include_self, blocks, strategy)
        shuffled_tags = _control(be, ops.x, ops.tags[perm_tags], anchors, include_self, blocks, strategy)
        return random, shuffled_emb, shuffled_tags
    # Item j with embedding x_e(j) and tags tau_j is, relabelled i = e(j), item i with x_i and
    # tau_e^-1(i); anchor a becomes anchor e(a). CorrEmbed does not depend on item labels.
    inverse = np.empty_like(perm_emb)
    inverse[perm_emb] = np.arange(n)
    shuffled_emb = _paired_control(ops, factors, inverse, perm_emb[anchors], include_self, blocks)
    shuffled_tags = _paired_control(ops, factors, perm_tags, anchors, include_self, blocks)
    return random, shuffled_emb, shuffled_tags


def _paired_control(
    ops: Operands, factors: PearsonFactors, sigma: np.ndarray, anchors: np.ndarray, include_self: bool, blocks
) -> float:
    """CorrEmbed (factored) when item i's embedding x_i is paired with tag vector tau_sigma[i].

    The embedding scatter C is that of ``factors`` (the same embeddings); the pass over the rows
    computes only the new cross matrix K = sum_i (x_i - m) tau_sigma[i]^T. NaN when no anchor
    is defined.
    """
    paired = ops.with_tags_of(sigma)
    fac = pearson_factors(paired, scatter=False, centred=False)
    fac = dataclasses.replace(fac, scatter_x=factors.scatter_x)
    try:
        return corrembed_of(paired, anchors, include_self, blocks, "pearson", "factored", fac, True).mean
    except ScoringError:
        return float("nan")


def _random_control(
    ops: Operands, factors: PearsonFactors, anchors: np.ndarray, include_self: bool, seed, chunk: int = SCATTER_CHUNK
) -> float:
    """CorrEmbed (factored, numpy) of random Gaussian embeddings of x's shape and dtype with the
    real tags, the random rows drawn ``chunk`` at a time and never held whole.

    One pass: per chunk, the unit random rows y_j add to the uncentred sums sum y_j y_j^T,
    sum tau_j y_j^T and sum y_j (float32 products, float64 sums); the anchors' rows are kept.
    Centring afterwards (C = sum y y^T - n m m^T) loses nothing here: random unit rows have a
    mean of norm ~ n^-1/2, so the correction is ~1/n of C. The tag scatter and mean are those of
    ``factors`` (same tags). Returns NaN when no anchor is defined.
    """
    n, d = ops.x.shape
    dtype = ops.x.dtype
    be = NumpyBackend()
    rng = np.random.default_rng(seed)
    wanted, where = np.unique(anchors, return_inverse=True)
    y_anchor = np.empty((wanted.size, d), dtype=dtype)
    y_anchor_sq = np.empty(wanted.size)
    gram = np.zeros((d, d))
    raw_cross_t = np.zeros((ops.tags.shape[1], d))
    col_sums = np.zeros(d)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        raw = rng.standard_normal((stop - start, d), dtype=dtype)
        y, y_sq = unit_rows(raw, row_norms(raw))
        del raw
        gram += y.T @ y
        raw_cross_t += ops.tag_layout.t_times(start, stop, y)
        col_sums += np.add.reduce(y, axis=0, dtype=np.float64)
        lo, hi = np.searchsorted(wanted, [start, stop])
        y_anchor[lo:hi] = y[wanted[lo:hi] - start]
        y_anchor_sq[lo:hi] = y_sq[wanted[lo:hi] - start]
    m = col_sums / n
    tag_mean = np.asarray(be.get(factors.tag_mean))
    upper = half_upper(gram - n * np.outer(m, m), be, y_anchor)
    cross = (raw_cross_t - n * np.outer(tag_mean, m)).T.astype(dtype)
    xa = y_anchor[where]
    ta = ops.tags[anchors]
    sxx = quadratic_forms(be, xa, upper)
    sxy = sparse_rowdot(ta, xa @ cross)
    dx = y_anchor_sq[where] - be.matvec64(xa, m)
    r = anchor_r(sxx, sxy, ta, dx, np.asarray(be.get(factors.scatter_t)), tag_mean, n, include_self, dtype)
    r[ops.zero_tag_rows[anchors]] = np.nan
    defined = np.isfinite(r)
    return float(r[defined].mean()) if defined.any() else float("nan")

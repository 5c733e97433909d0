"""Inference around the score: bootstrap interval, Mantel permutation test, controls."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import ScoringError
from .options import Strategy
from .pearson import _pair_sums, _PearsonFactors
from .peranchor import _corrembed
from .prepare import _Blocks, _Operands, _prepare
from .results import MantelResult


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


def _mantel(ops: _Operands, fac: _PearsonFactors, permutations: int, seed: int) -> MantelResult:
    """Mantel test from factors holding the scatter C and the centred embeddings.

    Each permutation re-labels the tag vectors and recomputes the all-pairs Pearson exactly:
    only K = sum_j (x_j - m) tau_pi(j)^T changes, one sparse (t, n) x dense (n, d) product.
    """
    if int(permutations) < 1:
        raise ScoringError(f"Mantel permutations must be >= 1, got {permutations}")
    be = ops.backend
    sums = _pair_sums(ops, fac)
    identity = np.arange(ops.n)
    # The observed value through the same float32 product as the null ones, so that rounding
    # cannot favour either side of the comparison.
    observed_sxy = sums.cross_sxy(be.permuted_cross_sq_norm(ops, fac.x_centred, identity))
    observed = sums.pearson(observed_sxy, ops.x.dtype)
    rng = np.random.default_rng(seed)
    null = np.empty(int(permutations))
    null_sxy = np.empty(int(permutations))
    for k in range(null.size):
        perm = rng.permutation(ops.n)
        null_sxy[k] = sums.cross_sxy(be.permuted_cross_sq_norm(ops, fac.x_centred, perm), perm)
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
    blocks: _Blocks,
    strategy: Strategy = "auto",
) -> float:
    """CorrEmbed of a control input ((n, d) embeddings, (n, t) tags) over the same anchors; NaN
    when no anchor is defined."""
    ops = _prepare(x, tags, be)
    try:
        return _corrembed(ops, anchors, include_self, blocks, "pearson", strategy).mean
    except ScoringError:
        return float("nan")

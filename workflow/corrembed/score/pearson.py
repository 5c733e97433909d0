"""Pearson statistics: the per-anchor CorrEmbed and the all-pairs Pearson, two exact routes.

Two exact strategies, picked by a flop-count model (``strategy="auto"``; when the per-anchor and
the all-pairs Pearson are both wanted, jointly, since one scatter serves both), or forced:

- ``"blockwise"``: for a block of b anchors, the (b, n) embedding-similarity block is one matrix
  product in the embeddings' dtype (float32 in, float32 product; float64 in, float64 product), the
  (b, n) tag-similarity block is a sparse x dense product in float64, and per-row centred float64
  moments give r_a. Cost ~ n_anchors * n * d.
- ``"factored"``: cosine similarity is bilinear, so the centred sums of a whole row follow from
  small matrices: with x_a the normalized embedding, m the mean normalized embedding,
  C = sum_j (x_j - m)(x_j - m)^T (d x d), and likewise for tag vectors tau,
  sum_j (S_aj - mean)^2 = x_a^T C x_a and sum_j (S_aj - mean)(T_aj - mean) = x_a^T K tau_a with
  K = sum_j (x_j - m) tau_j^T (d x t). Cost ~ (n / 2 + 9 n_anchors / 16) d^2, far below the
  n^2 d of the similarity matrix when d << n (exact all-anchors at catalogue scale):
  x_a^T C x_a is a blocked triangular product (:func:`quadratic_forms`), C a symmetric one.
  The all-pairs Pearson uses the same trick with Frobenius norms (:class:`_PairSums`).

Precision, both routes: products run in the embeddings' dtype ("float32 products"), every sum
over items is a float64 running sum ("float64 moments"). In the factored route each float32
product sums over at most d terms or :data:`SCATTER_CHUNK` items (C is summed in float64 over
chunks of centred rows: a single float32 product over 20k items would move CorrEmbed by ~1e-8,
chunks of 4096 by ~1e-9). For float32 embeddings the unit tag vectors are rounded to float32
once (:func:`~corrembed.score.prepare.prepare_operands`), so float32 products and float64 sums see the
same tag weights. Measured at n = 10k-20k, d = 2048: per-anchor r_a within 2.5e-7 of a float64
computation (the float32 rounding of the similarities themselves), CorrEmbed and the all-pairs
Pearson within 2e-9.

Both strategies share the factor pass (:func:`pearson_factors`): K, the (t, t) tag scatter and,
as needed, C or the centred embeddings, reused by the per-anchor CorrEmbed, the all-pairs
Pearson and the Mantel test. Memory-bound passes over rows (centring, sparse products) run in
threads (:func:`~corrembed.score.threads.map_rows`); the products use the BLAS's own threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ScoringError
from .correlation import PairMoments, anchor_rows, pearson_from_sums
from .options import Strategy
from .prepare import Operands, iter_blocks, upper_mask
from .tag_layout import sparse_rowdot

#: Above this many tag slots the (t, t) and (d, t) factor matrices are not built; per-anchor
#: Pearson then takes every moment from similarity blocks.
MAX_DENSE_SLOTS = 4096

#: Items per chunk of the d x d scatter: each chunk is one product in the embeddings' dtype
#: (a float32 sum over at most this many items, as long as a 2048-d similarity's), chunks are
#: summed in float64.
SCATTER_CHUNK = 4096

#: Column blocks of the triangular product in :func:`quadratic_forms`: more blocks skip more of
#: the zero triangle (k blocks: (k + 1) / 2k of a full product) but make smaller products.
_TRIANGLE_BLOCKS = 8


@dataclass(frozen=True)
class PearsonFactors:
    """Small matrices from which per-anchor centred moments follow (backend arrays, float64 unless noted).

    x_mean: (d,) mean normalized embedding m.  tag_mean: (t,) mean normalized tag vector mu.
    cross: (d, t) K = sum_j (x_j - m) tau_j^T.  scatter_t: (t, t) sum_j (tau_j - mu)(tau_j - mu)^T.
    scatter_x: (d, d) C = sum_j (x_j - m)(x_j - m)^T, only when asked for (factored strategy, all pairs).
    x_centred: (n, d) x_j - m in the embeddings' dtype, only when asked for (blockwise, Mantel).
    x_dot_mean: (n,) float64 x_j . m, host (the self pair, the all-pairs sums; |x_j|^2 is ops.x_sq).
    """

    x_mean: object
    tag_mean: object
    cross: object
    scatter_t: object
    scatter_x: object | None
    x_centred: object | None
    x_dot_mean: np.ndarray


def pearson_factors(ops: Operands, scatter: bool, centred: bool, chunk: int = SCATTER_CHUNK) -> PearsonFactors:
    """One pass over the rows: the factor matrices of :class:`PearsonFactors`.

    Parameters
    ----------
    ops : Operands
    scatter : bool
        Also sum the (d, d) scatter C (factored per-anchor route, factored all-pairs, Mantel).
    centred : bool
        Also keep the (n, d) centred embeddings (blockwise per-anchor route, Mantel).
    chunk : int
        Items per float32 product of the scatter (summed in float64 across chunks).
    """
    be = ops.backend
    n, d = ops.x.shape
    x_mean = be.col_means(ops.x_dev)
    # Centring happens in the embeddings' dtype (no float64 copy of the data): y_j = x_j - m',
    # m' the mean rounded to that dtype, whose own mean ybar = m - m' is known exactly.
    mean_x_dtype = be.like(x_mean, ops.x_dev)
    y_bar = x_mean - be.like(mean_x_dtype, x_mean)
    raw_cross_t = be.zeros((ops.tags.shape[1], d))
    scatter_x = be.zeros((d, d)) if scatter else None
    x_centred = [] if centred else None
    x_dot_mean = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows = ops.x_dev[start:stop]
        part = be.empty_like(rows)

        def centre(a: int, b: int, part=part, start=start):
            """Centre rows [a, b) into ``part``; return their x.m and tags^T (x - m) (t, d)."""
            # Single-threaded kernels (x.m, centring, the sparse tag product) on row ranges
            # (called within this iteration; the defaults bind this chunk for the linter).
            np_part = part[a - start : b - start]
            be.subtract(ops.x_dev[a:b], mean_x_dtype, out=np_part)
            return be.matvec64(ops.x_dev[a:b], x_mean), ops.tag_layout.t_times(a, b, np_part)

        ranges = be.map_rows(centre, start, stop)
        x_dot_mean.extend(be.get(r[0]) for r in ranges)
        for r in ranges:
            raw_cross_t += r[1]
        if scatter:
            scatter_x += part.T @ part  # one product per chunk (syrk-shaped), added into float64
        if centred:
            x_centred.append(part)
    if centred:
        x_centred = be.concat(x_centred)
    tag_mean = be.put(np.asarray(ops.tags.mean(axis=0)).ravel())
    # K = sum_j tau_j (x_j - m)^T = sum_j tau_j y_j^T - n mu ybar^T.
    cross_t = raw_cross_t - n * be.outer(tag_mean, y_bar)
    # The scatter needs no such correction: sum_j y_j y_j^T exceeds the centred one by n ybar ybar^T,
    # ~1e-13 of it (ybar ~ 2^-24 m), far below the rounding of the y_j themselves.
    # The (t, t) tag scatter on the host from one sparse product (float64; t is small).
    mean_host = be.get(tag_mean)
    scatter_t = (ops.tags.T @ ops.tags).toarray() - n * np.outer(mean_host, mean_host)
    return PearsonFactors(
        x_mean, tag_mean, cross_t.T, be.put(scatter_t), scatter_x, x_centred, np.concatenate(x_dot_mean)
    )


def _triangle_edges(d: int) -> np.ndarray:
    """Column-block edges of the blocked triangular product (:data:`_TRIANGLE_BLOCKS` blocks)."""
    return np.linspace(0, d, min(_TRIANGLE_BLOCKS, d) + 1).astype(int)


def half_upper(scatter, be, like):
    """U with x^T C x = 2 x^T U x for the symmetric (d, d) ``scatter`` C, in ``like``'s dtype.

    U is C above the diagonal, C / 2 on it and 0 below, but only where :func:`quadratic_forms`
    reads it: the blocks above the diagonal blocks are C itself, so only the diagonal blocks
    are made triangular."""
    upper = be.like(scatter, like, copy=True)
    edges = _triangle_edges(upper.shape[0])
    for c0, c1 in zip(edges[:-1], edges[1:]):
        w = c1 - c0
        mask = np.triu(np.ones((w, w)), 1) + 0.5 * np.eye(w)
        upper[c0:c1, c0:c1] *= be.like(be.put(mask), upper)
    return upper


def quadratic_forms(be, xa, upper) -> object:
    """x_a^T C x_a for each row of ``xa`` (b, d), given ``upper`` = :func:`half_upper` (d, d).

    2 x^T U x with U upper triangular: column block [c0, c1) of x U needs only rows [0, c1) of U,
    so the products skip most of the zero triangle. Products in xa's dtype (inner dimension
    <= d), the final sum over d in float64. Returns (b,) float64 backend array.
    """
    edges = _triangle_edges(upper.shape[0])
    total = be.zeros((xa.shape[0],))
    for c0, c1 in zip(edges[:-1], edges[1:]):
        if c1 > c0:
            total += be.rowdot64(xa[:, :c1] @ upper[:c1, c0:c1], xa[:, c0:c1])
    return 2.0 * total


def anchor_pearson(
    ops: Operands,
    anchors: np.ndarray,
    include_self: bool,
    block: int,
    factored: bool,
    factors: PearsonFactors | None = None,
) -> np.ndarray:
    """Per-anchor Pearson r_a, (n_anchors,) float64.

    Centred sums over all n items: tag side and cross term from the factor matrices
    (sum_j (S_aj - mean)(T_aj - mean) = x_a^T K tau_a); embedding side from x_a^T C x_a
    (factored) or from the centred similarity block (blockwise). The self pair is then removed
    when ``include_self`` is false (one-point downdate of centred sums).
    """
    if ops.tags.shape[1] > MAX_DENSE_SLOTS:
        return anchor_rows(ops, anchors, include_self, "pearson", block)
    be = ops.backend
    n = ops.n
    fac = factors if factors is not None else pearson_factors(ops, scatter=factored, centred=not factored)
    # Products with the moments run in the embeddings' dtype, as the similarity products do.
    cross = be.like(fac.cross, ops.x_dev)
    upper = half_upper(fac.scatter_x, be, ops.x_dev) if factored else None
    if factored:
        # Without a (b, n) block to bound, blocks of anchors only bound the (b, d) copies.
        block = max(block, 4096)
    scatter_t, tag_mean = be.get(fac.scatter_t), be.get(fac.tag_mean)
    out = np.empty(anchors.size)
    for start in range(0, anchors.size, block):
        rows = anchors[start : start + block]
        contiguous = rows[-1] - rows[0] == rows.size - 1 and bool(np.all(np.diff(rows) == 1))
        # All anchors (the exact score) come in runs: slice rather than gather a copy.
        xa = ops.x_dev[int(rows[0]) : int(rows[-1]) + 1] if contiguous else ops.x_dev[be.index(rows)]
        if factored:
            sxx = be.get(quadratic_forms(be, xa, upper))
        else:
            # The (b, n) block x_a . (x_j - m) = S_aj - mean_j S_aj: one product in x's dtype,
            # already centred, so its sum of squares has no cancellation.
            sxx = be.get(be.row_sum_squares(xa @ fac.x_centred.T))
        # Tag side from the sparse anchor rows (host, float64): tau_a^T Sigma_t tau_a.
        ta = ops.tags[rows]
        sxy = ops.tag_layout.rowdot(rows, ta, xa @ cross)
        dx = ops.x_sq[rows] - fac.x_dot_mean[rows]
        out[start : start + rows.size] = anchor_r(sxx, sxy, ta, dx, scatter_t, tag_mean, n, include_self, ops.x.dtype)
    return out


def anchor_r(sxx, sxy, ta, dx, scatter_t, tag_mean, n: int, include_self: bool, x_dtype) -> np.ndarray:
    """Per-anchor Pearson r from the centred embedding sums over all n items.

    Parameters
    ----------
    sxx, sxy : (b,) float64
        sum_j (S_aj - mean)^2 and sum_j (S_aj - mean)(T_aj - mean) over all n items.
    ta : (b, t) CSR float64
        The anchors' unit tag vectors.
    dx : (b,) float64
        x_a.x_a - x_a.m, the anchor's own (self-pair) centred embedding similarity.
    scatter_t : (t, t) float64; tag_mean : (t,) float64
        The tag scatter and mean (host).
    n : int; include_self : bool; x_dtype : the embeddings' dtype.

    Returns
    -------
    (b,) float64, NaN where undefined. The tag side is tau_a^T Sigma_t tau_a; without
    ``include_self`` the self pair is removed from all three sums (one-point downdate).
    """
    syy = sparse_rowdot(ta, ta @ scatter_t)
    if not include_self:
        # Remove the self pair (x_a.x_a, tau_a.tau_a) from the centred sums over all n items.
        dt = sparse_rowdot(ta, ta) - ta @ tag_mean
        f = n / (n - 1)
        sxx = sxx - f * dx * dx
        syy = syy - f * dt * dt
        sxy = sxy - f * dx * dt
    count = n if include_self else n - 1
    return pearson_from_sums(sxx, syy, sxy, count, x_dtype, np.float64)


def _check_strategy(strategy: Strategy) -> None:
    """Raise a ScoringError unless ``strategy`` is "auto", "blockwise" or "factored"."""
    if strategy not in ("auto", "blockwise", "factored"):
        raise ScoringError(f"strategy must be 'auto', 'blockwise' or 'factored', got {strategy!r}")


def _pearson_costs(ops: Operands, n_rows: int) -> dict[str, float]:
    """Multiply-adds of each piece, all in x's dtype: the symmetric scatter is half a product, the
    blocked triangular quadratic forms ~(k + 1) / 2k of one; blockwise routes also make a few
    passes over each similarity block."""
    n, d = ops.x.shape
    return {
        "scatter": n * d * d / 2,
        "anchors_factored": n_rows * d * d * (_TRIANGLE_BLOCKS + 1) / (2 * _TRIANGLE_BLOCKS),
        "anchors_blockwise": n_rows * n * d + 4.0 * n_rows * n,
        "pairs_blockwise": n * n * d / 2 + 4.0 * n * n / 2,
    }


def use_factored(ops: Operands, n_rows: int, strategy: Strategy) -> bool:
    """Whether per-anchor Pearson over ``n_rows`` anchors alone is cheaper from the d x d scatter."""
    _check_strategy(strategy)
    if strategy != "auto":
        return strategy == "factored"
    c = _pearson_costs(ops, n_rows)
    return c["scatter"] + c["anchors_factored"] < c["anchors_blockwise"]


def _use_factored_allpairs(ops: Operands, strategy: Strategy) -> bool:
    """Whether the all-pairs Pearson alone is cheaper from the scatter (n d^2 / 2) than from blocks (n^2 d / 2)."""
    _check_strategy(strategy)
    if ops.tags.shape[1] > MAX_DENSE_SLOTS:
        return False
    if strategy != "auto":
        return strategy == "factored"
    c = _pearson_costs(ops, 0)
    return c["scatter"] < c["pairs_blockwise"]


def pearson_plan(ops: Operands, n_rows: int, strategy: Strategy) -> tuple[bool, bool]:
    """(per-anchor factored, all-pairs factored) when both are computed: one scatter serves both,
    so the cheapest of the four combinations is chosen jointly."""
    _check_strategy(strategy)
    if strategy != "auto" or ops.tags.shape[1] > MAX_DENSE_SLOTS:
        return use_factored(ops, n_rows, strategy), _use_factored_allpairs(ops, strategy)
    c = _pearson_costs(ops, n_rows)

    def total(plan: tuple[bool, bool]) -> float:
        """Multiply-adds of a plan (per-anchor factored, all-pairs factored)."""
        anchors_factored, pairs_factored = plan
        return (
            (c["scatter"] if anchors_factored or pairs_factored else 0.0)
            + (c["anchors_factored"] if anchors_factored else c["anchors_blockwise"])
            + (0.0 if pairs_factored else c["pairs_blockwise"])
        )

    return min(((a, p) for a in (True, False) for p in (True, False)), key=total)


def _allpairs_pearson_blockwise(ops: Operands, block: int) -> float:
    """All-pairs Pearson from upper-triangle similarity blocks of ``block`` rows (running moments)."""
    be = ops.backend
    moments = PairMoments()
    for rows in iter_blocks(np.arange(ops.n), block):
        start = int(rows[0])
        emb, tag = ops.similarity_block(rows, col_start=start)
        mask = upper_mask(rows, start, emb.shape[1])
        moments.add(be.get(emb)[mask], be.get(tag)[mask])
    return moments.pearson(ops.x.dtype, np.float64)


@dataclass(frozen=True)
class _PairSums:
    """Float64 sums over the upper-triangle pairs, from the factor matrices (no similarity block).

    With S = X X^T, T = Tau Tau^T, x~_j = x_j - m, a_i = x_i.m - m.m, b_i = tau_i.mu - mu.mu:
    sum_ij S_ij = n^2 m.m; sum_ij S_ij^2 = ||C||^2 + 2n sum a_i^2 + n^2 (m.m)^2 (C the scatter);
    sum_ij S_ij T_ij = ||K||^2 + 2n sum a_i b_i + n^2 (m.m)(mu.mu) (K = sum_j x~_j tau_j^T).
    Pairs i < j: remove the diagonal (S_ii = |x_i|^2) and halve. Permuting the items of the tag
    side (the Mantel null) changes only K, b and the diagonal products.
    """

    n: int
    pairs: float
    sum_x: float
    sum_y: float
    sxx: float
    syy: float
    a: np.ndarray
    b: np.ndarray
    x_sq: np.ndarray
    t_sq: np.ndarray
    mm: float
    tt: float

    def cross_sxy(self, cross_sq_norm: float, perm: np.ndarray | None = None) -> float:
        """Centred sum of products over pairs, given ||K||^2 for tag rows permuted by ``perm``."""
        b = self.b if perm is None else self.b[perm]
        t_sq = self.t_sq if perm is None else self.t_sq[perm]
        n = self.n
        total = cross_sq_norm + 2.0 * n * float(self.a @ b) + n * n * self.mm * self.tt
        upper = (total - float(self.x_sq @ t_sq)) / 2.0
        return upper - self.sum_x * self.sum_y / self.pairs

    def pearson(self, sxy: float, x_dtype) -> float:
        """The all-pairs Pearson for the centred sum of products ``sxy`` (NaN when a side is constant)."""
        r = pearson_from_sums(
            np.array([self.sxx]), np.array([self.syy]), np.array([sxy]), int(self.pairs), x_dtype, np.float64
        )
        return float(r[0])


def _sum_squares(a: np.ndarray) -> float:
    """Sum of squares of a float64 array through the BLAS dot (no squared temporary)."""
    flat = np.ascontiguousarray(a).ravel()
    return float(flat @ flat)


def pair_sums(ops: Operands, fac: PearsonFactors) -> _PairSums:
    """The all-pairs sums of :class:`_PairSums` from factors that include the scatter C."""
    be = ops.backend
    n = ops.n
    m, mu = be.get(fac.x_mean), be.get(fac.tag_mean)
    scatter_x, scatter_t = be.get(fac.scatter_x), be.get(fac.scatter_t)
    x_sq = ops.x_sq
    t_sq = np.asarray(ops.tags.multiply(ops.tags).sum(axis=1)).ravel()
    mm, tt = float(m @ m), float(mu @ mu)
    a = fac.x_dot_mean - mm
    b = np.asarray(ops.tags @ mu).ravel() - tt
    pairs = n * (n - 1) / 2.0
    sum_x = (n * n * mm - x_sq.sum()) / 2.0
    sum_y = (n * n * tt - t_sq.sum()) / 2.0
    all_xx = _sum_squares(scatter_x) + 2.0 * n * (a @ a) + n * n * mm * mm
    all_yy = _sum_squares(scatter_t) + 2.0 * n * (b @ b) + n * n * tt * tt
    sxx = (all_xx - x_sq @ x_sq) / 2.0 - sum_x * sum_x / pairs
    syy = (all_yy - t_sq @ t_sq) / 2.0 - sum_y * sum_y / pairs
    return _PairSums(n, pairs, sum_x, sum_y, sxx, syy, a, b, x_sq, t_sq, mm, tt)


def _allpairs_pearson_factored(ops: Operands, fac: PearsonFactors) -> float:
    """All-pairs Pearson from the factor matrices (with the scatter C): no similarity block."""
    sums = pair_sums(ops, fac)
    cross = ops.backend.get(fac.cross)
    return sums.pearson(sums.cross_sxy(_sum_squares(cross)), ops.x.dtype)


def allpairs_pearson_of(
    ops: Operands,
    block: int,
    strategy: Strategy,
    factors: PearsonFactors | None = None,
    factored: bool | None = None,
) -> float:
    """All-pairs Pearson by the route ``factored`` (None: chosen from ``strategy``), reusing
    ``factors`` when they hold the scatter; ``block`` rows per similarity block otherwise."""
    if not (_use_factored_allpairs(ops, strategy) if factored is None else factored):
        return _allpairs_pearson_blockwise(ops, block)
    if factors is None or factors.scatter_x is None:
        factors = pearson_factors(ops, scatter=True, centred=False)
    return _allpairs_pearson_factored(ops, factors)

"""Correlations from float64 moments: row-wise Pearson on blocks, running pair moments, and the
per-anchor correlations computed from similarity blocks (the "blockwise" route)."""

from __future__ import annotations

import numpy as np

from .prepare import Operands
from .ranks import backend_row_ranks, spearman_row_sums
from .threads import map_rows


def _undefined_threshold(count: int, dtype) -> float:
    """Centred sum of squares at or below which a row counts as constant (rounding noise only).

    Similarities lie in [-1, 1]: values computed in ``dtype`` carry errors ~16 eps each, and the
    factored float64 sums carry absolute errors ~eps64 * count. So a row whose similarities
    vary by less than ~1e-7 (float64) or ~2e-6 (float32) in standard deviation is constant.
    """
    eps = np.finfo(dtype).eps
    return count * max((16.0 * eps) ** 2, 64.0 * np.finfo(np.float64).eps)


def pearson_from_sums(sxx, syy, sxy, count, x_dtype, y_dtype) -> np.ndarray:
    """Pearson r from centred float64 sums, NaN where either side is constant.

    Parameters
    ----------
    sxx, syy, sxy : (k,) float64
        Centred sums of squares and of products.
    count : int
        Values per sum (for the constant-row threshold).
    x_dtype, y_dtype : numpy dtypes
        Dtypes the x and y values were computed in (float32 rounding is noisier).

    Returns
    -------
    (k,) float64 in [-1, 1] or NaN.
    """
    defined = (sxx > _undefined_threshold(count, x_dtype)) & (syy > _undefined_threshold(count, y_dtype))
    r = np.full(np.shape(sxx), np.nan)
    r[defined] = sxy[defined] / np.sqrt(sxx[defined] * syy[defined])
    return np.clip(r, -1.0, 1.0)


def row_pearson(be, a, b, self_col: np.ndarray | None, a_dtype, b_dtype) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (both (k, m) backend arrays).

    With ``self_col`` (k,) the entry ``[i, self_col[i]]`` is left out of row i. Centred float64
    moments; NaN where a row is constant. Returns (k,) numpy float64.
    """
    k, m = a.shape
    a = be.f64(a)  # our own copies, centred in place below
    b = be.f64(b)
    rows = be.arange(k)
    if self_col is None:
        count = m
        mean_a = be.row_sums(a) / count
        mean_b = be.row_sums(b) / count
    else:
        cols = be.index(self_col)
        count = m - 1
        mean_a = (be.row_sums(a) - a[rows, cols]) / count
        mean_b = (be.row_sums(b) - b[rows, cols]) / count
    a -= mean_a[:, None]
    b -= mean_b[:, None]
    sxx = be.rowdot(a, a)
    syy = be.rowdot(b, b)
    sxy = be.rowdot(a, b)
    if self_col is not None:
        da = a[rows, cols]
        db = b[rows, cols]
        sxx = sxx - da * da
        syy = syy - db * db
        sxy = sxy - da * db
    return pearson_from_sums(be.get(sxx), be.get(syy), be.get(sxy), count, a_dtype, b_dtype)


def anchor_rows(ops: Operands, anchors: np.ndarray, include_self: bool, method: str, block: int) -> np.ndarray:
    """Per-anchor correlations over similarity blocks of ``block`` anchors.

    Parameters
    ----------
    ops : Operands
    anchors : (k,) int64
    include_self : bool
        Keep each anchor's own item among the compared ones.
    method : {"pearson", "spearman"}
        Correlate the similarity rows, or their average ranks.
    block : int
        Anchors per (block, n) similarity block.

    Returns
    -------
    (k,) float64, NaN where undefined.
    """
    be = ops.backend
    if method == "spearman" and be.name == "numpy" and ops.n <= _MAX_SORT_KEY_ITEMS:
        return _anchor_spearman_rows(ops, anchors, include_self, block)
    out = np.empty(anchors.size)
    for start in range(0, anchors.size, block):
        rows = anchors[start : start + block]
        emb, tag = ops.similarity_block(rows)
        self_col = None if include_self else rows
        if method == "pearson":
            out[start : start + rows.size] = row_pearson(be, emb, tag, self_col, ops.x.dtype, np.float64)
        else:
            emb_ranks = backend_row_ranks(be, emb, self_col)
            del emb
            tag_ranks = backend_row_ranks(be, tag, self_col)
            del tag
            out[start : start + rows.size] = row_pearson(be, emb_ranks, tag_ranks, self_col, np.float64, np.float64)
    return out


#: Items up to which a column index fits beside the 42 value bits of a uint64 sort key.
_MAX_SORT_KEY_ITEMS = 2**22

#: Similarity entries a thread should get per hand-off (fewer rows per thread below this).
_ENTRIES_PER_THREAD = 2**17


def _anchor_spearman_rows(ops: Operands, anchors: np.ndarray, include_self: bool, block: int) -> np.ndarray:
    """Per-anchor Spearman on the CPU: (b, n) similarity blocks, then each row ranked on its own
    (:func:`~corrembed.score.ranks.spearman_row_sums`, one plain sort per row and side) in the
    pass threads, so the working memory is the block plus a few (n,) arrays per thread.

    Returns (n_anchors,) float64, NaN where undefined.
    """
    n = ops.n
    sums = np.empty((anchors.size, 3))
    min_rows = max(1, _ENTRIES_PER_THREAD // n)
    for start in range(0, anchors.size, block):
        rows = anchors[start : start + block]
        emb, tag = ops.similarity_block(rows)

        def rank_rows(a: int, b: int, emb=emb, tag=tag, rows=rows, start=start) -> None:
            """Rank rows [a, b) of this block into ``sums`` (bound defaults: called in this iteration)."""
            for i in range(a, b):
                self_col = None if include_self else int(rows[i])
                sums[start + i] = spearman_row_sums(emb[i], tag[i], self_col)

        map_rows(rank_rows, 0, rows.size, min_rows=min_rows)
        del emb, tag
    count = n if include_self else n - 1
    return pearson_from_sums(sums[:, 0], sums[:, 1], sums[:, 2], count, np.float64, np.float64)


class PairMoments:
    """Running float64 centred moments of (x, y) pairs, merged block by block (Chan et al.)."""

    def __init__(self):
        """No pairs yet."""
        self.count = 0
        self.mean_x = self.mean_y = 0.0
        self.sxx = self.syy = self.sxy = 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Merge the pairs (x[i], y[i]) of two (k,) arrays (x any float dtype, y float64)."""
        k = x.size
        if k == 0:
            return
        x = x.astype(np.float64)
        mx, my = x.mean(), y.mean()
        dx, dy = x - mx, y - my
        sxx, syy, sxy = dx @ dx, dy @ dy, dx @ dy
        n0 = self.count
        total = n0 + k
        ex, ey = mx - self.mean_x, my - self.mean_y
        self.sxx += sxx + ex * ex * n0 * k / total
        self.syy += syy + ey * ey * n0 * k / total
        self.sxy += sxy + ex * ey * n0 * k / total
        self.mean_x += ex * k / total
        self.mean_y += ey * k / total
        self.count = total

    def pearson(self, x_dtype, y_dtype) -> float:
        """The Pearson correlation of every pair added so far (NaN when a side is constant)."""
        r = pearson_from_sums(
            np.array([self.sxx]), np.array([self.syy]), np.array([self.sxy]), self.count, x_dtype, y_dtype
        )
        return float(r[0])

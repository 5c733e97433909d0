"""Average ranks of similarity rows, ties found after rounding.

Ties: tag similarities take few distinct values, and values equal by construction can differ in
the last bit depending on summation order. Every rank-based statistic therefore ranks similarities
rounded to :data:`TIE_DECIMALS` decimals (on both sides).
"""

from __future__ import annotations

import numpy as np

from .backends import TIE_DECIMALS, TIE_SCALE, NumpyBackend

__all__ = ["TIE_DECIMALS", "row_ranks"]


def row_ranks(sim: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, float64) within each row of a (k, m) similarity array.

    Values are rounded to TIE_DECIMALS decimals first, so values equal up to summation order tie;
    tied values get the mean of their ranks (as ``scipy.stats.rankdata(..., axis=1)``).
    Vectorized: one row-wise sort, tie runs found by comparing sorted neighbours.

    Examples
    --------
    >>> row_ranks(np.array([[0.3, 0.1, 0.3]])).tolist()
    [[2.5, 1.0, 2.5]]
    """
    be = NumpyBackend()
    return be.average_ranks(be.quantize(np.atleast_2d(np.asarray(sim))))


def backend_row_ranks(be, sim, self_col: np.ndarray | None):
    """Average ranks (float64) of each row's similarities rounded to TIE_DECIMALS decimals.

    The self entry, when given ((k,) column per row), is ranked last so the others get the ranks
    1..m-1 they have among themselves; :func:`~corrembed.score.correlation.row_pearson` then
    leaves it out. ``sim`` is a (k, m) backend array; returns one of the same shape.
    """
    q = be.quantize(sim)
    if self_col is not None:
        be.set_entries(q, be.arange(q.shape[0]), be.index(self_col), np.iinfo(np.int64).max)
    return be.average_ranks(q)


#: Quantized similarities (offset to be non-negative) take at most this many bits: 3e12 < 2**42.
_VALUE_BITS = 42
_SENTINEL = np.iinfo(np.uint64).max
#: Offset and clip bound in units of 10**-TIE_DECIMALS: 1.5, so that float32 similarities just
#: above 1 (an item with itself, duplicates: 1 + 1e-7) keep their order instead of tying with 1.
_KEY_OFFSET = 1.5 * TIE_SCALE


def _quantized_keys(values: np.ndarray) -> np.ndarray:
    """(m,) uint64: similarities rounded to TIE_DECIMALS decimals, offset by 1.5 to [0, 3e12]
    (< 2**42; anything beyond [-1.5, 1.5], impossible for cosines, is clipped), so that
    ``np.sort`` on them orders by value exactly as the rounded values."""
    q = np.rint(values.astype(np.float64) * TIE_SCALE)
    np.clip(q, -_KEY_OFFSET, _KEY_OFFSET, out=q)
    q += _KEY_OFFSET
    return q.astype(np.uint64)


def _centred_ranks_sorted(values: np.ndarray, self_col: int | None, index_bits: int):
    """Items in value order and their centred average ranks, from one ``np.sort`` (no argsort).

    Each value becomes one uint64 key, its quantized value in the high bits and its column in the
    low ``index_bits``: sorting the keys (a plain sort, ~3x faster than an argsort) orders the
    values and carries their columns along. The self column, when given, gets the largest key
    and is dropped from the end.

    Returns
    -------
    cols : (m,) intp
        Columns in value order (m = len(values), less one with ``self_col``).
    ranks : (m,) float64
        Their average ranks (ties averaged) minus the mean rank (m + 1) / 2.
    """
    m_all = values.shape[0]
    keys = _quantized_keys(values)
    keys <<= np.uint64(index_bits)
    keys |= np.arange(m_all, dtype=np.uint64)
    if self_col is not None:
        keys[self_col] = _SENTINEL
    keys.sort()
    m = m_all if self_col is None else m_all - 1
    keys = keys[:m]
    cols = (keys & np.uint64((1 << index_bits) - 1)).astype(np.intp)
    keys >>= np.uint64(index_bits)
    return cols, _run_ranks(keys)


def _run_ranks(ordered: np.ndarray) -> np.ndarray:
    """Centred average ranks (float64) of an ordered (m,) array: tie runs share their mean rank."""
    m = ordered.shape[0]
    starts = np.empty(m, dtype=bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1] = m - 1
    average = (first + last) * 0.5 + (1.0 - (m + 1) / 2.0)
    return average[np.cumsum(starts) - 1]


def _centred_level_ranks(values: np.ndarray, self_col: int | None) -> np.ndarray:
    """(m_all,) centred average ranks of ``values`` in their own order (the self column's entry
    is meaningless), from the distinct levels: tag similarities take few distinct values, so the
    levels come from one sort and each value finds its level by a binary search among them."""
    q = _quantized_keys(values)
    if self_col is not None:
        q[self_col] = _SENTINEL
    m = q.size if self_col is None else q.size - 1
    levels, counts = np.unique(q, return_counts=True)
    if self_col is not None:
        levels, counts = levels[:-1], counts[:-1]  # the sentinel: unique and largest
    ends = np.cumsum(counts)
    average = ends - (counts - 1) / 2.0 - (m + 1) / 2.0
    return average[np.minimum(np.searchsorted(levels, q), levels.size - 1)]


def spearman_row_sums(emb: np.ndarray, tag: np.ndarray, self_col: int | None) -> tuple[float, float, float]:
    """Centred sums (sxx, syy, sxy) of the ranks of one anchor's similarity rows.

    Parameters
    ----------
    emb : (m_all,) float32/float64
        Embedding similarities of the anchor to every item.
    tag : (m_all,) float64
        Tag similarities, same items.
    self_col : int or None
        The anchor's own column, left out (None: keep every item).

    Returns
    -------
    sxx, syy, sxy : floats, the Spearman correlation being sxy / sqrt(sxx syy). Ranks are of the
    values rounded to TIE_DECIMALS decimals, ties averaged (as ``scipy.stats.spearmanr`` on the
    rounded values). Needs m_all <= 2**22 (the column must fit beside the 42 value bits).
    """
    index_bits = max(1, int(emb.shape[0] - 1).bit_length())
    cols, emb_ranks = _centred_ranks_sorted(emb, self_col, index_bits)
    tag_ranks = _centred_level_ranks(tag, self_col)[cols]
    # einsum, not the BLAS dot: this runs in the pass threads, and a threaded BLAS call per row
    # costs far more than the sum (15 ms instead of 0.02 ms at m = 20,000 on a busy machine).
    return (
        float(np.einsum("i,i->", emb_ranks, emb_ranks)),
        float(np.einsum("i,i->", tag_ranks, tag_ranks)),
        float(np.einsum("i,i->", emb_ranks, tag_ranks)),
    )

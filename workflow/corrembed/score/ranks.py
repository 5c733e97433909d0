"""Average ranks of similarity rows, ties found after rounding.

Ties: tag similarities take few distinct values, and values equal by construction can differ in
the last bit depending on summation order. Every rank-based statistic therefore ranks similarities
rounded to :data:`TIE_DECIMALS` decimals (on both sides).
"""

from __future__ import annotations

import numpy as np

from .backends import TIE_DECIMALS, _NumpyBackend

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
    be = _NumpyBackend()
    return be.average_ranks(be.quantize(np.atleast_2d(np.asarray(sim))))


def _row_ranks(be, sim, self_col: np.ndarray | None):
    """Average ranks (float64) of each row's similarities rounded to TIE_DECIMALS decimals.

    The self entry, when given ((k,) column per row), is ranked last so the others get the ranks
    1..m-1 they have among themselves; :func:`~corrembed.score.correlation._row_pearson` then
    leaves it out. ``sim`` is a (k, m) backend array; returns one of the same shape.
    """
    q = be.quantize(sim)
    if self_col is not None:
        be.set_entries(q, be.arange(q.shape[0]), be.index(self_col), np.iinfo(np.int64).max)
    return be.average_ranks(q)

"""Memory-bound passes over row ranges, in a process-wide thread pool.

The matrix products already use every core through the BLAS; numpy's elementwise loops and
scipy's sparse products use one and release the GIL, so row ranges can run side by side.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Rows below which a pass runs in the calling thread (thread hand-off costs more than it saves).
_MIN_ROWS_PER_THREAD = 1024
_pass_pool: ThreadPoolExecutor | None = None


def _forget_pass_pool() -> None:
    """Drop the pool reference (registered to run in a forked child).

    A forked child inherits the pool object but not its threads: it starts a fresh one.
    """
    global _pass_pool
    _pass_pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pass_pool)


def _pass_threads() -> int:
    """Threads for elementwise passes: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def map_rows(fn, start: int, stop: int, min_rows: int | None = None) -> list:
    """[fn(a, b) for consecutive row ranges [a, b) covering [start, stop)], run in threads.

    Parameters
    ----------
    fn : callable (int, int) -> object
        Work on rows [a, b); must be thread-safe (write disjoint slices only).
    start, stop : int
        The row range to cover.
    min_rows : int, optional
        Fewest rows per range (default :data:`_MIN_ROWS_PER_THREAD`) (below, thread hand-off costs more than it saves).

    Returns
    -------
    list
        The results in row order (at most :func:`_pass_threads` ranges of >= 1024 rows each).

    Examples
    --------
    >>> map_rows(lambda a, b: (a, b), 0, 10)
    [(0, 10)]
    """
    global _pass_pool
    parts = max(
        1, min(_pass_threads(), (stop - start) // max(1, _MIN_ROWS_PER_THREAD if min_rows is None else min_rows))
    )
    edges = np.linspace(start, stop, parts + 1).astype(int)
    ranges = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    if parts == 1:
        return [fn(a, b) for a, b in ranges]
    if _pass_pool is None:
        _pass_pool = ThreadPoolExecutor(max_workers=_pass_threads(), thread_name_prefix="corrembed-pass")
    return list(_pass_pool.map(lambda r: fn(*r), ranges))

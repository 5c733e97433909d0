"""The CorrEmbed metric, its variants, confidence interval and controls (SPEC section 1).

Inputs everywhere: ``embeddings`` (n, d) float32 or float64 array and ``tag_vectors`` (n, t)
dense array or scipy sparse matrix, rows aligned (row i of both describe item i).

Similarities are cosine on both sides. Rows are normalized once; a zero row stays zero, so it has
similarity 0 to everything. Nothing of size n x n is ever held: work is done over blocks of
anchors (rows), each block a (b, n) slice of both similarity matrices, or without any similarity
block at all (the *factored* Pearson below).

Statistics
----------
- ``corrembed``: per-anchor r_a = Pearson, over the compared items j (j != a unless
  ``include_self``), between a's tag-similarity row and embedding-similarity row; CorrEmbed is the
  mean of the defined r_a. r_a is undefined (NaN, counted in ``n_skipped``) when the anchor's tag
  vector is all zero or one of its two rows is constant (e.g. a zero embedding).
- ``method="spearman"``: the same with the rows replaced by their ranks (ties averaged).
- ``allpairs_pearson``: one Pearson over the upper triangle (i < j) of both matrices (Mantel / RSA).
- ``allpairs_spearman``: the same on ranks; exact up to ``max_exact_pairs`` pairs, above that a
  seeded uniform sample of pairs with a standard error.
- ``bootstrap_interval``: percentile interval of the mean of the defined r_a over anchors.
- ``score_report``: all of the above plus controls (random, shuffled embeddings, shuffled tags).

Ties: tag similarities take few distinct values, and values equal by construction can differ in
the last bit depending on summation order. Every rank-based statistic therefore ranks similarities
rounded to :data:`TIE_DECIMALS` decimals (on both sides).

How the Pearson statistics are computed
---------------------------------------
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
  x_a^T C x_a is a blocked triangular product (:func:`_quadratic_forms`), C a symmetric one.
  The all-pairs Pearson uses the same trick with Frobenius norms (:class:`_PairSums`).

Precision, both routes: products run in the embeddings' dtype ("float32 products"), every sum
over items is a float64 running sum ("float64 moments"). In the factored route each float32
product sums over at most d terms or :data:`SCATTER_CHUNK` items (C is summed in float64 over
chunks of centred rows: a single float32 product over 20k items would move CorrEmbed by ~1e-8,
chunks of 4096 by ~1e-9). For float32 embeddings the unit tag vectors are rounded to float32
once (:func:`_prepare`), so float32 products and float64 sums see the same tag weights. Measured
at n = 10k-20k, d = 2048: per-anchor r_a within 2.5e-7 of a float64 computation (the float32
rounding of the similarities themselves), CorrEmbed and the all-pairs Pearson within 2e-9.

Both strategies share the factor pass: K, the (t, t) tag scatter and, as needed, C or the
centred embeddings. :func:`pearson_scores` and :func:`score_report` reuse one factor pass for the
per-anchor CorrEmbed, the all-pairs Pearson and the Mantel test. Memory-bound passes over rows
(normalization, centring, sparse products) run in threads (:func:`_map_rows`); the products use
the BLAS's own threads.

Ranks (Spearman) are computed per block with one row-wise sort (:func:`row_ranks`), ties
averaged; the exact all-pairs Spearman packs each pair into a uint64 sort key (8 bytes per
pair: 1.6 GB at n = 20,000), above ``max_exact_pairs`` it samples pairs.

Memory: O(n d) for the normalized (and, when needed, centred) copies of the embeddings, plus the
(b, n) working blocks, whose row count b follows from ``memory_budget_mb`` (default
:data:`DEFAULT_MEMORY_BUDGET_MB`); nothing n x n is ever held (the all-pairs Spearman's keys
aside, as said).

Backends: ``device=None``/"cpu" runs numpy (the CPU path); "cuda"/"cuda:N" runs the same kernels
through torch (:class:`_TorchBackend`): float32 products with TF32 off unless ``allow_tf32``,
float64 moments; "torch-cpu" runs the torch path on the CPU (used to test it without a GPU).

Mantel test (:func:`mantel_test`, ``score_report(permutations=K)``): the all-pairs Pearson under
K seeded permutations of the items' tag vectors, each from the factor matrices in O(nnz d).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Literal

import numpy as np
import scipy.sparse as sp

from .errors import ScoringError

#: Similarities are rounded to this many decimals before ranking (Spearman statistics).
TIE_DECIMALS = 12
_TIE_SCALE = 10.0**TIE_DECIMALS

#: MiB the (b, n) working arrays of one block may take when ``block_size`` is not given.
DEFAULT_MEMORY_BUDGET_MB = 512

#: All-pairs Spearman is exact up to this many pairs (n ~ 20k); above it, pairs are sampled.
DEFAULT_MAX_EXACT_PAIRS = 200_000_000

#: Number of pairs drawn when the all-pairs Spearman is sampled.
DEFAULT_SPEARMAN_SAMPLE_PAIRS = 1_000_000

AnchorsArg = int | Literal["all"] | np.ndarray
Strategy = Literal["auto", "blockwise", "factored"]



# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorrEmbedResult:
    """Per-anchor correlations and their mean.

    Attributes:
        mean: CorrEmbed, the mean of the defined per-anchor correlations (float).
        per_anchor: (n_anchors,) float64, r_a per anchor, NaN where undefined.
        anchors: (n_anchors,) int64 item indices, in the order of ``per_anchor``.
        n_skipped: anchors whose r_a is undefined (all-zero tag vector or a constant row).
        n_zero_tags: of those, anchors skipped because their tag vector is all zero.
        n_items: n, the number of items.
        method: "pearson" or "spearman".
        include_self: whether the anchor's own item was among the compared items.
    """

    mean: float
    per_anchor: np.ndarray
    anchors: np.ndarray
    n_skipped: int
    n_zero_tags: int
    n_items: int
    method: str
    include_self: bool

    @property
    def n_anchors(self) -> int:
        return int(self.anchors.size)

    @property
    def n_defined(self) -> int:
        return self.n_anchors - self.n_skipped


@dataclass(frozen=True)
class AllPairsSpearman:
    """All-pairs Spearman correlation and how it was obtained.

    Attributes:
        value: the correlation.
        method: "exact" (every pair i < j) or "sampled" (uniform pairs, with replacement).
        n_pairs: number of pairs used.
        standard_error: 0.0 when exact; for a sample, batch-means standard error of ``value``
            as an estimate of the exact all-pairs value.
    """

    value: float
    method: str
    n_pairs: int
    standard_error: float


@dataclass(frozen=True)
class ScoreReport:
    """Everything section 1 of the SPEC asks to report for one embedding set.

    Scalars are in :meth:`as_dict`; the per-anchor results in :meth:`per_anchor_table`.
    """

    corrembed: float
    ci_low: float
    ci_high: float
    allpairs_pearson: float
    anchor_spearman: float
    allpairs_spearman: float
    allpairs_spearman_method: str
    allpairs_spearman_pairs: int
    allpairs_spearman_se: float
    n_items: int
    n_anchors: int
    n_anchors_skipped: int
    n_anchors_zero_tags: int
    include_self: bool
    seed: int
    bootstrap: int
    confidence: float
    control_random: float
    control_shuffled_embeddings: float
    control_shuffled_tags: float
    mantel_p: float
    permutations: int
    device: str
    anchors: np.ndarray = field(repr=False)
    per_anchor_pearson: np.ndarray = field(repr=False)
    per_anchor_spearman: np.ndarray = field(repr=False)

    def as_dict(self) -> dict:
        """The scalar fields as plain Python values (JSON-ready; NaN stays float NaN)."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                continue
            if isinstance(value, (bool, np.bool_)):
                out[name] = bool(value)
            elif isinstance(value, (int, np.integer)):
                out[name] = int(value)
            elif isinstance(value, (float, np.floating)):
                out[name] = float(value)
            else:
                out[name] = value
        return out

    def per_anchor_table(self):
        """polars DataFrame: anchor (int64 item index), r_pearson, r_spearman (float64, NaN = undefined)."""
        import polars as pl

        return pl.DataFrame(
            {
                "anchor": self.anchors,
                "r_pearson": self.per_anchor_pearson,
                "r_spearman": self.per_anchor_spearman,
            }
        )


# --------------------------------------------------------------------------------------------
# Array backends: numpy on the CPU, torch on a GPU
# --------------------------------------------------------------------------------------------


class _NumpyBackend:
    """The CPU backend: numpy arrays, BLAS products. Every kernel below goes through these methods,
    so :class:`_TorchBackend` can run the same kernels on a GPU."""

    name = "numpy"

    def put(self, a: np.ndarray):
        return a

    def index(self, rows: np.ndarray):
        return rows

    def get(self, a) -> np.ndarray:
        return np.asarray(a)

    def f64(self, a):
        return a.astype(np.float64)

    def arange(self, k: int):
        return np.arange(k)

    def zeros(self, shape):
        return np.zeros(shape)

    def row_sums(self, a):
        return np.add.reduce(a, axis=1, dtype=np.float64)

    def col_means(self, a):
        sums = _map_rows(lambda lo, hi: np.add.reduce(a[lo:hi], axis=0, dtype=np.float64), 0, a.shape[0])
        return np.sum(sums, axis=0) / a.shape[0]

    def like(self, a, other, copy: bool = False):
        """``a`` in ``other``'s dtype (no copy when it already is, unless ``copy``)."""
        return a.astype(other.dtype, copy=copy)

    def concat(self, parts):
        return np.concatenate(parts)

    def empty_like(self, a):
        return np.empty_like(a)

    def map_rows(self, fn, start: int, stop: int) -> list:
        """fn over row ranges covering [start, stop): numpy's single-threaded kernels, in threads."""
        return _map_rows(fn, start, stop)

    def subtract(self, a, b, out) -> None:
        np.subtract(a, b, out=out)

    def outer(self, a, b):
        return np.outer(a, b)

    def rowdot(self, a, b):
        return np.einsum("ij,ij->i", a, b)

    def rowdot64(self, a, b):
        """Row-wise dot products summed in float64 (inputs of any float dtype)."""
        return np.einsum("ij,ij->i", a, b, dtype=np.float64)

    def matvec64(self, a, v):
        """a @ v summed in float64 for a float32 or float64 (k, d) ``a`` and float64 (d,) ``v``."""
        return np.einsum("ij,j->i", a, v, dtype=np.float64)

    def row_sum_squares(self, a):
        """Per-row float64 sums of squares; ``a`` is overwritten."""
        np.square(a, out=a)
        return np.add.reduce(a, axis=1, dtype=np.float64)

    def quantize(self, sim):
        return _quantize(sim)

    def set_entries(self, a, rows, cols, value) -> None:
        a[rows, cols] = value

    def average_ranks(self, q: np.ndarray) -> np.ndarray:
        """Row-wise average ranks (1-based, float64) of an integer (k, m) array, ties averaged."""
        k, m = q.shape
        order = np.argsort(q, axis=1)
        ordered = np.take_along_axis(q, order, axis=1)
        starts = np.empty((k, m), dtype=bool)
        starts[:, 0] = True
        np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts[:, 1:])
        del ordered
        return _ranks_from_runs(starts, order)

    def tag_rowdot(self, ops: "_Operands", rows: np.ndarray, tag_rows: sp.csr_matrix, a) -> np.ndarray:
        """(b,) float64 sum_s tau_{rows[i], s} a[i, s] for a (b, t) array ``a``; host numpy."""
        return _sparse_rowdot(tag_rows, a)

    def tag_block(self, ops: "_Operands", rows: np.ndarray, col_start: int):
        tag_rows = ops.tags[rows]
        if ops.tags_dense_t is not None:
            # sparse (b, t) x dense (t, n): ~nnz-per-row axpys of length n per anchor.
            return np.asarray(tag_rows @ ops.tags_dense_t[:, col_start:])
        return (tag_rows @ ops.tags[col_start:].T).toarray()

    def tags_t_times(self, ops: "_Operands", start: int, stop: int, dense):
        """(t, d) float64: tag rows start..stop transposed times a (stop - start, d) array in the
        embeddings' dtype.

        One sparse product in that dtype (a sum over at most stop - start items; float32 tag
        weights are exact, see :func:`_prepare`), as CSR, the faster kernel."""
        return np.asarray(ops.tags_x[start:stop].T.tocsr() @ dense, dtype=np.float64)

    def permuted_cross_sq_norm(self, ops: "_Operands", x_centred, perm: np.ndarray) -> float:
        """||sum_j (x_j - m) tau_perm[j]^T||_F^2 (float32 product, float64 sum of squares)."""
        cross = np.asarray(ops.tags_x[perm].T @ x_centred)
        return float(np.einsum("ij,ij->", cross, cross, dtype=np.float64))

    label = "cpu"

    @contextmanager
    def precision(self):
        yield


def _ranks_from_runs(starts, order):
    """Average ranks from sorted tie-run starts (bool (k, m)) and the sort permutation (numpy)."""
    k, m = starts.shape
    pos = np.arange(m, dtype=np.int64)
    first = np.where(starts, pos, 0)
    np.maximum.accumulate(first, axis=1, out=first)
    ends = np.empty_like(starts)
    ends[:, -1] = True
    ends[:, :-1] = starts[:, 1:]
    last = np.where(ends, pos, m - 1)[:, ::-1]
    last = np.minimum.accumulate(last, axis=1)[:, ::-1]
    average = (first + last) * 0.5 + 1.0
    ranks = np.empty((k, m))
    np.put_along_axis(ranks, order, average, axis=1)
    return ranks


class _TorchBackend:
    """The same kernels on a torch device (a GPU): float32 (or float64) similarity products with
    TF32 off unless ``allow_tf32``, float64 moments, results copied back as small numpy arrays."""

    name = "torch"

    def __init__(self, device: str, allow_tf32: bool = False):
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is a dependency
            raise ScoringError(f"device {device!r} needs torch, which is not importable: {exc}") from exc
        self.torch = torch
        self.device = torch.device("cpu" if device == "torch-cpu" else device)
        self.allow_tf32 = bool(allow_tf32)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ScoringError(
                f"scoring device {device!r} requested but torch sees no CUDA device: "
                "run on a GPU node or set the scoring device to 'cpu'"
            )

    def put(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def index(self, rows: np.ndarray):
        return self.torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)

    def get(self, a) -> np.ndarray:
        return a.detach().cpu().numpy()

    def f64(self, a):
        return a.to(self.torch.float64, copy=True)

    def arange(self, k: int):
        return self.torch.arange(k, device=self.device)

    def zeros(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.float64, device=self.device)

    def row_sums(self, a):
        return a.sum(dim=1, dtype=self.torch.float64)

    def col_means(self, a):
        return a.sum(dim=0, dtype=self.torch.float64) / a.shape[0]

    def like(self, a, other, copy: bool = False):
        return a.to(other.dtype, copy=copy)

    def concat(self, parts):
        return self.torch.cat(parts)

    def empty_like(self, a):
        return self.torch.empty_like(a)

    def map_rows(self, fn, start: int, stop: int) -> list:
        # Device kernels are parallel already: one range.
        return [fn(start, stop)]

    def subtract(self, a, b, out) -> None:
        self.torch.sub(a, b, out=out)

    def outer(self, a, b):
        return self.torch.outer(a, b)

    def rowdot(self, a, b):
        return (a * b).sum(dim=1)

    def matvec64(self, a, v):
        return a.to(self.torch.float64) @ v

    def rowdot64(self, a, b):
        # Elementwise products in the inputs' dtype (one rounding each), the sum in float64.
        if a.dtype != b.dtype:
            a, b = a.to(self.torch.float64), b.to(self.torch.float64)
        return (a * b).sum(dim=1, dtype=self.torch.float64)

    def row_sum_squares(self, a):
        a.square_()
        return a.sum(dim=1, dtype=self.torch.float64)

    def quantize(self, sim):
        return self.torch.round(sim.to(self.torch.float64) * _TIE_SCALE).to(self.torch.int64)

    def set_entries(self, a, rows, cols, value) -> None:
        a[rows, cols] = value

    def average_ranks(self, q):
        torch = self.torch
        k, m = q.shape
        ordered, order = torch.sort(q, dim=1)
        starts = torch.ones((k, m), dtype=torch.bool, device=self.device)
        starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        del ordered
        pos = torch.arange(m, device=self.device).expand(k, m)
        first = torch.where(starts, pos, 0).cummax(dim=1).values
        ends = torch.ones_like(starts)
        ends[:, :-1] = starts[:, 1:]
        last = torch.where(ends, pos, m - 1).flip(1).cummin(dim=1).values.flip(1)
        average = (first + last).to(torch.float64) * 0.5 + 1.0
        return torch.empty((k, m), dtype=torch.float64, device=self.device).scatter_(1, order, average)

    def tag_rowdot(self, ops: "_Operands", rows: np.ndarray, tag_rows: sp.csr_matrix, a) -> np.ndarray:
        return self.get((a.to(self.torch.float64) * ops.tags_dev[self.index(rows)]).sum(dim=1))

    def tag_block(self, ops: "_Operands", rows: np.ndarray, col_start: int):
        return ops.tags_dev[self.index(rows)] @ ops.tags_dev[col_start:].T

    def tags_t_times(self, ops: "_Operands", start: int, stop: int, dense):
        return ops.tags_dev[start:stop].T @ dense.to(self.torch.float64)

    def permuted_cross_sq_norm(self, ops: "_Operands", x_centred, perm: np.ndarray) -> float:
        tags = ops.tags_dev[self.index(perm)].to(x_centred.dtype)
        cross = tags.T @ x_centred
        return float(cross.to(self.torch.float64).square().sum())

    def dense_tags(self, tags: sp.csr_matrix):
        """(n, t) float64 dense tag matrix on the device, scattered from the CSR non-zeros."""
        torch = self.torch
        coo = tags.tocoo()
        dense = torch.zeros(tags.shape, dtype=torch.float64, device=self.device)
        dense[self.index(coo.row), self.index(coo.col)] = self.put(coo.data)
        return dense

    @property
    def label(self) -> str:
        return "torch-cpu" if self.device.type == "cpu" else str(self.device)

    @contextmanager
    def precision(self):
        """TF32 off for float32 products (unless allowed), restored afterwards."""
        matmul = self.torch.backends.cuda.matmul
        before = matmul.allow_tf32
        matmul.allow_tf32 = self.allow_tf32
        try:
            yield
        finally:
            matmul.allow_tf32 = before


def resolve_score_device(device: str) -> str:
    """The scoring device for a config value: ``auto`` is "cuda" when torch sees a GPU, else
    "cpu" (numpy); any other value is returned unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _backend(device: str | None, allow_tf32: bool = False):
    """numpy for ``None``/"cpu"; torch for "cuda", "cuda:N" or "torch-cpu" (torch on the CPU, to
    exercise the torch code without a GPU)."""
    if device is None or device == "cpu":
        return _NumpyBackend()
    if not isinstance(device, str) or not (device.startswith("cuda") or device == "torch-cpu"):
        raise ScoringError(f"scoring device must be 'cpu', 'cuda', 'cuda:N' or 'torch-cpu', got {device!r}")
    return _TorchBackend(device, allow_tf32)


# --------------------------------------------------------------------------------------------
# Input preparation
# --------------------------------------------------------------------------------------------


@dataclass
class _Operands:
    """Row-normalized inputs shared by every computation.

    x: (n, d) float32/float64 unit rows (zero rows stay zero), C-contiguous, host.
    x_sq: (n,) float64 |x_j|^2 (1 or 0 up to the rounding of x's entries), host.
    tags: (n, t) CSR float64 unit rows (zero rows stay zero), host.
    tags_dense_t: (t, n) float64 dense transpose of ``tags`` when small enough, else None
        (numpy backend: builds tag-similarity blocks as sparse x dense products); built on first
        use, as the factored route never needs it.
    backend: the array backend; x_dev is ``x`` on its device (the same object for numpy) and
        tags_dev the dense (n, t) float64 tag matrix on the device (torch only, else None).
    """

    x: np.ndarray
    tags: sp.csr_matrix
    x_sq: np.ndarray
    backend: object = field(default_factory=_NumpyBackend)
    x_dev: object = None
    tags_dev: object = None

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def zero_tag_rows(self) -> np.ndarray:
        return np.diff(self.tags.indptr) == 0

    @cached_property
    def tags_dense_t(self) -> np.ndarray | None:
        n, t = self.tags.shape
        if self.backend.name != "numpy" or n * t * 8 > 2**30:
            return None
        return np.ascontiguousarray(self.tags.T.toarray())

    @cached_property
    def tags_x(self) -> sp.csr_matrix:
        """``tags`` in the embeddings' dtype, for sparse products with embedding-sized arrays."""
        return self.tags.astype(self.x.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# Memory-bound passes over row ranges, in threads
# --------------------------------------------------------------------------------------------

#: Rows below which a pass runs in the calling thread (thread hand-off costs more than it saves).
_MIN_ROWS_PER_THREAD = 1024
_pass_pool: ThreadPoolExecutor | None = None


def _forget_pass_pool() -> None:
    # A forked child inherits the pool object but not its threads: start a fresh one there.
    global _pass_pool
    _pass_pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pass_pool)


def _pass_threads() -> int:
    """Threads for elementwise passes: the CPUs this process may use, at most 8. The matrix
    products already use every core through the BLAS; numpy's elementwise loops and scipy's
    sparse products use one, and release the GIL, so row ranges can run side by side."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _map_rows(fn, start: int, stop: int) -> list:
    """[fn(a, b) for consecutive row ranges [a, b) covering [start, stop)], run in threads."""
    global _pass_pool
    parts = max(1, min(_pass_threads(), (stop - start) // _MIN_ROWS_PER_THREAD))
    edges = np.linspace(start, stop, parts + 1).astype(int)
    ranges = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    if parts == 1:
        return [fn(a, b) for a, b in ranges]
    if _pass_pool is None:
        _pass_pool = ThreadPoolExecutor(max_workers=_pass_threads(), thread_name_prefix="corrembed-pass")
    return list(_pass_pool.map(lambda r: fn(*r), ranges))


def _row_norms(x: np.ndarray) -> np.ndarray:
    """(n,) float64 Euclidean norms of the rows of x; NaN or inf exactly for rows that hold one.

    One pass: a non-finite value makes its row's norm non-finite, so only those rows are looked
    at again (a float64 row of huge finite values, whose squares overflow, gets a rescaled norm).
    """
    norms = np.sqrt(np.concatenate(
        _map_rows(lambda a, b: np.einsum("ij,ij->i", x[a:b], x[a:b], dtype=np.float64), 0, x.shape[0])
    ))
    for row in np.flatnonzero(~np.isfinite(norms)):
        values = x[row].astype(np.float64)
        if np.isfinite(values).all():
            peak = np.abs(values).max()
            norms[row] = peak * np.sqrt(np.sum((values / peak) ** 2))
    return norms


def _unit_rows(x: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm rows in x's dtype (norms in float64; zero rows stay zero) and their float64
    squared norms, from the norms and the scale actually applied (no second pass over x)."""
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(x.dtype)
    sq = np.square(norms * scale.astype(np.float64))
    out = np.empty(x.shape, dtype=x.dtype)
    _map_rows(lambda a, b: np.multiply(x[a:b], scale[a:b, None], out=out[a:b]), 0, x.shape[0])
    return out, sq


def _normalize_dense_rows(x: np.ndarray) -> np.ndarray:
    """Unit-norm rows in x's dtype (norms in float64); zero rows stay zero."""
    return _unit_rows(x, _row_norms(x))[0]


def _prepare(embeddings, tag_vectors, backend=None) -> _Operands:
    backend = backend if backend is not None else _NumpyBackend()
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ScoringError(f"embeddings must be a 2-D (items, dim) array, got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        if not np.issubdtype(x.dtype, np.number):
            raise ScoringError(f"embeddings must be numeric, got dtype {x.dtype}")
        x = x.astype(np.float64)
    x_norms = _row_norms(x)
    bad = ~np.isfinite(x_norms)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ScoringError(
            f"embeddings have NaN or infinite values in {rows.size} row(s), first row {rows[0]}: "
            "re-run the embedding step for these items or drop them"
        )
    if sp.issparse(tag_vectors):
        tags = sp.csr_matrix(tag_vectors, dtype=np.float64)
    else:
        tags_arr = np.asarray(tag_vectors, dtype=np.float64)
        if tags_arr.ndim != 2:
            raise ScoringError(f"tag_vectors must be a 2-D (items, slots) array, got shape {tags_arr.shape}")
        tags = sp.csr_matrix(tags_arr)
    if tags.shape[0] != x.shape[0]:
        raise ScoringError(
            f"embeddings have {x.shape[0]} rows but tag_vectors have {tags.shape[0]}: "
            "rows must be aligned item by item"
        )
    if not np.isfinite(tags.data).all():
        raise ScoringError("tag_vectors contain NaN or infinite values")
    if x.shape[0] < 3:
        raise ScoringError(f"need at least 3 items to correlate similarities, got {x.shape[0]}")
    tags.eliminate_zeros()
    tags.sum_duplicates()
    tags.sort_indices()

    x, x_sq = _unit_rows(x, x_norms)
    norms = np.sqrt(np.asarray(tags.multiply(tags).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    tags = sp.csr_matrix(sp.diags(scale) @ tags)
    tags.sort_indices()
    if x.dtype == np.float32:
        # Unit tag vectors rounded to float32 like the unit embeddings (held in float64): the
        # float32 products with tag weights (the cross moments) then see exactly the weights
        # every float64 sum sees. Rounding the weights only inside those products would shift
        # them all the same way for a tag value and move CorrEmbed by ~1e-8 at 10k items.
        tags.data = tags.data.astype(np.float32).astype(np.float64)

    if isinstance(backend, _NumpyBackend):
        return _Operands(x=x, tags=tags, x_sq=x_sq, backend=backend, x_dev=x)
    return _Operands(
        x=x, tags=tags, x_sq=x_sq, backend=backend, x_dev=backend.put(x), tags_dev=backend.dense_tags(tags)
    )


def resolve_anchors(anchors: AnchorsArg, n: int, seed: int = 42) -> np.ndarray:
    """The anchor item indices, (n_anchors,) int64.

    ``anchors`` is an int k (k items drawn without replacement by ``np.random.default_rng(seed)``,
    returned sorted; all items when k >= n), ``"all"`` (0..n-1), or explicit indices (kept in the
    given order, duplicates allowed).
    """
    if isinstance(anchors, str):
        if anchors != "all":
            raise ScoringError(f"anchors must be an int, 'all' or an array of item indices, got {anchors!r}")
        return np.arange(n, dtype=np.int64)
    if isinstance(anchors, (int, np.integer)) and not isinstance(anchors, bool):
        k = int(anchors)
        if k <= 0:
            raise ScoringError(f"anchors must be a positive number of anchors, got {k}")
        if k >= n:
            return np.arange(n, dtype=np.int64)
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
    idx = np.asarray(anchors)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ScoringError("explicit anchors must be a non-empty 1-D array of integer item indices")
    if idx.min() < 0 or idx.max() >= n:
        raise ScoringError(f"anchor indices must lie in [0, {n}), got range [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64)


@dataclass(frozen=True)
class _Blocks:
    """Anchors per block for each kind of (b, n) working set, from one memory budget.

    pearson: embedding deviation block (one (b, n) array in x's dtype, squared in place).
    ranks: similarity blocks, rounded integers, sort permutation, run bookkeeping and ranks
        (~12 arrays of 8 bytes per entry).
    pairs: all-pairs blocks (similarities, upper-triangle mask, quantized keys).
    """

    pearson: int
    ranks: int
    pairs: int


_BYTES_PER_ENTRY = {"pearson": 16, "ranks": 112, "pairs": 64}


def _blocks(block_size: int | None, n: int, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB) -> _Blocks:
    if block_size is not None:
        if int(block_size) < 1:
            raise ScoringError(f"block_size must be >= 1, got {block_size}")
        b = int(block_size)
        return _Blocks(b, b, b)
    if not memory_budget_mb > 0:
        raise ScoringError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
    budget = float(memory_budget_mb) * 2**20
    sizes = {k: int(max(1, min(8192, budget // (v * n)))) for k, v in _BYTES_PER_ENTRY.items()}
    return _Blocks(**sizes)


def _block_size(block_size: int | None, n: int, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB) -> int:
    """Anchors per similarity block for Pearson work (kept for callers that want one number)."""
    return _blocks(block_size, n, memory_budget_mb).pearson


# --------------------------------------------------------------------------------------------
# Block kernel: the only code that materializes similarity values
# --------------------------------------------------------------------------------------------


def similarity_block(ops: _Operands, rows: np.ndarray, col_start: int = 0):
    """Embedding and tag cosine similarities of items ``rows`` against items ``col_start..n-1``.

    Returns (emb, tag) backend arrays: emb (b, n - col_start) in the embeddings' dtype (one
    matrix product), tag (b, n - col_start) float64 (sparse x dense product on the CPU).
    """
    be = ops.backend
    emb = ops.x_dev[be.index(rows)] @ ops.x_dev[col_start:].T
    return emb, be.tag_block(ops, rows, col_start)


def _iter_blocks(items: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, items.size, size):
        yield items[start : start + size]


# --------------------------------------------------------------------------------------------
# Row statistics on blocks
# --------------------------------------------------------------------------------------------


def _undefined_threshold(count: int, dtype) -> float:
    """Centred sum of squares at or below which a row counts as constant (rounding noise only).

    Similarities lie in [-1, 1]: values computed in ``dtype`` carry errors ~16 eps each, and the
    factored float64 sums carry absolute errors ~eps64 * count. So a row whose similarities
    vary by less than ~1e-7 (float64) or ~2e-6 (float32) in standard deviation is constant.
    """
    eps = np.finfo(dtype).eps
    return count * max((16.0 * eps) ** 2, 64.0 * np.finfo(np.float64).eps)


def _row_pearson(be, a, b, self_col: np.ndarray | None, a_dtype, b_dtype) -> np.ndarray:
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
    return _pearson_from_sums(be.get(sxx), be.get(syy), be.get(sxy), count, a_dtype, b_dtype)


def _pearson_from_sums(sxx, syy, sxy, count, x_dtype, y_dtype) -> np.ndarray:
    defined = (sxx > _undefined_threshold(count, x_dtype)) & (syy > _undefined_threshold(count, y_dtype))
    r = np.full(np.shape(sxx), np.nan)
    r[defined] = sxy[defined] / np.sqrt(sxx[defined] * syy[defined])
    return np.clip(r, -1.0, 1.0)


def _quantize(sim: np.ndarray) -> np.ndarray:
    """Similarities rounded to TIE_DECIMALS decimals, as int64 multiples of 10**-TIE_DECIMALS."""
    return np.rint(sim.astype(np.float64, copy=False) * _TIE_SCALE).astype(np.int64)


def row_ranks(sim: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, float64) within each row of a (k, m) similarity array.

    Values are rounded to TIE_DECIMALS decimals first, so values equal up to summation order tie;
    tied values get the mean of their ranks (as ``scipy.stats.rankdata(..., axis=1)``).
    Vectorized: one row-wise sort, tie runs found by comparing sorted neighbours.
    """
    be = _NumpyBackend()
    return be.average_ranks(be.quantize(np.atleast_2d(np.asarray(sim))))


def _row_ranks(be, sim, self_col: np.ndarray | None):
    """Average ranks (float64) of each row's similarities rounded to TIE_DECIMALS decimals.

    The self entry, when given, is ranked last so the others get the ranks 1..m-1 they have
    among themselves; :func:`_row_pearson` then leaves it out.
    """
    q = be.quantize(sim)
    if self_col is not None:
        be.set_entries(q, be.arange(q.shape[0]), be.index(self_col), np.iinfo(np.int64).max)
    return be.average_ranks(q)


def _anchor_rows(ops: _Operands, anchors: np.ndarray, include_self: bool, method: str, block: int) -> np.ndarray:
    """Per-anchor correlations over similarity blocks: (n_anchors,) float64."""
    be = ops.backend
    out = np.empty(anchors.size)
    for start in range(0, anchors.size, block):
        rows = anchors[start : start + block]
        emb, tag = similarity_block(ops, rows)
        self_col = None if include_self else rows
        if method == "pearson":
            out[start : start + rows.size] = _row_pearson(be, emb, tag, self_col, ops.x.dtype, np.float64)
        else:
            emb_ranks = _row_ranks(be, emb, self_col)
            del emb
            tag_ranks = _row_ranks(be, tag, self_col)
            del tag
            out[start : start + rows.size] = _row_pearson(be, emb_ranks, tag_ranks, self_col, np.float64, np.float64)
    return out


# --------------------------------------------------------------------------------------------
# Per-anchor Pearson from factored moments
# --------------------------------------------------------------------------------------------

#: Above this many tag slots the (t, t) and (d, t) factor matrices are not built; per-anchor
#: Pearson then takes every moment from similarity blocks.
MAX_DENSE_SLOTS = 4096

#: Items per chunk of the d x d scatter: each chunk is one product in the embeddings' dtype
#: (a float32 sum over at most this many items, as long as a 2048-d similarity's), chunks are
#: summed in float64.
SCATTER_CHUNK = 4096

#: Column blocks of the triangular product in :func:`_quadratic_forms`: more blocks skip more of
#: the zero triangle (k blocks: (k + 1) / 2k of a full product) but make smaller products.
_TRIANGLE_BLOCKS = 8


@dataclass(frozen=True)
class _PearsonFactors:
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


def _pearson_factors(ops: _Operands, scatter: bool, centred: bool, chunk: int = SCATTER_CHUNK) -> _PearsonFactors:
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

        def centre(a: int, b: int):
            # Single-threaded kernels (x.m, centring, the sparse tag product) on row ranges.
            np_part = part[a - start : b - start]
            be.subtract(ops.x_dev[a:b], mean_x_dtype, out=np_part)
            return be.matvec64(ops.x_dev[a:b], x_mean), be.tags_t_times(ops, a, b, np_part)

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
    return _PearsonFactors(
        x_mean, tag_mean, cross_t.T, be.put(scatter_t), scatter_x, x_centred, np.concatenate(x_dot_mean)
    )


def _triangle_edges(d: int) -> np.ndarray:
    """Column-block edges of the blocked triangular product (:data:`_TRIANGLE_BLOCKS` blocks)."""
    return np.linspace(0, d, min(_TRIANGLE_BLOCKS, d) + 1).astype(int)


def _half_upper(scatter, be, like):
    """U with x^T C x = 2 x^T U x for the symmetric (d, d) ``scatter`` C, in ``like``'s dtype.

    U is C above the diagonal, C / 2 on it and 0 below, but only where :func:`_quadratic_forms`
    reads it: the blocks above the diagonal blocks are C itself, so only the diagonal blocks
    are made triangular."""
    upper = be.like(scatter, like, copy=True)
    edges = _triangle_edges(upper.shape[0])
    for c0, c1 in zip(edges[:-1], edges[1:]):
        w = c1 - c0
        mask = np.triu(np.ones((w, w)), 1) + 0.5 * np.eye(w)
        upper[c0:c1, c0:c1] *= be.like(be.put(mask), upper)
    return upper


def _quadratic_forms(be, xa, upper) -> object:
    """x_a^T C x_a for each row of ``xa`` (b, d), given ``upper`` = :func:`_half_upper` (d, d).

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


def _anchor_pearson(
    ops: _Operands, anchors: np.ndarray, include_self: bool, block: int, factored: bool,
    factors: _PearsonFactors | None = None,
) -> np.ndarray:
    """Per-anchor Pearson r_a, (n_anchors,) float64.

    Centred sums over all n items: tag side and cross term from the factor matrices
    (sum_j (S_aj - mean)(T_aj - mean) = x_a^T K tau_a); embedding side from x_a^T C x_a
    (factored) or from the centred similarity block (blockwise). The self pair is then removed
    when ``include_self`` is false (one-point downdate of centred sums).
    """
    if ops.tags.shape[1] > MAX_DENSE_SLOTS:
        return _anchor_rows(ops, anchors, include_self, "pearson", block)
    be = ops.backend
    n = ops.n
    fac = factors if factors is not None else _pearson_factors(ops, scatter=factored, centred=not factored)
    count = n if include_self else n - 1
    # Products with the moments run in the embeddings' dtype, as the similarity products do.
    cross = be.like(fac.cross, ops.x_dev)
    upper = _half_upper(fac.scatter_x, be, ops.x_dev) if factored else None
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
            sxx = be.get(_quadratic_forms(be, xa, upper))
        else:
            # The (b, n) block x_a . (x_j - m) = S_aj - mean_j S_aj: one product in x's dtype,
            # already centred, so its sum of squares has no cancellation.
            sxx = be.get(be.row_sum_squares(xa @ fac.x_centred.T))
        # Tag side from the sparse anchor rows (host, float64): tau_a^T Sigma_t tau_a.
        ta = ops.tags[rows]
        syy = _sparse_rowdot(ta, ta @ scatter_t)
        sxy = be.tag_rowdot(ops, rows, ta, xa @ cross)
        if not include_self:
            # Remove the self pair (x_a.x_a, tau_a.tau_a) from the centred sums over all n items.
            dx = ops.x_sq[rows] - fac.x_dot_mean[rows]
            dt = _sparse_rowdot(ta, ta) - ta @ tag_mean
            f = n / (n - 1)
            sxx = sxx - f * dx * dx
            syy = syy - f * dt * dt
            sxy = sxy - f * dx * dt
        out[start : start + rows.size] = _pearson_from_sums(sxx, syy, sxy, count, ops.x.dtype, np.float64)
    return out


def _sparse_rowdot(rows: sp.csr_matrix, other) -> np.ndarray:
    """(k,) float64 row-wise dot products of a CSR (k, t) matrix with a dense or CSR (k, t) ``other``,
    over the stored entries only (no dense copy of ``rows``)."""
    return np.asarray(rows.multiply(other).sum(axis=1), dtype=np.float64).ravel()


def _check_strategy(strategy: Strategy) -> None:
    if strategy not in ("auto", "blockwise", "factored"):
        raise ScoringError(f"strategy must be 'auto', 'blockwise' or 'factored', got {strategy!r}")


def _pearson_costs(ops: _Operands, n_rows: int) -> dict[str, float]:
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


def _use_factored(ops: _Operands, n_rows: int, strategy: Strategy) -> bool:
    """Whether per-anchor Pearson over ``n_rows`` anchors alone is cheaper from the d x d scatter."""
    _check_strategy(strategy)
    if strategy != "auto":
        return strategy == "factored"
    c = _pearson_costs(ops, n_rows)
    return c["scatter"] + c["anchors_factored"] < c["anchors_blockwise"]


def _use_factored_allpairs(ops: _Operands, strategy: Strategy) -> bool:
    """Whether the all-pairs Pearson alone is cheaper from the scatter (n d^2 / 2) than from blocks (n^2 d / 2)."""
    _check_strategy(strategy)
    if ops.tags.shape[1] > MAX_DENSE_SLOTS:
        return False
    if strategy != "auto":
        return strategy == "factored"
    c = _pearson_costs(ops, 0)
    return c["scatter"] < c["pairs_blockwise"]


def _pearson_plan(ops: _Operands, n_rows: int, strategy: Strategy) -> tuple[bool, bool]:
    """(per-anchor factored, all-pairs factored) when both are computed: one scatter serves both,
    so the cheapest of the four combinations is chosen jointly."""
    _check_strategy(strategy)
    if strategy != "auto" or ops.tags.shape[1] > MAX_DENSE_SLOTS:
        return _use_factored(ops, n_rows, strategy), _use_factored_allpairs(ops, strategy)
    c = _pearson_costs(ops, n_rows)

    def total(plan: tuple[bool, bool]) -> float:
        anchors_factored, pairs_factored = plan
        return (
            (c["scatter"] if anchors_factored or pairs_factored else 0.0)
            + (c["anchors_factored"] if anchors_factored else c["anchors_blockwise"])
            + (0.0 if pairs_factored else c["pairs_blockwise"])
        )

    return min(((a, p) for a in (True, False) for p in (True, False)), key=total)


# --------------------------------------------------------------------------------------------
# Public API: per-anchor
# --------------------------------------------------------------------------------------------


def corrembed(
    embeddings,
    tag_vectors,
    *,
    anchors: AnchorsArg = 1000,
    seed: int = 42,
    include_self: bool = False,
    block_size: int | None = None,
    method: Literal["pearson", "spearman"] = "pearson",
    strategy: Strategy = "auto",
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    device: str | None = None,
    allow_tf32: bool = False,
) -> CorrEmbedResult:
    """CorrEmbed: mean over anchors of the correlation between tag and embedding similarity rows.

    Args:
        embeddings: (n, d) float32/float64 array.
        tag_vectors: (n, t) dense array or scipy sparse matrix, rows aligned with ``embeddings``.
        anchors: number of anchors drawn with ``seed`` (all items if >= n), ``"all"``, or an
            explicit (k,) integer array of item indices (order kept).
        seed: seed of the anchor draw (``np.random.default_rng``).
        include_self: compare each anchor with itself too (the paper's choice) or not (default).
        block_size: anchors per block; default from ``memory_budget_mb``.
        method: "pearson" (CorrEmbed) or "spearman" (rank rows, ties averaged after rounding).
        strategy: for Pearson, "blockwise", "factored" or "auto" (cheaper by flop count); both exact.
        memory_budget_mb: bound on the (b, n) working blocks (MiB); sets the block size.
        device: "cpu" / None (numpy), "cuda" / "cuda:N" (torch on the GPU), "torch-cpu".
        allow_tf32: let float32 GPU products use TF32 (faster, ~1e-3 relative error); off by default.

    Returns:
        :class:`CorrEmbedResult`.

    Raises:
        ScoringError: bad shapes or values, or no anchor with a defined correlation.
    """
    be = _backend(device, allow_tf32)
    with be.precision():
        ops = _prepare(embeddings, tag_vectors, be)
        blocks = _blocks(block_size, ops.n, memory_budget_mb)
        return _corrembed(ops, resolve_anchors(anchors, ops.n, seed), include_self, blocks, method, strategy)


def _corrembed(
    ops: _Operands, anchors: np.ndarray, include_self: bool, blocks: _Blocks, method: str, strategy: Strategy,
    factors: _PearsonFactors | None = None, anchors_factored: bool | None = None,
) -> CorrEmbedResult:
    if method not in ("pearson", "spearman"):
        raise ScoringError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if method == "pearson":
        factored = _use_factored(ops, anchors.size, strategy) if anchors_factored is None else anchors_factored
        per_anchor = _anchor_pearson(ops, anchors, include_self, blocks.pearson, factored, factors)
    else:
        per_anchor = _anchor_rows(ops, anchors, include_self, method, blocks.ranks)
    zero_tags = ops.zero_tag_rows[anchors]
    per_anchor[zero_tags] = np.nan
    return _result(per_anchor, anchors, int(zero_tags.sum()), ops.n, method, include_self)


def _result(per_anchor, anchors, n_zero_tags, n, method, include_self) -> CorrEmbedResult:
    defined = np.isfinite(per_anchor)
    if not defined.any():
        raise ScoringError(
            f"no anchor has a defined {method} correlation ({anchors.size} anchors, {n_zero_tags} with "
            "all-zero tag vectors, the rest with constant similarity rows): check that items carry tags "
            "and that embeddings are not all identical"
        )
    return CorrEmbedResult(
        mean=float(per_anchor[defined].mean()),
        per_anchor=per_anchor,
        anchors=anchors,
        n_skipped=int((~defined).sum()),
        n_zero_tags=n_zero_tags,
        n_items=n,
        method=method,
        include_self=include_self,
    )


def anchor_spearman(
    embeddings,
    tag_vectors,
    *,
    anchors: AnchorsArg = 1000,
    seed: int = 42,
    include_self: bool = False,
    block_size: int | None = None,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    device: str | None = None,
) -> CorrEmbedResult:
    """Per-anchor Spearman variant of :func:`corrembed` (same as ``corrembed(..., method="spearman")``)."""
    return corrembed(
        embeddings, tag_vectors, anchors=anchors, seed=seed, include_self=include_self,
        block_size=block_size, method="spearman", memory_budget_mb=memory_budget_mb, device=device,
    )


def bootstrap_interval(per_anchor, resamples: int = 1000, confidence: float = 0.95, seed: int = 42) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of the defined (finite) per-anchor values.

    Args:
        per_anchor: (k,) values, NaN entries ignored.
        resamples: number of bootstrap resamples (with replacement, same size as the defined values).
        confidence: interval coverage in (0, 1).
        seed: seed of ``np.random.default_rng``.

    Returns:
        (low, high) floats.
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


# --------------------------------------------------------------------------------------------
# Public API: all pairs
# --------------------------------------------------------------------------------------------


def _upper_mask(rows: np.ndarray, col_start: int, width: int) -> np.ndarray:
    """Boolean (b, width) mask of pairs (i, j) with j > i, for column j = col_start + c."""
    return (col_start + np.arange(width))[None, :] > rows[:, None]


class _PairMoments:
    """Running float64 centred moments of (x, y) pairs, merged block by block (Chan et al.)."""

    def __init__(self):
        self.count = 0
        self.mean_x = self.mean_y = 0.0
        self.sxx = self.syy = self.sxy = 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
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
        r = _pearson_from_sums(np.array([self.sxx]), np.array([self.syy]), np.array([self.sxy]), self.count, x_dtype, y_dtype)
        return float(r[0])


def _allpairs_pearson_blockwise(ops: _Operands, block: int) -> float:
    be = ops.backend
    moments = _PairMoments()
    for rows in _iter_blocks(np.arange(ops.n), block):
        start = int(rows[0])
        emb, tag = similarity_block(ops, rows, col_start=start)
        mask = _upper_mask(rows, start, emb.shape[1])
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
        r = _pearson_from_sums(
            np.array([self.sxx]), np.array([self.syy]), np.array([sxy]), int(self.pairs), x_dtype, np.float64
        )
        return float(r[0])


def _sum_squares(a: np.ndarray) -> float:
    """Sum of squares of a float64 array through the BLAS dot (no squared temporary)."""
    flat = np.ascontiguousarray(a).ravel()
    return float(flat @ flat)


def _pair_sums(ops: _Operands, fac: _PearsonFactors) -> _PairSums:
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


def _allpairs_pearson_factored(ops: _Operands, fac: _PearsonFactors) -> float:
    sums = _pair_sums(ops, fac)
    cross = ops.backend.get(fac.cross)
    return sums.pearson(sums.cross_sxy(_sum_squares(cross)), ops.x.dtype)


def allpairs_pearson(
    embeddings, tag_vectors, *, block_size: int | None = None, strategy: Strategy = "auto",
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB, device: str | None = None, allow_tf32: bool = False,
) -> float:
    """One Pearson correlation over all pairs i < j of the two cosine-similarity matrices.

    Args: as :func:`corrembed`. Returns a float (NaN when either side is constant over pairs).
    """
    be = _backend(device, allow_tf32)
    with be.precision():
        ops = _prepare(embeddings, tag_vectors, be)
        return _allpairs_pearson(ops, _blocks(block_size, ops.n, memory_budget_mb).pearson, strategy)


def _allpairs_pearson(
    ops: _Operands, block: int, strategy: Strategy, factors: _PearsonFactors | None = None, factored: bool | None = None,
) -> float:
    if not (_use_factored_allpairs(ops, strategy) if factored is None else factored):
        return _allpairs_pearson_blockwise(ops, block)
    if factors is None or factors.scatter_x is None:
        factors = _pearson_factors(ops, scatter=True, centred=False)
    return _allpairs_pearson_factored(ops, factors)


def pearson_scores(
    embeddings, tag_vectors, *, anchors: AnchorsArg = "all", seed: int = 42, include_self: bool = False,
    block_size: int | None = None, strategy: Strategy = "auto",
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB, device: str | None = None, allow_tf32: bool = False,
) -> tuple[CorrEmbedResult, float]:
    """Per-anchor CorrEmbed and the all-pairs Pearson in one pass (shared factor matrices).

    The same computation :func:`score_report` does for these two numbers. Args as
    :func:`corrembed` (``anchors`` defaults to all items). Returns (CorrEmbedResult, all-pairs r).
    """
    be = _backend(device, allow_tf32)
    with be.precision():
        ops = _prepare(embeddings, tag_vectors, be)
        blocks = _blocks(block_size, ops.n, memory_budget_mb)
        anchor_idx = resolve_anchors(anchors, ops.n, seed)
        anchors_factored, pairs_factored = _pearson_plan(ops, anchor_idx.size, strategy)
        factors = None
        if ops.tags.shape[1] <= MAX_DENSE_SLOTS:
            factors = _pearson_factors(ops, scatter=anchors_factored or pairs_factored, centred=not anchors_factored)
        result = _corrembed(ops, anchor_idx, include_self, blocks, "pearson", strategy, factors, anchors_factored)
        return result, _allpairs_pearson(ops, blocks.pearson, strategy, factors, pairs_factored)


# --------------------------------------------------------------------------------------------
# Public API: Mantel permutation test
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MantelResult:
    """Permutation (Mantel) test of the all-pairs Pearson correlation.

    Attributes:
        statistic: the observed all-pairs Pearson correlation.
        p_value: one-sided (1 + #{null >= observed}) / (1 + permutations).
        permutations: number of item-label permutations of the tag side.
        null: (permutations,) float64 correlations under the permutations.
    """

    statistic: float
    p_value: float
    permutations: int
    null: np.ndarray = field(repr=False)


def mantel_test(
    embeddings, tag_vectors, *, permutations: int = 999, seed: int = 42,
    device: str | None = None, allow_tf32: bool = False,
) -> MantelResult:
    """Mantel test: is the all-pairs Pearson higher than with item labels of the tags shuffled?

    Each permutation pi re-labels the tag vectors (item i gets item pi(i)'s tags) and recomputes
    the all-pairs Pearson exactly from the factor matrices: only K = sum_j (x_j - m) tau_pi(j)^T
    changes, one sparse (t, n) x dense (n, d) float32 product, O(nnz d) per permutation, nothing
    of size n x n. Permutations come from ``np.random.default_rng(seed)``.
    """
    be = _backend(device, allow_tf32)
    with be.precision():
        ops = _prepare(embeddings, tag_vectors, be)
        return _mantel(ops, _pearson_factors(ops, scatter=True, centred=True), permutations, seed)


def _mantel(ops: _Operands, fac: _PearsonFactors, permutations: int, seed: int) -> MantelResult:
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


class _PairRankCollector:
    """Collects all upper-triangle pairs as sortable keys for an exact all-pairs Spearman.

    Each pair is one uint64: the embedding similarity rounded to TIE_DECIMALS decimals (an integer
    in [0, 2e12], 41 bits, after an offset) in the high bits, and the code of the pair's rounded
    tag similarity (its index in order of first appearance) in the low 22 bits. Sorting the keys
    orders pairs by embedding similarity; the tag codes ride along. Tag ranks come from the
    counts per distinct tag value (few of them), embedding ranks from positions in the sort.
    """

    CODE_BITS = 22

    def __init__(self, n_pairs: int):
        self.keys = np.empty(n_pairs, dtype=np.uint64)
        self.filled = 0
        self.levels_by_code = np.empty(0, dtype=np.int64)  # quantized tag values, discovery order
        self._sorted_levels = np.empty(0, dtype=np.int64)
        self._sorted_codes = np.empty(0, dtype=np.int64)

    def _codes(self, q_tag: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._sorted_levels, q_tag)
        found = np.zeros(q_tag.shape, dtype=bool)
        if self._sorted_levels.size:
            found = self._sorted_levels[np.minimum(pos, self._sorted_levels.size - 1)] == q_tag
        if not found.all():
            new = np.unique(q_tag[~found])
            self.levels_by_code = np.concatenate([self.levels_by_code, new])
            if self.levels_by_code.size >= 2**self.CODE_BITS:
                raise ScoringError(
                    "tag similarities take more than 4 million distinct values; the exact all-pairs "
                    "Spearman cannot pack them: pass a smaller max_exact_pairs to sample pairs"
                )
            order = np.argsort(self.levels_by_code, kind="stable")
            self._sorted_levels = self.levels_by_code[order]
            self._sorted_codes = order.astype(np.int64)
            pos = np.searchsorted(self._sorted_levels, q_tag)
        return self._sorted_codes[pos]

    def add(self, emb: np.ndarray, tag: np.ndarray) -> None:
        q_emb = np.clip(_quantize(emb), -int(_TIE_SCALE), int(_TIE_SCALE)) + int(_TIE_SCALE)
        codes = self._codes(_quantize(tag))
        stop = self.filled + emb.size
        out = self.keys[self.filled : stop]
        np.left_shift(q_emb.astype(np.uint64), np.uint64(self.CODE_BITS), out=out)
        out |= codes.astype(np.uint64)
        self.filled = stop

    def spearman(self, chunk: int = 2**22) -> float:
        keys = self.keys[: self.filled]
        keys.sort()
        total = keys.size
        mid = (total + 1) / 2.0  # mean rank
        shift = np.uint64(self.CODE_BITS)
        mask = np.uint64(2**self.CODE_BITS - 1)
        n_levels = self.levels_by_code.size
        level_counts = np.zeros(n_levels)
        emb_rank_sums = np.zeros(n_levels)  # per tag level: sum of (embedding rank - mid)
        emb_ss = 0.0
        for start in range(0, total, chunk):
            stop = min(total, start + chunk)
            codes = (keys[start:stop] & mask).astype(np.intp)
            # Embedding values of the chunk plus one neighbour each side, to find tie runs.
            lo, hi = max(0, start - 1), min(total, stop + 1)
            values = keys[lo:hi] >> shift
            inner = values[start - lo : start - lo + (stop - start)]
            prev_eq = np.zeros(stop - start, dtype=bool)
            next_eq = np.zeros(stop - start, dtype=bool)
            ext_prev = values[start - lo - 1 : start - lo - 1 + (stop - start)] if start > 0 else None
            if ext_prev is not None:
                prev_eq = inner == ext_prev
            else:
                prev_eq[1:] = inner[1:] == inner[:-1]
            if stop < total:
                next_eq = inner == values[start - lo + 1 : start - lo + 1 + (stop - start)]
            else:
                next_eq[:-1] = inner[:-1] == inner[1:]
            ranks = np.arange(start + 1, stop + 1, dtype=np.float64)
            tied = np.flatnonzero(prev_eq | next_eq)
            if tied.size:
                tied_values = inner[tied] << shift
                first = np.searchsorted(keys, tied_values, side="left")
                last = np.searchsorted(keys, tied_values + (np.uint64(1) << shift), side="left") - 1
                ranks[tied] = (first + last) / 2.0 + 1.0
            centred = ranks - mid
            emb_ss += centred @ centred
            emb_rank_sums += np.bincount(codes, weights=centred, minlength=n_levels)
            level_counts += np.bincount(codes, minlength=n_levels)
        # Tag ranks: levels in increasing value; each level's pairs share its average rank.
        order = np.argsort(self.levels_by_code, kind="stable")
        counts_sorted = level_counts[order]
        ends = np.cumsum(counts_sorted)
        level_rank = np.empty(n_levels)
        level_rank[order] = ends - (counts_sorted - 1) / 2.0
        tag_centred = level_rank - mid
        tag_ss = float(level_counts @ (tag_centred * tag_centred))
        cross = float(emb_rank_sums @ tag_centred)
        r = _pearson_from_sums(np.array([emb_ss]), np.array([tag_ss]), np.array([cross]), total, np.float64, np.float64)
        return float(r[0])


def _pair_index_to_ij(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major upper-triangle pair index k -> (i, j), i < j."""
    rows = np.arange(n, dtype=np.int64)
    offsets = rows * n - rows * (rows + 1) // 2  # index of pair (i, i+1)
    i = np.searchsorted(offsets, k, side="right") - 1
    j = k - offsets[i] + i + 1
    return i, j


def _spearman_of_values(emb: np.ndarray, tag: np.ndarray) -> float:
    """Spearman correlation of two 1-D similarity vectors, ties after rounding averaged."""
    be = _NumpyBackend()
    ranks_e = row_ranks(emb[None])
    ranks_t = row_ranks(tag[None])
    return float(_row_pearson(be, ranks_e, ranks_t, None, np.float64, np.float64)[0])


def _allpairs_spearman_sampled(ops: _Operands, n_samples: int, seed: int, batches: int = 20) -> AllPairsSpearman:
    n = ops.n
    n_pairs = n * (n - 1) // 2
    rng = np.random.default_rng(seed)
    k = rng.integers(0, n_pairs, size=n_samples)
    i, j = _pair_index_to_ij(k, n)
    emb = np.empty(n_samples)
    tag = np.empty(n_samples)
    chunk = 65536
    for start in range(0, n_samples, chunk):
        a, b = i[start : start + chunk], j[start : start + chunk]
        emb[start : start + a.size] = np.einsum("ij,ij->i", ops.x[a], ops.x[b])
        tag[start : start + a.size] = np.asarray(ops.tags[a].multiply(ops.tags[b]).sum(axis=1)).ravel()
    value = _spearman_of_values(emb, tag)
    # Pairs are i.i.d. draws, so contiguous batches are independent estimates of the same value.
    per_batch = [_spearman_of_values(e, t) for e, t in zip(np.array_split(emb, batches), np.array_split(tag, batches))]
    se = float(np.std(per_batch, ddof=1) / np.sqrt(batches))
    return AllPairsSpearman(value=value, method="sampled", n_pairs=n_samples, standard_error=se)


def allpairs_spearman(
    embeddings,
    tag_vectors,
    *,
    block_size: int | None = None,
    max_exact_pairs: int = DEFAULT_MAX_EXACT_PAIRS,
    sample_pairs: int = DEFAULT_SPEARMAN_SAMPLE_PAIRS,
    seed: int = 42,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    device: str | None = None,
    allow_tf32: bool = False,
) -> AllPairsSpearman:
    """Spearman correlation over all pairs i < j of the two cosine-similarity matrices.

    Exact when n(n-1)/2 <= ``max_exact_pairs``; it then holds 8 bytes per pair (1.6 GB at
    n = 20,000), beyond ``memory_budget_mb`` (which bounds the similarity blocks only).
    Otherwise from ``sample_pairs`` pairs drawn uniformly with replacement (seeded), with a
    standard error. Similarities are rounded to TIE_DECIMALS decimals before ranking; ties get
    average ranks.
    """
    be = _backend(device, allow_tf32)
    with be.precision():
        ops = _prepare(embeddings, tag_vectors, be)
        return _allpairs_spearman(ops, _blocks(block_size, ops.n, memory_budget_mb).pairs, max_exact_pairs, sample_pairs, seed)


def _allpairs_spearman(ops: _Operands, block: int, max_exact_pairs: int, sample_pairs: int, seed: int) -> AllPairsSpearman:
    n_pairs = ops.n * (ops.n - 1) // 2
    if n_pairs > max_exact_pairs:
        return _allpairs_spearman_sampled(ops, sample_pairs, seed)
    be = ops.backend
    collector = _PairRankCollector(n_pairs)
    for rows in _iter_blocks(np.arange(ops.n), block):
        start = int(rows[0])
        emb, tag = similarity_block(ops, rows, col_start=start)
        mask = _upper_mask(rows, start, emb.shape[1])
        collector.add(be.get(emb)[mask], be.get(tag)[mask])
        del emb, tag
    return AllPairsSpearman(value=collector.spearman(), method="exact", n_pairs=n_pairs, standard_error=0.0)


# --------------------------------------------------------------------------------------------
# Public API: the full report
# --------------------------------------------------------------------------------------------


def score_report(
    embeddings,
    tag_vectors,
    *,
    anchors: AnchorsArg = 1000,
    seed: int = 42,
    include_self: bool = False,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    controls: bool = True,
    block_size: int | None = None,
    max_exact_pairs: int = DEFAULT_MAX_EXACT_PAIRS,
    sample_pairs: int = DEFAULT_SPEARMAN_SAMPLE_PAIRS,
    permutations: int = 0,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    device: str | None = None,
    allow_tf32: bool = False,
) -> ScoreReport:
    """CorrEmbed with its bootstrap interval, all-pairs and Spearman variants, and controls.

    Controls (each CorrEmbed over the same anchors, NaN when ``controls`` is false): random
    Gaussian embeddings of the same shape and dtype; embeddings with rows permuted across items;
    tag vectors with rows permuted across items. With ``permutations`` > 0, also the Mantel
    p-value of the all-pairs Pearson (:func:`mantel_test`; NaN when 0). Seeds derive from ``seed``.

    Memory: O(n d) for the inputs' normalized and centred copies plus the (b, n) blocks bounded
    by ``memory_budget_mb``; the exact all-pairs Spearman adds 8 bytes per pair (see
    :func:`allpairs_spearman`; ``max_exact_pairs`` caps it).
    Args and returns: see :func:`corrembed`, :func:`allpairs_spearman`, :class:`ScoreReport`.
    """
    be = _backend(device, allow_tf32)
    with be.precision():
        return _score_report(
            be, embeddings, tag_vectors, anchors, seed, include_self, bootstrap, confidence, controls,
            block_size, max_exact_pairs, sample_pairs, permutations, memory_budget_mb,
        )


def _score_report(
    be, embeddings, tag_vectors, anchors, seed, include_self, bootstrap, confidence, controls,
    block_size, max_exact_pairs, sample_pairs, permutations, memory_budget_mb,
) -> ScoreReport:
    if int(permutations) < 0:
        raise ScoringError(f"permutations must be >= 0 (0 = no Mantel test), got {permutations}")
    ops = _prepare(embeddings, tag_vectors, be)
    n = ops.n
    blocks = _blocks(block_size, n, memory_budget_mb)
    anchor_idx = resolve_anchors(anchors, n, seed)

    # One pass over the data gives the factor matrices shared by the per-anchor Pearson, the
    # all-pairs Pearson and the Mantel test (whichever of them use it).
    anchors_factored, pairs_factored = _pearson_plan(ops, anchor_idx.size, "auto")
    factors = None
    if ops.tags.shape[1] <= MAX_DENSE_SLOTS:
        need_scatter = anchors_factored or pairs_factored or permutations > 0
        need_centred = not anchors_factored or permutations > 0
        factors = _pearson_factors(ops, scatter=need_scatter, centred=need_centred)
    pearson = _corrembed(ops, anchor_idx, include_self, blocks, "pearson", "auto", factors, anchors_factored)
    all_pearson = _allpairs_pearson(ops, blocks.pearson, "auto", factors, pairs_factored)
    seq_random, seq_emb, seq_tags, seq_mantel = np.random.SeedSequence(seed).spawn(4)
    mantel_p = float("nan")
    if permutations > 0:
        if factors is None or factors.scatter_x is None or factors.x_centred is None:
            factors = _pearson_factors(ops, scatter=True, centred=True)
        mantel_seed = int(seq_mantel.generate_state(1)[0])
        mantel_p = _mantel(ops, factors, int(permutations), mantel_seed).p_value
    del factors  # O(n d) centred copy: free it before the rank statistics

    spearman = _corrembed(ops, anchor_idx, include_self, blocks, "spearman", "blockwise")
    ci_low, ci_high = bootstrap_interval(pearson.per_anchor, bootstrap, confidence, seed)
    all_spearman = _allpairs_spearman(ops, blocks.pairs, max_exact_pairs, sample_pairs, seed)

    control_random = control_shuffled_emb = control_shuffled_tags = float("nan")
    if controls:
        random_x = np.random.default_rng(seq_random).standard_normal(ops.x.shape, dtype=ops.x.dtype)
        control_random = _control(be, random_x, ops.tags, anchor_idx, include_self, blocks)
        del random_x
        perm = np.random.default_rng(seq_emb).permutation(n)
        control_shuffled_emb = _control(be, ops.x[perm], ops.tags, anchor_idx, include_self, blocks)
        perm = np.random.default_rng(seq_tags).permutation(n)
        control_shuffled_tags = _control(be, ops.x, ops.tags[perm], anchor_idx, include_self, blocks)

    return ScoreReport(
        corrembed=pearson.mean,
        ci_low=ci_low,
        ci_high=ci_high,
        allpairs_pearson=all_pearson,
        anchor_spearman=spearman.mean,
        allpairs_spearman=all_spearman.value,
        allpairs_spearman_method=all_spearman.method,
        allpairs_spearman_pairs=all_spearman.n_pairs,
        allpairs_spearman_se=all_spearman.standard_error,
        n_items=n,
        n_anchors=int(anchor_idx.size),
        n_anchors_skipped=pearson.n_skipped,
        n_anchors_zero_tags=pearson.n_zero_tags,
        include_self=include_self,
        seed=seed,
        bootstrap=bootstrap,
        confidence=confidence,
        control_random=control_random,
        control_shuffled_embeddings=control_shuffled_emb,
        control_shuffled_tags=control_shuffled_tags,
        mantel_p=mantel_p,
        permutations=int(permutations),
        device=be.label,
        anchors=anchor_idx,
        per_anchor_pearson=pearson.per_anchor,
        per_anchor_spearman=spearman.per_anchor,
    )


def _control(be, x: np.ndarray, tags: sp.csr_matrix, anchors: np.ndarray, include_self: bool, blocks: _Blocks) -> float:
    ops = _prepare(x, tags, be)
    try:
        return _corrembed(ops, anchors, include_self, blocks, "pearson", "auto").mean
    except ScoringError:
        return float("nan")


# --------------------------------------------------------------------------------------------
# Writing a report
# --------------------------------------------------------------------------------------------


def write_score(
    report: ScoreReport,
    score_path,
    per_anchor_path,
    *,
    item_ids,
    extra: dict | None = None,
) -> None:
    """Write a report atomically: scalars as JSON, per-anchor results as Parquet.

    score_path: JSON with :meth:`ScoreReport.as_dict` plus ``extra`` (model, weighting, settings);
    per_anchor_path: Parquet with anchor (item index), item_id, r_pearson, r_spearman: the drawn
    anchors, so a sampled run can be reproduced and inspected.
    """
    import polars as pl

    from .storage import write_json, write_table

    ids = np.asarray(item_ids, dtype=str)
    table = report.per_anchor_table().with_columns(
        item_id=pl.Series(ids[report.anchors], dtype=pl.String)
    )
    write_table(per_anchor_path, table.select("anchor", "item_id", "r_pearson", "r_spearman"))
    write_json(score_path, {**(extra or {}), **report.as_dict()})

"""Array backends: numpy on the CPU, torch on a GPU (or on the CPU, to test the torch path).

Every kernel of the scoring code goes through a backend's methods, so the same kernels run
on either. Products run in the embeddings' dtype, every sum over items in float64; results
come back to the host as small numpy arrays.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

from ..errors import ScoringError
from .tag_layout import DeviceTags, HostTags
from .threads import map_rows

#: Similarities are rounded to this many decimals before ranking (Spearman statistics).
TIE_DECIMALS = 12
TIE_SCALE = 10.0**TIE_DECIMALS


def quantize(sim: np.ndarray) -> np.ndarray:
    """Similarities rounded to TIE_DECIMALS decimals, as int64 multiples of 10**-TIE_DECIMALS.

    Parameters
    ----------
    sim : array of float32/float64, any shape

    Returns
    -------
    int64 array of the same shape.
    """
    return np.rint(sim.astype(np.float64, copy=False) * TIE_SCALE).astype(np.int64)


def _ranks_from_runs(starts, order):
    """Average ranks from sorted tie-run starts and the sort permutation (numpy).

    Parameters
    ----------
    starts : (k, m) bool
        True where a run of equal values starts in each sorted row.
    order : (k, m) int
        The row-wise sort permutation.

    Returns
    -------
    (k, m) float64 average ranks (1-based), in the original column order.
    """
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


class NumpyBackend:
    """The CPU backend: numpy arrays, BLAS products.

    Every kernel goes through these methods, so :class:`TorchBackend` can run the same kernels
    on a GPU. Arrays ("backend arrays") are numpy arrays here.
    """

    name = "numpy"
    label = "cpu"

    def put(self, a: np.ndarray):
        """A host array on the device (itself)."""
        return a

    def index(self, rows: np.ndarray):
        """An index array on the device (itself)."""
        return rows

    def get(self, a) -> np.ndarray:
        """A backend array on the host, as numpy."""
        return np.asarray(a)

    def f64(self, a):
        """A float64 copy."""
        return a.astype(np.float64)

    def arange(self, k: int):
        """0..k-1 on the device."""
        return np.arange(k)

    def zeros(self, shape):
        """float64 zeros of ``shape`` on the device."""
        return np.zeros(shape)

    def row_sums(self, a):
        """(k,) float64 sums of the rows of a (k, m) array."""
        return np.add.reduce(a, axis=1, dtype=np.float64)

    def col_means(self, a):
        """(m,) float64 column means of a (k, m) array, summed in threads over row ranges."""
        sums = map_rows(lambda lo, hi: np.add.reduce(a[lo:hi], axis=0, dtype=np.float64), 0, a.shape[0])
        return np.sum(sums, axis=0) / a.shape[0]

    def like(self, a, other, copy: bool = False):
        """``a`` in ``other``'s dtype (no copy when it already is, unless ``copy``)."""
        return a.astype(other.dtype, copy=copy)

    def concat(self, parts):
        """Row-wise concatenation."""
        return np.concatenate(parts)

    def empty_like(self, a):
        """An uninitialized array like ``a``."""
        return np.empty_like(a)

    def map_rows(self, fn, start: int, stop: int) -> list:
        """fn over row ranges covering [start, stop): numpy's single-threaded kernels, in threads."""
        return map_rows(fn, start, stop)

    def subtract(self, a, b, out) -> None:
        """out = a - b (broadcasting)."""
        np.subtract(a, b, out=out)

    def outer(self, a, b):
        """Outer product of two vectors."""
        return np.outer(a, b)

    def rowdot(self, a, b):
        """(k,) row-wise dot products of two (k, m) arrays, in their dtype."""
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
        """:func:`quantize` (int64 multiples of 10**-TIE_DECIMALS)."""
        return quantize(sim)

    def set_entries(self, a, rows, cols, value) -> None:
        """a[rows, cols] = value."""
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

    def tag_layout(self, tags: sp.csr_matrix, x_dtype) -> HostTags:
        """The unit tag rows (n, t) CSR float64 as this backend's layout (:class:`HostTags`)."""
        return HostTags(tags, x_dtype)

    @contextmanager
    def precision(self):
        """Nothing to set on the CPU."""
        yield


class TorchBackend:
    """The same kernels on a torch device (a GPU): float32 (or float64) similarity products with
    TF32 off unless ``allow_tf32``, float64 moments, results copied back as small numpy arrays.

    Parameters
    ----------
    device : str
        "cuda", "cuda:N" or "torch-cpu" (torch on the CPU).
    allow_tf32 : bool
        Let float32 products use TF32 on CUDA.
    """

    name = "torch"

    def __init__(self, device: str, allow_tf32: bool = False):
        """Import torch and check that the device exists (ScoringError otherwise)."""
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
        """A host array as a tensor on the device."""
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def index(self, rows: np.ndarray):
        """An int64 index tensor on the device."""
        return self.torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)

    def get(self, a) -> np.ndarray:
        """A tensor on the host, as numpy."""
        return a.detach().cpu().numpy()

    def f64(self, a):
        """A float64 copy."""
        return a.to(self.torch.float64, copy=True)

    def arange(self, k: int):
        """0..k-1 on the device."""
        return self.torch.arange(k, device=self.device)

    def zeros(self, shape):
        """float64 zeros of ``shape`` on the device."""
        return self.torch.zeros(shape, dtype=self.torch.float64, device=self.device)

    def row_sums(self, a):
        """(k,) float64 sums of the rows of a (k, m) tensor."""
        return a.sum(dim=1, dtype=self.torch.float64)

    def col_means(self, a):
        """(m,) float64 column means of a (k, m) tensor."""
        return a.sum(dim=0, dtype=self.torch.float64) / a.shape[0]

    def like(self, a, other, copy: bool = False):
        """``a`` in ``other``'s dtype."""
        return a.to(other.dtype, copy=copy)

    def concat(self, parts):
        """Row-wise concatenation."""
        return self.torch.cat(parts)

    def empty_like(self, a):
        """An uninitialized tensor like ``a``."""
        return self.torch.empty_like(a)

    def map_rows(self, fn, start: int, stop: int) -> list:
        """fn over [start, stop) as one range: device kernels are parallel already."""
        return [fn(start, stop)]

    def subtract(self, a, b, out) -> None:
        """out = a - b (broadcasting)."""
        self.torch.sub(a, b, out=out)

    def outer(self, a, b):
        """Outer product of two vectors."""
        return self.torch.outer(a, b)

    def rowdot(self, a, b):
        """(k,) row-wise dot products of two (k, m) tensors, in their dtype."""
        return (a * b).sum(dim=1)

    def matvec64(self, a, v):
        """a @ v in float64 for a (k, d) ``a`` and float64 (d,) ``v``."""
        return a.to(self.torch.float64) @ v

    def rowdot64(self, a, b):
        """Row-wise dot products: elementwise products in the inputs' dtype (one rounding each),
        the sum in float64."""
        if a.dtype != b.dtype:
            a, b = a.to(self.torch.float64), b.to(self.torch.float64)
        return (a * b).sum(dim=1, dtype=self.torch.float64)

    def row_sum_squares(self, a):
        """Per-row float64 sums of squares; ``a`` is overwritten."""
        a.square_()
        return a.sum(dim=1, dtype=self.torch.float64)

    def quantize(self, sim):
        """Similarities as int64 multiples of 10**-TIE_DECIMALS."""
        return self.torch.round(sim.to(self.torch.float64) * TIE_SCALE).to(self.torch.int64)

    def set_entries(self, a, rows, cols, value) -> None:
        """a[rows, cols] = value."""
        a[rows, cols] = value

    def average_ranks(self, q):
        """Row-wise average ranks (1-based, float64) of an integer (k, m) tensor, ties averaged."""
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

    def tag_layout(self, tags: sp.csr_matrix, x_dtype) -> DeviceTags:
        """The unit tag rows (n, t) CSR float64 as this backend's layout (:class:`DeviceTags`:
        a dense float64 copy on the device)."""
        return DeviceTags(tags, x_dtype, self)

    @property
    def label(self) -> str:
        """The device as reported in a score ("torch-cpu", "cuda:0", ...)."""
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


def resolve_score_device(device: str | None) -> str | None:
    """The scoring device for a config value.

    ``"auto"`` is "cuda" when torch sees a GPU, else "cpu" (numpy); any other value is returned
    unchanged. Every entry point resolves "auto" itself; this is for callers that want to log it.

    Examples
    --------
    >>> resolve_score_device("cpu")
    'cpu'
    """
    if device != "auto":
        return device
    if not any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl", "/proc/driver/nvidia")):
        return "cpu"  # no NVIDIA driver: answer without importing torch (seconds on a busy node)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def make_backend(device: str | None, allow_tf32: bool = False):
    """The backend for a device: numpy for None/"cpu"; torch for "cuda", "cuda:N" or "torch-cpu"
    (torch on the CPU, to exercise the torch code without a GPU); "auto" is resolved first."""
    device = resolve_score_device(device)
    if device is None or device == "cpu":
        return NumpyBackend()
    if not isinstance(device, str) or not (device.startswith("cuda") or device == "torch-cpu"):
        raise ScoringError(f"scoring device must be 'cpu', 'cuda', 'cuda:N' or 'torch-cpu', got {device!r}")
    return TorchBackend(device, allow_tf32)

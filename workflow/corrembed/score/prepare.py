"""Input checks and the prepared operands every computation shares; anchors; block sizes.

Inputs everywhere: ``embeddings`` (n, d) float32 or float64 array and ``tag_vectors`` (n, t)
dense array or scipy sparse matrix, rows aligned (row i of both describe item i). Rows are
normalized once (cosine similarity on both sides); a zero row stays zero, so it has similarity 0
to everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from ..errors import ScoringError
from .backends import NumpyBackend, make_backend
from .options import DEFAULT_MEMORY_BUDGET_MB, AnchorsArg, ScoreOptions
from .tag_layout import HostTags
from .threads import map_rows


@dataclass
class Operands:
    """Row-normalized inputs shared by every computation.

    Attributes
    ----------
    x : (n, d) float32/float64
        Unit rows (zero rows stay zero), C-contiguous, host.
    tag_layout : HostTags or DeviceTags
        The (n, t) unit tag rows (zero rows stay zero) and the backend's copy of them
        (:mod:`.tag_layout`): every tag product goes through it.
    x_sq : (n,) float64
        |x_j|^2 (1 or 0 up to the rounding of x's entries), host.
    backend : NumpyBackend or TorchBackend
        The array backend.
    x_dev : backend array
        ``x`` on the backend's device (the same object for numpy).
    """

    x: np.ndarray
    tag_layout: HostTags
    x_sq: np.ndarray
    backend: object = field(default_factory=NumpyBackend)
    x_dev: object = None

    @property
    def n(self) -> int:
        """Number of items."""
        return self.x.shape[0]

    @property
    def tags(self) -> sp.csr_matrix:
        """(n, t) CSR float64 unit tag rows, host (the layout's own matrix)."""
        return self.tag_layout.csr

    @property
    def zero_tag_rows(self) -> np.ndarray:
        """(n,) bool: items whose tag vector is all zero."""
        return self.tag_layout.zero_rows

    def with_tags_of(self, sigma: np.ndarray) -> Operands:
        """Operands in which item i keeps its embedding and takes item ``sigma[i]``'s tag vector."""
        return replace(self, tag_layout=self.tag_layout.permuted(sigma))

    def similarity_block(self, rows: np.ndarray, col_start: int = 0):
        """Embedding and tag cosine similarities of items ``rows`` against items ``col_start..n-1``.

        The only code that materializes similarity values.

        Parameters
        ----------
        rows : (b,) int
            Item indices.
        col_start : int
            First compared item.

        Returns
        -------
        (emb, tag) backend arrays
            emb (b, n - col_start) in the embeddings' dtype (one matrix product), tag
            (b, n - col_start) float64 (sparse x dense product on the CPU).
        """
        be = self.backend
        emb = self.x_dev[be.index(rows)] @ self.x_dev[col_start:].T
        return emb, self.tag_layout.block(rows, col_start)


def row_norms(x: np.ndarray) -> np.ndarray:
    """(n,) float64 Euclidean norms of the rows of x; NaN or inf exactly for rows that hold one.

    One pass: a non-finite value makes its row's norm non-finite, so only those rows are looked
    at again (a float64 row of huge finite values, whose squares overflow, gets a rescaled norm).
    """
    norms = np.sqrt(
        np.concatenate(map_rows(lambda a, b: np.einsum("ij,ij->i", x[a:b], x[a:b], dtype=np.float64), 0, x.shape[0]))
    )
    for row in np.flatnonzero(~np.isfinite(norms)):
        values = x[row].astype(np.float64)
        if np.isfinite(values).all():
            peak = np.abs(values).max()
            norms[row] = peak * np.sqrt(np.sum((values / peak) ** 2))
    return norms


def unit_rows(x: np.ndarray, norms: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm rows and their squared norms, without a second pass over x.

    Parameters
    ----------
    x : (n, d) float32/float64
    norms : (n,) float64
        :func:`row_norms` of x.
    out : (n, d) array in x's dtype, optional
        Where to write the unit rows (may be ``x`` itself); a new array when None.

    Returns
    -------
    unit : (n, d) in x's dtype
        Rows scaled by 1 / norm (zero rows stay zero).
    sq : (n,) float64
        Squared norms of the unit rows, from the norms and the scale actually applied.
    """
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(x.dtype)
    sq = np.square(norms * scale.astype(np.float64))
    out = np.empty(x.shape, dtype=x.dtype) if out is None else out
    map_rows(lambda a, b: np.multiply(x[a:b], scale[a:b, None], out=out[a:b]), 0, x.shape[0])
    return out, sq


def normalize_dense_rows(x: np.ndarray) -> np.ndarray:
    """Unit-norm rows of an (n, d) array in x's dtype (norms in float64); zero rows stay zero."""
    return unit_rows(x, row_norms(x))[0]


def prepare_operands(embeddings, tag_vectors, backend=None, in_place: bool = False) -> Operands:
    """Check the inputs and normalize their rows.

    Parameters
    ----------
    embeddings : (n, d) array
        float32 and float64 are kept; other numeric dtypes become float64.
    tag_vectors : (n, t) dense array or scipy sparse matrix
        Rows aligned with ``embeddings``.
    backend : NumpyBackend or TorchBackend, optional
        Where the computations will run (numpy when None).
    in_place : bool
        Normalize the rows inside ``embeddings`` when it is a writeable C-contiguous float32 or
        float64 array (no n x d copy); otherwise a copy is normalized.

    Returns
    -------
    Operands

    Raises
    ------
    ScoringError
        Wrong shapes, non-numeric or non-finite values, fewer than 3 items.
    """
    backend = backend if backend is not None else NumpyBackend()
    x, x_norms = _checked_embeddings(embeddings)
    tags = _checked_tags(tag_vectors, x.shape[0])
    writable = in_place and x is embeddings and x.flags.c_contiguous and x.flags.writeable
    x, x_sq = unit_rows(x, x_norms, out=x if writable else None)
    tags = _unit_tags(tags, x.dtype)
    return Operands(x=x, tag_layout=backend.tag_layout(tags, x.dtype), x_sq=x_sq, backend=backend, x_dev=backend.put(x))


def _checked_embeddings(embeddings) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float32/float64 embeddings (other numeric dtypes become float64) and their (n,)
    float64 row norms; ScoringError for a wrong shape or dtype or a non-finite row."""
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ScoringError(f"embeddings must be a 2-D (items, dim) array, got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        if not np.issubdtype(x.dtype, np.number):
            raise ScoringError(f"embeddings must be numeric, got dtype {x.dtype}")
        x = x.astype(np.float64)
    x_norms = row_norms(x)
    bad = ~np.isfinite(x_norms)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ScoringError(
            f"embeddings have NaN or infinite values in {rows.size} row(s), first row {rows[0]}: "
            "re-run the embedding step for these items or drop them"
        )
    return x, x_norms


def _checked_tags(tag_vectors, n: int) -> sp.csr_matrix:
    """(n, t) CSR float64 tag vectors, explicit zeros and duplicates removed, indices sorted;
    ScoringError for a wrong shape, a row count other than ``n``, non-finite values, n < 3."""
    if sp.issparse(tag_vectors):
        tags = sp.csr_matrix(tag_vectors, dtype=np.float64)
    else:
        tags_arr = np.asarray(tag_vectors, dtype=np.float64)
        if tags_arr.ndim != 2:
            raise ScoringError(f"tag_vectors must be a 2-D (items, slots) array, got shape {tags_arr.shape}")
        tags = sp.csr_matrix(tags_arr)
    if tags.shape[0] != n:
        raise ScoringError(
            f"embeddings have {n} rows but tag_vectors have {tags.shape[0]}: rows must be aligned item by item"
        )
    if not np.isfinite(tags.data).all():
        raise ScoringError("tag_vectors contain NaN or infinite values")
    if n < 3:
        raise ScoringError(f"need at least 3 items to correlate similarities, got {n}")
    tags.eliminate_zeros()
    tags.sum_duplicates()
    tags.sort_indices()
    return tags


def _unit_tags(tags: sp.csr_matrix, dtype) -> sp.csr_matrix:
    """Unit-norm rows of a CSR float64 (n, t) matrix (zero rows stay zero), weights rounded to
    ``dtype`` (the embeddings') and held in float64."""
    norms = np.sqrt(np.asarray(tags.multiply(tags).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    tags = sp.csr_matrix(sp.diags(scale) @ tags)
    tags.sort_indices()
    if dtype == np.float32:
        # Unit tag vectors rounded to float32 like the unit embeddings (held in float64): the
        # float32 products with tag weights (the cross moments) then see exactly the weights
        # every float64 sum sees. Rounding the weights only inside those products would shift
        # them all the same way for a tag value and move CorrEmbed by ~1e-8 at 10k items.
        tags.data = tags.data.astype(np.float32).astype(np.float64)
    return tags


def resolve_anchors(anchors: AnchorsArg, n: int, seed: int = 42) -> np.ndarray:
    """The anchor item indices, (n_anchors,) int64.

    Parameters
    ----------
    anchors : int, "all" or (k,) integer array
        An int k: k items drawn without replacement by ``np.random.default_rng(seed)``, returned
        sorted (all items when k >= n); ``"all"``: 0..n-1; explicit indices: kept in the given
        order, duplicates allowed.
    n : int
        Number of items.
    seed : int
        Seed of the draw.

    Examples
    --------
    >>> resolve_anchors("all", 3)
    array([0, 1, 2])
    >>> resolve_anchors(2, 10, seed=0).size
    2
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
class BlockSizes:
    """Anchors per block for each kind of (b, n) working set, from one memory budget.

    Attributes
    ----------
    pearson : int
        Embedding deviation block (one (b, n) array in x's dtype, squared in place).
    ranks : int
        Similarity blocks for the Spearman statistics: the two blocks (12-16 bytes per entry)
        with room to spare; rows are then ranked one at a time per thread (a few (n,) arrays).
        The torch path ranks a whole block at once (~112 bytes per entry, on the device).
    pairs : int
        All-pairs blocks (similarities, upper-triangle mask, quantized keys).
    """

    pearson: int
    ranks: int
    pairs: int


_BYTES_PER_ENTRY = {"pearson": 16, "ranks": 24, "pairs": 64}


def block_sizes(block_size: int | None, n: int, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB) -> BlockSizes:
    """Block sizes: ``block_size`` for every kind when given, else each kind's share of the budget.

    Parameters
    ----------
    block_size : int or None
        Anchors per block (>= 1), or None.
    n : int
        Items (columns of a (b, n) block).
    memory_budget_mb : float
        MiB one block's working arrays may take (> 0).
    """
    if block_size is not None:
        if int(block_size) < 1:
            raise ScoringError(f"block_size must be >= 1, got {block_size}")
        b = int(block_size)
        return BlockSizes(b, b, b)
    if not memory_budget_mb > 0:
        raise ScoringError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
    budget = float(memory_budget_mb) * 2**20
    sizes = {k: int(max(1, min(8192, budget // (v * n)))) for k, v in _BYTES_PER_ENTRY.items()}
    return BlockSizes(**sizes)


def iter_blocks(items: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``items`` of at most ``size`` entries."""
    for start in range(0, items.size, size):
        yield items[start : start + size]


def upper_mask(rows: np.ndarray, col_start: int, width: int) -> np.ndarray:
    """Boolean (b, width) mask of pairs (i, j) with j > i, for column j = col_start + c."""
    return (col_start + np.arange(width))[None, :] > rows[:, None]


@dataclass(frozen=True)
class ScoreJob:
    """One call's prepared state: the options, the backend, the operands and block sizes."""

    options: ScoreOptions
    backend: object
    ops: Operands
    blocks: BlockSizes

    def anchors(self) -> np.ndarray:
        """(n_anchors,) int64 anchor indices from the options (:func:`resolve_anchors`)."""
        return resolve_anchors(self.options.anchors, self.ops.n, self.options.seed)


@contextmanager
def prepared_job(embeddings, tag_vectors, options: ScoreOptions) -> Iterator[ScoreJob]:
    """The opening every entry point shares: backend for ``options.device`` ("auto" resolved),
    its precision settings held for the block, inputs checked and normalized, block sizes."""
    backend = make_backend(options.device, options.allow_tf32)
    with backend.precision():
        ops = prepare_operands(embeddings, tag_vectors, backend, in_place=options.normalize_in_place)
        yield ScoreJob(options, backend, ops, block_sizes(options.block_size, ops.n, options.memory_budget_mb))


def similarity_block(embeddings, tag_vectors, rows, col_start: int = 0, *, device: str | None = None):
    """Cosine similarities of items ``rows`` against items ``col_start..n-1``, both sides.

    A look at what the statistics correlate, for a few rows (every call normalizes the inputs).

    Parameters
    ----------
    embeddings : (n, d) float array
    tag_vectors : (n, t) dense array or scipy sparse matrix
    rows : (b,) int
        Item indices.
    col_start : int
        First compared item.
    device : str, optional
        As :class:`ScoreOptions.device`.

    Returns
    -------
    emb : (b, n - col_start) numpy array in the embeddings' dtype (float32 or float64)
    tag : (b, n - col_start) float64 numpy array

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> emb, tag = similarity_block(x, np.eye(3), [0])
    >>> emb.round(3).tolist(), tag.tolist()
    ([[1.0, 0.0, 0.707]], [[1.0, 0.0, 0.0]])
    """
    with prepared_job(embeddings, tag_vectors, ScoreOptions(device=device)) as job:
        emb, tag = job.ops.similarity_block(np.asarray(rows, dtype=np.int64), col_start)
        return job.backend.get(emb), job.backend.get(tag)

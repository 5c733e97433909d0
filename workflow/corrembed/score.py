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
Two exact strategies, picked by a flop-count model (``strategy="auto"``), or forced:

- ``"blockwise"``: for a block of b anchors, the (b, n) embedding-similarity block is one matrix
  product in the embeddings' dtype (float32 in, float32 product; float64 in, float64 product), the
  (b, n) tag-similarity block is a sparse x dense product in float64, and per-row centred float64
  moments give r_a. Cost ~ n_anchors * n * d.
- ``"factored"``: cosine similarity is bilinear, so the centred sums of a whole row follow from
  small matrices: with x_a the normalized embedding, m the mean normalized embedding,
  C = sum_j (x_j - m)(x_j - m)^T (d x d), and likewise for tag vectors tau,
  sum_j (S_aj - mean)^2 = x_a^T C x_a and sum_j (S_aj - mean)(T_aj - mean) = x_a^T K tau_a with
  K = sum_j (x_j - m) tau_j^T (d x t). All in float64 from centred data. Cost ~ (n + n_anchors) d^2,
  far below the n^2 d of the similarity matrix when d << n (exact all-anchors at catalogue scale).
  The all-pairs Pearson uses the same trick with Frobenius norms (raw float64 moments).

The block kernel (:func:`similarity_block`) is the one place that touches the similarity values;
another array backend (torch on CUDA) can replace it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from .errors import ScoringError

#: Similarities are rounded to this many decimals before ranking (Spearman statistics).
TIE_DECIMALS = 12
_TIE_SCALE = 10.0**TIE_DECIMALS

#: Memory the (b, n) working arrays of one block may take when ``block_size`` is not given.
DEFAULT_BLOCK_MEMORY_BYTES = 512 * 2**20

#: All-pairs Spearman is exact up to this many pairs (n ~ 20k); above it, pairs are sampled.
DEFAULT_MAX_EXACT_PAIRS = 200_000_000

#: Number of pairs drawn when the all-pairs Spearman is sampled.
DEFAULT_SPEARMAN_SAMPLE_PAIRS = 1_000_000

AnchorsArg = int | Literal["all"] | np.ndarray
Strategy = Literal["auto", "blockwise", "factored"]

# Bytes of (b, n) working arrays per anchor-row entry in a block (embedding block, its float64
# centred copy, tag block, its centred copy, ranks): sizes the default block.
_BYTES_PER_BLOCK_ENTRY = 48


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
# Input preparation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operands:
    """Row-normalized inputs shared by every computation.

    x: (n, d) float32/float64 unit rows (zero rows stay zero), C-contiguous.
    tags: (n, t) CSR float64 unit rows (zero rows stay zero).
    tags_dense_t: (t, n) float64 dense transpose of ``tags`` when small enough, else None
        (used to build tag-similarity blocks as sparse x dense products).
    """

    x: np.ndarray
    tags: sp.csr_matrix
    tags_dense_t: np.ndarray | None

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def zero_tag_rows(self) -> np.ndarray:
        return np.diff(self.tags.indptr) == 0


def _normalize_dense_rows(x: np.ndarray) -> np.ndarray:
    """Unit-norm rows in x's dtype (norms in float64); zero rows stay zero."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return np.ascontiguousarray(x * scale.astype(x.dtype)[:, None])


def _prepare(embeddings, tag_vectors) -> _Operands:
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ScoringError(f"embeddings must be a 2-D (items, dim) array, got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        if not np.issubdtype(x.dtype, np.number):
            raise ScoringError(f"embeddings must be numeric, got dtype {x.dtype}")
        x = x.astype(np.float64)
    bad = ~np.isfinite(x).all(axis=1)
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

    x = _normalize_dense_rows(x)
    norms = np.sqrt(np.asarray(tags.multiply(tags).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    tags = sp.csr_matrix(sp.diags(scale) @ tags)
    tags.sort_indices()

    n, t = tags.shape
    # Dense (t, n) copy makes a tag block a cheap sparse(b, t) x dense(t, n) product; skip it when
    # it would be large (many slots), then blocks come from sparse x sparse products.
    tags_dense_t = np.ascontiguousarray(tags.T.toarray()) if n * t * 8 <= 2**30 else None
    return _Operands(x=x, tags=tags, tags_dense_t=tags_dense_t)


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


def _block_size(block_size: int | None, n: int) -> int:
    if block_size is not None:
        if int(block_size) < 1:
            raise ScoringError(f"block_size must be >= 1, got {block_size}")
        return int(block_size)
    return int(max(16, min(4096, DEFAULT_BLOCK_MEMORY_BYTES // (_BYTES_PER_BLOCK_ENTRY * n))))


# --------------------------------------------------------------------------------------------
# Block kernel: the only code that materializes similarity values
# --------------------------------------------------------------------------------------------


def similarity_block(ops: _Operands, rows: np.ndarray, col_start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embedding and tag cosine similarities of items ``rows`` against items ``col_start..n-1``.

    Returns (emb, tag): emb (b, n - col_start) in the embeddings' dtype (one matrix product),
    tag (b, n - col_start) float64.
    """
    emb = ops.x[rows] @ ops.x[col_start:].T
    tag_rows = ops.tags[rows]
    if ops.tags_dense_t is not None:
        # sparse (b, t) x dense (t, n): ~nnz-per-row axpys of length n per anchor.
        tag = tag_rows @ ops.tags_dense_t[:, col_start:]
    else:
        tag = (tag_rows @ ops.tags[col_start:].T).toarray()
    return emb, np.asarray(tag)


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


def _row_pearson(a: np.ndarray, b: np.ndarray, self_col: np.ndarray | None, a_dtype, b_dtype) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (both (k, m)).

    With ``self_col`` (k,) the entry ``[i, self_col[i]]`` is left out of row i. Centred float64
    moments; NaN where a row is constant. ``b`` may be modified in place.
    """
    k, m = a.shape
    a = a.astype(np.float64)  # our own copy, centred in place below
    b = b if b.dtype == np.float64 else b.astype(np.float64)
    rows = np.arange(k)
    if self_col is None:
        count = m
        mean_a = a.mean(axis=1)
        mean_b = b.mean(axis=1)
    else:
        count = m - 1
        mean_a = (a.sum(axis=1) - a[rows, self_col]) / count
        mean_b = (b.sum(axis=1) - b[rows, self_col]) / count
    a -= mean_a[:, None]
    b -= mean_b[:, None]
    sxx = np.einsum("ij,ij->i", a, a)
    syy = np.einsum("ij,ij->i", b, b)
    sxy = np.einsum("ij,ij->i", a, b)
    if self_col is not None:
        da = a[rows, self_col]
        db = b[rows, self_col]
        sxx -= da * da
        syy -= db * db
        sxy -= da * db
    return _pearson_from_sums(sxx, syy, sxy, count, a_dtype, b_dtype)


def _pearson_from_sums(sxx, syy, sxy, count, x_dtype, y_dtype) -> np.ndarray:
    defined = (sxx > _undefined_threshold(count, x_dtype)) & (syy > _undefined_threshold(count, y_dtype))
    r = np.full(np.shape(sxx), np.nan)
    r[defined] = sxy[defined] / np.sqrt(sxx[defined] * syy[defined])
    return np.clip(r, -1.0, 1.0)


def _quantize(sim: np.ndarray) -> np.ndarray:
    """Similarities rounded to TIE_DECIMALS decimals, as int64 multiples of 10**-TIE_DECIMALS."""
    return np.rint(sim.astype(np.float64, copy=False) * _TIE_SCALE).astype(np.int64)


def _row_ranks(sim: np.ndarray, self_col: np.ndarray | None) -> np.ndarray:
    """Average ranks (float64) of each row's similarities rounded to TIE_DECIMALS decimals.

    The self entry, when given, is ranked last so the others get the ranks 1..m-1 they have
    among themselves; :func:`_row_pearson` then leaves it out.
    """
    q = np.round(sim.astype(np.float64), TIE_DECIMALS)
    if self_col is not None:
        q[np.arange(q.shape[0]), self_col] = np.inf
    return rankdata(q, method="average", axis=1)


def _anchor_rows(ops: _Operands, anchors: np.ndarray, include_self: bool, method: str, block: int) -> np.ndarray:
    """Per-anchor correlations over similarity blocks: (n_anchors,) float64."""
    out = np.empty(anchors.size)
    for start in range(0, anchors.size, block):
        rows = anchors[start : start + block]
        emb, tag = similarity_block(ops, rows)
        self_col = None if include_self else rows
        if method == "pearson":
            out[start : start + rows.size] = _row_pearson(emb, tag, self_col, ops.x.dtype, np.float64)
        else:
            out[start : start + rows.size] = _row_pearson(
                _row_ranks(emb, self_col), _row_ranks(tag, self_col), self_col, np.float64, np.float64
            )
    return out


# --------------------------------------------------------------------------------------------
# Per-anchor Pearson from factored moments
# --------------------------------------------------------------------------------------------

#: Above this many tag slots the (t, t) and (d, t) factor matrices are not built; per-anchor
#: Pearson then takes every moment from similarity blocks.
MAX_DENSE_SLOTS = 4096


@dataclass(frozen=True)
class _PearsonFactors:
    """Small matrices from which per-anchor centred moments follow (all float64 unless noted).

    x_mean: (d,) mean normalized embedding m.  tag_mean: (t,) mean normalized tag vector mu.
    cross: (d, t) K = sum_j (x_j - m) tau_j^T.  scatter_t: (t, t) sum_j (tau_j - mu)(tau_j - mu)^T.
    scatter_x: (d, d) sum_j (x_j - m)(x_j - m)^T, only for the factored strategy.
    x_centred: (n, d) x_j - m in the embeddings' dtype, only for the blockwise strategy.
    """

    x_mean: np.ndarray
    tag_mean: np.ndarray
    cross: np.ndarray
    scatter_t: np.ndarray
    scatter_x: np.ndarray | None
    x_centred: np.ndarray | None


def _centred_scatter_tags(tags: sp.csr_matrix, mean: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """sum_j (tau_j - mean)(tau_j - mean)^T, (t, t) float64, from centred dense row chunks."""
    t = tags.shape[1]
    out = np.zeros((t, t))
    for start in range(0, tags.shape[0], chunk):
        centred = tags[start : start + chunk].toarray() - mean
        out += centred.T @ centred
    return out


def _pearson_factors(ops: _Operands, factored: bool, chunk: int = 4096) -> _PearsonFactors:
    n, d = ops.x.shape
    x_mean = ops.x.mean(axis=0, dtype=np.float64)
    tag_mean = np.asarray(ops.tags.mean(axis=0)).ravel()
    cross = np.zeros((d, ops.tags.shape[1]))
    scatter_x = np.zeros((d, d)) if factored else None
    x_centred = None if factored else np.empty_like(ops.x)
    # Row chunks keep the float64 centred copy small (memory O(chunk * d)).
    for start in range(0, n, chunk):
        centred = ops.x[start : start + chunk].astype(np.float64) - x_mean
        cross += np.asarray(ops.tags[start : start + chunk].T @ centred).T
        if factored:
            scatter_x += centred.T @ centred
        else:
            x_centred[start : start + chunk] = centred
    scatter_t = _centred_scatter_tags(ops.tags, tag_mean)
    return _PearsonFactors(x_mean, tag_mean, cross, scatter_t, scatter_x, x_centred)


def embedding_deviation_block(x_rows: np.ndarray, x_centred: np.ndarray) -> np.ndarray:
    """(b, n) block of x_a . (x_j - m) = S_aj - mean_j S_aj, one matrix product in x's dtype.

    Block kernel of the blockwise Pearson: the embedding-similarity row of each anchor, already
    centred on its mean over all n items, so its sum of squares has no cancellation.
    """
    return x_rows @ x_centred.T


def _anchor_pearson(ops: _Operands, anchors: np.ndarray, include_self: bool, block: int, factored: bool) -> np.ndarray:
    """Per-anchor Pearson r_a, (n_anchors,) float64.

    Centred sums over all n items: tag side and cross term from the factor matrices
    (sum_j (S_aj - mean)(T_aj - mean) = x_a^T K tau_a); embedding side from x_a^T C x_a
    (factored) or from the centred similarity block (blockwise). The self pair is then removed
    when ``include_self`` is false (one-point downdate of centred sums).
    """
    if ops.tags.shape[1] > MAX_DENSE_SLOTS:
        return _anchor_rows(ops, anchors, include_self, "pearson", block)
    n = ops.n
    fac = _pearson_factors(ops, factored)
    count = n if include_self else n - 1
    out = np.empty(anchors.size)
    for start in range(0, anchors.size, block):
        rows = anchors[start : start + block]
        xa = ops.x[rows].astype(np.float64)
        ta = ops.tags[rows].toarray()
        if factored:
            sxx = np.einsum("ij,ij->i", xa @ fac.scatter_x, xa)
        else:
            dev = embedding_deviation_block(ops.x[rows], fac.x_centred)
            np.square(dev, out=dev)
            sxx = np.add.reduce(dev, axis=1, dtype=np.float64)
        syy = np.einsum("ij,ij->i", ta @ fac.scatter_t, ta)
        sxy = np.einsum("ij,ij->i", xa @ fac.cross, ta)
        if not include_self:
            # Remove the self pair (x_a.x_a, tau_a.tau_a) from the centred sums over all n items.
            dx = np.einsum("ij,ij->i", xa, xa) - xa @ fac.x_mean
            dt = np.einsum("ij,ij->i", ta, ta) - ta @ fac.tag_mean
            f = n / (n - 1)
            sxx = sxx - f * dx * dx
            syy = syy - f * dt * dt
            sxy = sxy - f * dx * dt
        out[start : start + rows.size] = _pearson_from_sums(sxx, syy, sxy, count, ops.x.dtype, np.float64)
    return out


def _use_factored(ops: _Operands, n_rows: int, strategy: Strategy) -> bool:
    if strategy == "factored":
        return True
    if strategy == "blockwise":
        return False
    if strategy != "auto":
        raise ScoringError(f"strategy must be 'auto', 'blockwise' or 'factored', got {strategy!r}")
    n, d = ops.x.shape
    # Multiply-adds; float64 GEMMs run at about half the float32 rate; the blockwise path also
    # makes a few passes over each (b, n) block.
    factored = 2.0 * (n + n_rows) * d * d
    float32_factor = 1.0 if ops.x.dtype == np.float32 else 2.0
    blockwise = float32_factor * n_rows * n * d + 4.0 * n_rows * n
    return factored < blockwise


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
) -> CorrEmbedResult:
    """CorrEmbed: mean over anchors of the correlation between tag and embedding similarity rows.

    Args:
        embeddings: (n, d) float32/float64 array.
        tag_vectors: (n, t) dense array or scipy sparse matrix, rows aligned with ``embeddings``.
        anchors: number of anchors drawn with ``seed`` (all items if >= n), ``"all"``, or an
            explicit (k,) integer array of item indices (order kept).
        seed: seed of the anchor draw (``np.random.default_rng``).
        include_self: compare each anchor with itself too (the paper's choice) or not (default).
        block_size: anchors per block; default from :data:`DEFAULT_BLOCK_MEMORY_BYTES`.
        method: "pearson" (CorrEmbed) or "spearman" (rank rows, ties averaged after rounding).
        strategy: for Pearson, "blockwise", "factored" or "auto" (cheaper by flop count); both exact.

    Returns:
        :class:`CorrEmbedResult`.

    Raises:
        ScoringError: bad shapes or values, or no anchor with a defined correlation.
    """
    ops = _prepare(embeddings, tag_vectors)
    return _corrembed(ops, resolve_anchors(anchors, ops.n, seed), include_self, _block_size(block_size, ops.n), method, strategy)


def _corrembed(ops: _Operands, anchors: np.ndarray, include_self: bool, block: int, method: str, strategy: Strategy) -> CorrEmbedResult:
    if method not in ("pearson", "spearman"):
        raise ScoringError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if method == "pearson":
        per_anchor = _anchor_pearson(ops, anchors, include_self, block, _use_factored(ops, anchors.size, strategy))
    else:
        per_anchor = _anchor_rows(ops, anchors, include_self, method, block)
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
) -> CorrEmbedResult:
    """Per-anchor Spearman variant of :func:`corrembed` (same as ``corrembed(..., method="spearman")``)."""
    return corrembed(
        embeddings, tag_vectors, anchors=anchors, seed=seed, include_self=include_self,
        block_size=block_size, method="spearman",
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
    moments = _PairMoments()
    for rows in _iter_blocks(np.arange(ops.n), block):
        start = int(rows[0])
        emb, tag = similarity_block(ops, rows, col_start=start)
        mask = _upper_mask(rows, start, emb.shape[1])
        moments.add(emb[mask], tag[mask])
    return moments.pearson(ops.x.dtype, np.float64)


def _allpairs_pearson_factored(ops: _Operands) -> float:
    """Pearson over i < j from Gram matrices: sum_{i<j} S_ij = (sum_ij S_ij - sum_i S_ii) / 2, etc."""
    n = ops.n
    x = ops.x.astype(np.float64)
    tags = ops.tags
    x_sq = np.einsum("ij,ij->i", x, x)  # S_ii (1 or 0)
    t_sq = np.asarray(tags.multiply(tags).sum(axis=1)).ravel()
    x_sum = x.sum(axis=0)
    t_sum = np.asarray(tags.sum(axis=0)).ravel()
    gram_x = x.T @ x
    gram_t = (tags.T @ tags).toarray()
    cross = np.asarray(tags.T @ x)  # (t, d)
    pairs = n * (n - 1) / 2
    sum_x = (x_sum @ x_sum - x_sq.sum()) / 2
    sum_y = (t_sum @ t_sum - t_sq.sum()) / 2
    sum_xx = (np.sum(gram_x * gram_x) - (x_sq * x_sq).sum()) / 2
    sum_yy = (np.sum(gram_t * gram_t) - (t_sq * t_sq).sum()) / 2
    sum_xy = (np.sum(cross * cross) - (x_sq * t_sq).sum()) / 2
    sxx = np.array([sum_xx - sum_x * sum_x / pairs])
    syy = np.array([sum_yy - sum_y * sum_y / pairs])
    sxy = np.array([sum_xy - sum_x * sum_y / pairs])
    return float(_pearson_from_sums(sxx, syy, sxy, int(pairs), ops.x.dtype, np.float64)[0])


def allpairs_pearson(
    embeddings, tag_vectors, *, block_size: int | None = None, strategy: Strategy = "auto"
) -> float:
    """One Pearson correlation over all pairs i < j of the two cosine-similarity matrices.

    Args: as :func:`corrembed`. Returns a float (NaN when either side is constant over pairs).
    """
    ops = _prepare(embeddings, tag_vectors)
    return _allpairs_pearson(ops, _block_size(block_size, ops.n), strategy)


def _allpairs_pearson(ops: _Operands, block: int, strategy: Strategy) -> float:
    # Half of the n rows' worth of similarity work covers the upper triangle.
    if _use_factored(ops, ops.n // 2, strategy):
        return _allpairs_pearson_factored(ops)
    return _allpairs_pearson_blockwise(ops, block)


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
    ranks_e = rankdata(np.round(emb.astype(np.float64), TIE_DECIMALS))
    ranks_t = rankdata(np.round(tag, TIE_DECIMALS))
    return float(_row_pearson(ranks_e[None], ranks_t[None], None, np.float64, np.float64)[0])


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
) -> AllPairsSpearman:
    """Spearman correlation over all pairs i < j of the two cosine-similarity matrices.

    Exact when n(n-1)/2 <= ``max_exact_pairs`` (holds 8 bytes per pair); otherwise from
    ``sample_pairs`` pairs drawn uniformly with replacement (seeded), with a standard error.
    Similarities are rounded to TIE_DECIMALS decimals before ranking; ties get average ranks.
    """
    ops = _prepare(embeddings, tag_vectors)
    return _allpairs_spearman(ops, _block_size(block_size, ops.n), max_exact_pairs, sample_pairs, seed)


def _allpairs_spearman(ops: _Operands, block: int, max_exact_pairs: int, sample_pairs: int, seed: int) -> AllPairsSpearman:
    n_pairs = ops.n * (ops.n - 1) // 2
    if n_pairs > max_exact_pairs:
        return _allpairs_spearman_sampled(ops, sample_pairs, seed)
    collector = _PairRankCollector(n_pairs)
    for rows in _iter_blocks(np.arange(ops.n), block):
        start = int(rows[0])
        emb, tag = similarity_block(ops, rows, col_start=start)
        mask = _upper_mask(rows, start, emb.shape[1])
        collector.add(emb[mask], tag[mask])
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
) -> ScoreReport:
    """CorrEmbed with its bootstrap interval, all-pairs and Spearman variants, and controls.

    Controls (each CorrEmbed over the same anchors, NaN when ``controls`` is false): random
    Gaussian embeddings of the same shape and dtype; embeddings with rows permuted across items;
    tag vectors with rows permuted across items. Their seeds derive from ``seed``.
    Args and returns: see :func:`corrembed`, :func:`allpairs_spearman`, :class:`ScoreReport`.
    """
    ops = _prepare(embeddings, tag_vectors)
    n = ops.n
    block = _block_size(block_size, n)
    anchor_idx = resolve_anchors(anchors, n, seed)
    pearson = _corrembed(ops, anchor_idx, include_self, block, "pearson", "auto")
    spearman = _corrembed(ops, anchor_idx, include_self, block, "spearman", "blockwise")
    ci_low, ci_high = bootstrap_interval(pearson.per_anchor, bootstrap, confidence, seed)
    all_pearson = _allpairs_pearson(ops, block, "auto")
    all_spearman = _allpairs_spearman(ops, block, max_exact_pairs, sample_pairs, seed)

    control_random = control_shuffled_emb = control_shuffled_tags = float("nan")
    if controls:
        seq_random, seq_emb, seq_tags = np.random.SeedSequence(seed).spawn(3)
        random_x = np.random.default_rng(seq_random).standard_normal(ops.x.shape).astype(ops.x.dtype)
        control_random = _control(random_x, ops.tags, anchor_idx, include_self, block)
        perm = np.random.default_rng(seq_emb).permutation(n)
        control_shuffled_emb = _control(ops.x[perm], ops.tags, anchor_idx, include_self, block)
        perm = np.random.default_rng(seq_tags).permutation(n)
        control_shuffled_tags = _control(ops.x, ops.tags[perm], anchor_idx, include_self, block)

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
        anchors=anchor_idx,
        per_anchor_pearson=pearson.per_anchor,
        per_anchor_spearman=spearman.per_anchor,
    )


def _control(x: np.ndarray, tags: sp.csr_matrix, anchors: np.ndarray, include_self: bool, block: int) -> float:
    ops = _prepare(x, tags)
    try:
        return _corrembed(ops, anchors, include_self, block, "pearson", "auto").mean
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

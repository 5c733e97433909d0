"""Deployment variants of an embedding: fewer dimensions (PCA, truncation) and cheaper storage
(fp16, int8 scalar quantization, binary codes), alone or combined.

A variant is named as in ``results/deployment.csv``: ``full`` (the model's float32 vector),
a reduction ``pca<k>`` or ``truncate<k>``, a precision ``fp16``, ``int8`` or ``binary``, or a
reduction and a precision joined by ``+`` (``pca128+int8``). Definitions:

- ``pca<k>``: the principal axes V of the *centred* catalogue embeddings (eigenvectors of the
  (d, d) scatter sum_j (x_j - m)(x_j - m)^T, descending eigenvalue), applied to the *uncentred*
  embeddings: x V_k. With k = d (and n > d) V is a rotation, so every cosine, hence the score,
  equals the full model's.
- ``truncate<k>``: the first k dimensions (models trained Matryoshka-style).
- ``fp16``: each vector scaled to unit length (as a cosine index stores it; cosine does not
  change), then each value rounded to IEEE half precision. Without the scaling, small raw
  features underflow: a random-init MobileNetV3's (~1e-9) all round to 0.
- ``int8``: 256 levels between each dimension's catalogue min and max, FAISS's ``QT_8bit``
  scalar quantizer with a min/max range: code = min(255, floor(255 (x - lo) / (hi - lo))),
  decoded lo + (code + 0.5) (hi - lo) / 255; a constant dimension decodes to its value.
- ``binary``: one bit per dimension, the sign of x - m (m the catalogue mean: the raw sign of a
  non-negative CNN feature is all ones); the ±1 vectors' cosine is 1 - 2 Hamming / d.

Similarity is always the cosine of the decoded vectors (what a float index over them returns).
A reduction to k >= d dimensions is not a reduction: :func:`variants_for` drops it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..errors import ConfigError, ScoringError

#: Storage precisions and their bits per dimension.
PRECISION_BITS = {"float32": 32, "fp16": 16, "int8": 8, "binary": 1}
#: Items per float32 product of the PCA scatter (summed in float64), as the score's scatter.
PCA_CHUNK = 4096

_PART = re.compile(r"^(pca|truncate)(\d+)$")


@dataclass(frozen=True)
class Variant:
    """One way of storing a model's vectors.

    Attributes:
        name: canonical name (``full``, ``pca128``, ``int8``, ``pca128+int8``, ...).
        reduction: ``none``, ``pca`` or ``truncate``.
        dims: kept dimensions (None: all of the model's d).
        precision: ``float32``, ``fp16``, ``int8`` or ``binary``.
    """

    name: str
    reduction: str
    dims: int | None
    precision: str

    def stored_dims(self, d: int) -> int:
        """Dimensions stored per item for a model of dimension ``d``."""
        return d if self.dims is None else min(self.dims, d)

    def bytes_per_item(self, d: int) -> int:
        """Bytes of one stored vector (binary: bits rounded up to whole bytes).

        Examples
        --------
        >>> parse_variant("pca128+int8").bytes_per_item(1280), parse_variant("binary").bytes_per_item(1280)
        (128, 160)
        """
        return math.ceil(self.stored_dims(d) * PRECISION_BITS[self.precision] / 8)


def parse_variant(name: str) -> Variant:
    """The :class:`Variant` a name spells (``full``, ``pca64``, ``truncate32+binary``, ``fp16``, ...).

    Raises
    ------
    ConfigError
        For an unknown part, a zero size, or two reductions / two precisions.

    Examples
    --------
    >>> parse_variant("pca128+int8")
    Variant(name='pca128+int8', reduction='pca', dims=128, precision='int8')
    """
    text = str(name).strip().lower()
    reduction, dims, precision = "none", None, "float32"
    for part in text.split("+"):
        match = _PART.match(part)
        if match:
            if reduction != "none":
                raise ConfigError(f"deployment.variants: {name!r} has two reductions; use one of pca<k>/truncate<k>")
            reduction, dims = match.group(1), int(match.group(2))
            if dims < 1:
                raise ConfigError(f"deployment.variants: {name!r} keeps no dimension; use k >= 1")
        elif part in ("fp16", "int8", "binary"):
            if precision != "float32":
                raise ConfigError(f"deployment.variants: {name!r} has two precisions; use one of fp16/int8/binary")
            precision = part
        elif part not in ("full", "float32", "fp32"):
            raise ConfigError(
                f"deployment.variants: unknown part {part!r} in {name!r}; write full, pca<k>, truncate<k>, "
                "fp16, int8, binary, or a reduction and a precision joined by + (e.g. pca128+int8)"
            )
    parts = ([f"{reduction}{dims}"] if reduction != "none" else []) + ([precision] if precision != "float32" else [])
    return Variant("+".join(parts) or "full", reduction, dims, precision)


def variants_for(names, d: int) -> list[Variant]:
    """The configured variants that apply to a d-dimensional model, ``full`` first, duplicates and
    reductions to k >= d dropped.

    Examples
    --------
    >>> [v.name for v in variants_for(["pca32", "pca64", "int8"], 48)]
    ['full', 'pca32', 'int8']
    """
    out = {"full": parse_variant("full")}
    for name in names:
        variant = parse_variant(name)
        if variant.dims is None or variant.dims < d:
            out.setdefault(variant.name, variant)
    return list(out.values())


@dataclass(frozen=True)
class PcaBasis:
    """Principal axes of centred catalogue embeddings.

    Attributes:
        mean: (d,) float64 catalogue mean.
        components: (d, d) float64, column i the i-th principal axis (descending variance; sign
            fixed so that each axis's largest-magnitude entry is positive).
        variances: (d,) float64 eigenvalues of the scatter divided by n - 1, descending.
    """

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray


def pca_basis(embeddings, chunk: int = PCA_CHUNK) -> PcaBasis:
    """The PCA basis of (n, d) embeddings from their (d, d) scatter (never an (n, n) array).

    The scatter is summed in float64 over chunks of ``chunk`` centred rows, each one product in
    the embeddings' dtype (as the score's factored route sums its scatter).

    Examples
    --------
    >>> x = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    >>> np.abs(pca_basis(x).components[:, 0]).tolist(), pca_basis(x).variances.round(3).tolist()
    ([1.0, 0.0], [2.667, 0.667])
    """
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ScoringError(f"PCA needs an (n, d) array with n >= 2, got shape {x.shape}")
    n, d = x.shape
    mean = np.add.reduce(x, axis=0, dtype=np.float64) / n
    mean_x = mean.astype(x.dtype)
    scatter = np.zeros((d, d))
    for start in range(0, n, chunk):
        part = x[start : start + chunk] - mean_x
        scatter += part.T @ part
    # LAPACK's syevr through SciPy: ~4x faster than numpy.linalg.eigh's syevd here at d = 1280.
    values, vectors = scipy.linalg.eigh((scatter + scatter.T) / 2.0, driver="evr")
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(d)])
    vectors *= np.where(signs == 0, 1.0, signs)
    return PcaBasis(mean=mean, components=vectors, variances=values / (n - 1))


def int8_range(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (lo, hi) float64 of the catalogue, the int8 quantizer's range."""
    return x.min(axis=0).astype(np.float64), x.max(axis=0).astype(np.float64)


def int8_encode(x, lo, hi) -> np.ndarray:
    """(n, d) uint8 codes of FAISS ``QT_8bit``: min(255, floor(255 (x - lo) / (hi - lo))), clipped.

    Examples
    --------
    >>> int8_encode(np.array([[0.0], [0.5], [1.0]]), np.array([0.0]), np.array([1.0])).ravel().tolist()
    [0, 127, 255]
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    span = np.where(hi > lo, hi - lo, 1.0)
    unit = np.clip((np.asarray(x, np.float64) - lo) / span, 0.0, 1.0)
    return np.minimum(np.floor(unit * 255.0), 255.0).astype(np.uint8)


def int8_decode(codes, lo, hi, dtype=np.float32) -> np.ndarray:
    """Decoded values lo + (code + 0.5) (hi - lo) / 255 (a constant dimension: its value).

    Examples
    --------
    >>> int8_decode(np.array([[0], [255]], np.uint8), np.array([0.0]), np.array([1.0]), np.float64).ravel().round(4)
    array([0.002, 1.002])
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    out = lo + (codes.astype(np.float64) + 0.5) * ((hi - lo) / 255.0)
    return out.astype(dtype)


def binary_codes(x, mean, dtype=np.float32) -> np.ndarray:
    """(n, d) ±1 vectors: +1 where x >= mean, else -1 (one bit per dimension when stored).

    Examples
    --------
    >>> binary_codes(np.array([[1.0, 3.0], [2.0, 0.0]]), np.array([1.5, 1.5])).tolist()
    [[-1.0, 1.0], [1.0, -1.0]]
    """
    return np.where(np.asarray(x) >= np.asarray(mean, dtype=np.asarray(x).dtype), 1.0, -1.0).astype(dtype)


def reduce_dims(x: np.ndarray, variant: Variant, basis: PcaBasis | None = None) -> np.ndarray:
    """The variant's reduction of (n, d) embeddings: x V_k (pca), x[:, :k] (truncate) or x."""
    if variant.reduction == "pca":
        if basis is None:
            raise ScoringError(f"variant {variant.name}: a PCA basis is needed (pca_basis of the embeddings)")
        k = variant.stored_dims(x.shape[1])
        return x @ basis.components[:, :k].astype(x.dtype)
    if variant.reduction == "truncate":
        return np.ascontiguousarray(x[:, : variant.stored_dims(x.shape[1])])
    return x


def apply_variant(embeddings, variant: Variant, basis: PcaBasis | None = None, model: str = "model") -> np.ndarray:
    """(n, k) decoded vectors of ``variant`` (what its cosine similarity is computed on), in the
    embeddings' dtype (float32, or float64 for float64 input; other dtypes become float32).

    Parameters
    ----------
    embeddings : (n, d) float array
    variant : Variant
    basis : PcaBasis, needed for ``pca`` variants (:func:`pca_basis` of the same embeddings)
    model : str, named in errors

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [0.0, 0.0, 1.0]])
    >>> apply_variant(x, parse_variant("truncate2+binary")).tolist()
    [[-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]]
    """
    x = np.asarray(embeddings)
    x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)
    reduced = reduce_dims(x, variant, basis)
    if variant.precision == "fp16":
        norms = np.linalg.norm(reduced, axis=1, keepdims=True)
        unit = reduced / np.where(norms > 0, norms, 1.0)
        return unit.astype(np.float16).astype(x.dtype)
    if variant.precision == "int8":
        lo, hi = int8_range(reduced)
        out = np.empty(reduced.shape, dtype=x.dtype)
        for start in range(0, reduced.shape[0], PCA_CHUNK):  # bounded float64 temporaries
            rows = slice(start, start + PCA_CHUNK)
            out[rows] = int8_decode(int8_encode(reduced[rows], lo, hi), lo, hi, x.dtype)
        return out
    if variant.precision == "binary":
        mean = np.add.reduce(reduced, axis=0, dtype=np.float64) / reduced.shape[0]
        return binary_codes(reduced, mean, x.dtype)
    return reduced

"""A 2-D map of an embedding (t-SNE, openTSNE), on a seeded subsample above a size limit.

Why openTSNE: its FFT-accelerated t-SNE (Linderman et al. 2019) scales linearly in the points;
measured on this project's 2-core machine at 10,000 points (PCA-50 input, same seed):
openTSNE 63 s vs scikit-learn's Barnes-Hut TSNE 229 s, with the same 10-NN class agreement
(``benchmarks/diagnostics_map.py``, docs/benchmarks.md). UMAP (umap-learn) would pull numba and
llvmlite into the environment for a similar speed; t-SNE is also what the paper shows.

Steps: rows scaled to unit length (the map then reflects cosine geometry, as the scores do),
centred and projected on their first ``pca_dims`` principal axes (exact, via the (d, d) covariance,
float64), then openTSNE with PCA initialization, ``perplexity`` and ``seed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .neighbours import unit_rows


@dataclass(frozen=True)
class EmbeddingMap:
    """Map coordinates: ``items`` (m,) int64 item indices (sorted), ``xy`` (m, 2) float64."""

    items: np.ndarray
    xy: np.ndarray


def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted item indices: all n when n <= max_points, else max_points drawn without replacement."""
    if max_points < 3:
        raise ConfigError(f"diagnostics map: max_points must be at least 3, got {max_points}")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False)).astype(np.int64)


def pca(x: np.ndarray, dims: int) -> np.ndarray:
    """(m, min(dims, d, m - 1)) float64 projections of the centred rows on their leading principal axes.

    The sign of each axis is fixed (largest-magnitude loading positive) so results are reproducible.
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    dims = int(max(1, min(dims, x.shape[1], x.shape[0] - 1)))
    values, vectors = np.linalg.eigh(centred.T @ centred)
    axes = vectors[:, ::-1][:, :dims]
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(dims)])
    return centred @ (axes * signs)


def embedding_map(
    embeddings,
    *,
    max_points: int = 10_000,
    seed: int = 42,
    perplexity: float = 30.0,
    pca_dims: int = 50,
    n_jobs: int | None = None,
) -> EmbeddingMap:
    """2-D t-SNE map of (a seeded subsample of) the items' embeddings.

    Parameters
    ----------
    embeddings : (n, d) ndarray
        Item embeddings.
    max_points : int
        Map at most this many items (seeded subsample above it).
    seed : int
        Seed of the subsample and of t-SNE.
    perplexity : float
        t-SNE perplexity, lowered to (m - 1) / 3 for tiny inputs.
    pca_dims : int
        Dimensions kept before t-SNE.
    n_jobs : int, optional
        Threads (default: the CPUs this process may use).

    Returns
    -------
    EmbeddingMap
        ``items`` (m,) int64 positions mapped and ``xy`` (m, 2) float64 coordinates.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((40, 8))
    >>> result = embedding_map(x, max_points=30, n_jobs=1)
    >>> result.items.shape, result.xy.shape
    ((30,), (30, 2))
    """
    from openTSNE import TSNE

    x = np.asarray(embeddings)
    items = subsample(x.shape[0], int(max_points), seed)
    reduced = pca(unit_rows(x[items]), pca_dims)
    perplexity = float(min(perplexity, max(1.0, (items.size - 1) / 3.0)))
    threads = n_jobs or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    tsne = TSNE(perplexity=perplexity, random_state=seed, n_jobs=threads, initialization="pca", verbose=False)
    xy = np.asarray(tsne.fit(reduced), dtype=np.float64)
    return EmbeddingMap(items=items, xy=xy)

"""2-D embedding map: seeded subsample, exact PCA step, clusters stay apart."""

from __future__ import annotations

import numpy as np

from corrembed.diagnostics.embedding_map import embedding_map, pca, subsample


def test_pca_matches_svd():
    x = np.random.default_rng(0).normal(size=(50, 8)) @ np.diag([5, 4, 3, 2, 1, 1, 1, 1])
    got = pca(x, 3)
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(np.abs(got), np.abs(u[:, :3] * s[:3]), atol=1e-9)


def test_subsample_is_seeded_and_bounded():
    np.testing.assert_array_equal(subsample(10, 20, 1), np.arange(10))
    a = subsample(1000, 100, 1)
    assert a.size == 100 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, subsample(1000, 100, 1))


def test_map_keeps_clusters_apart_and_is_reproducible():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5
    labels = np.repeat(np.arange(3), 40)
    x = centres[labels] + rng.normal(size=(120, 16))
    m = embedding_map(x, max_points=90, seed=3, n_jobs=1)
    assert m.xy.shape == (90, 2) and m.items.size == 90
    again = embedding_map(x, max_points=90, seed=3, n_jobs=1)
    np.testing.assert_allclose(m.xy, again.xy)
    lab = labels[m.items]
    # every point's nearest mapped neighbour has its cluster
    d = ((m.xy[:, None] - m.xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (lab[d.argmin(axis=1)] == lab).mean() > 0.95

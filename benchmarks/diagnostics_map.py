"""Which t-SNE for the diagnostics' embedding map: openTSNE (FFT) vs scikit-learn (Barnes-Hut).

Same input for both: 20 Gaussian clusters in 256-d (``make_blobs``, seed 0), reduced to 50
dimensions by PCA (as ``corrembed.diagnostics.embedding_map`` does), ``n`` points (default 10,000).
Prints each library's wall time, their ratio, and the map quality as 10-NN cluster agreement
(3-fold cross-validated accuracy of a k-NN classifier on the 2-D map).

    .venv/bin/python benchmarks/diagnostics_map.py [--n 10000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    from openTSNE import TSNE as OpenTSNE
    from sklearn.datasets import make_blobs
    from sklearn.manifold import TSNE as SkTSNE
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from corrembed.diagnostics.embedding_map import pca

    x, y = make_blobs(n_samples=args.n, n_features=256, centers=20, cluster_std=8, random_state=0)
    reduced = pca(x.astype(np.float32), 50)
    timings, maps = {}, {}
    start = time.perf_counter()
    maps["openTSNE"] = np.asarray(OpenTSNE(n_jobs=args.jobs, random_state=0).fit(reduced))
    timings["openTSNE"] = time.perf_counter() - start
    start = time.perf_counter()
    maps["sklearn"] = SkTSNE(random_state=0, init="pca", n_jobs=args.jobs).fit_transform(reduced)
    timings["sklearn"] = time.perf_counter() - start
    for name, xy in maps.items():
        quality = cross_val_score(KNeighborsClassifier(10), xy, y, cv=3).mean()
        print(f"{name:9s} n={args.n}  {timings[name]:7.1f} s  10-NN agreement {quality:.3f}")
    print(f"sklearn / openTSNE time ratio: {timings['sklearn'] / timings['openTSNE']:.1f}")


if __name__ == "__main__":
    main()

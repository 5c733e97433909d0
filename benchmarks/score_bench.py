"""Time exact all-anchors CorrEmbed against the bare float32 similarity product.

Synthetic catalogue: n items, d=2048 float32 embeddings, t=300 tag slots in 8 categories
(one value per category, so ~8 nonzeros per row), embeddings partly driven by the tags.
For each n prints: the bare product time (X[block] @ X.T over all anchor blocks, float32,
same block size as scoring), exact all-anchors CorrEmbed time with the automatic strategy
(factored Pearson when cheaper), with the blockwise strategy, and their ratios to the bare
product. Optional: the exact all-pairs Pearson / Spearman times.

    .venv/bin/python benchmarks/score_bench.py --sizes 2000 5000 10000 [--blockwise] [--allpairs]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp

from corrembed import score


def synthetic(n: int, d: int, slots: int, categories: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = np.full(categories, slots // categories)
    sizes[: slots - sizes.sum()] += 1
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # Skewed value frequencies within a category, as in real catalogues.
    cols = np.stack(
        [off + rng.zipf(1.6, n) % size for off, size in zip(offsets, sizes)], axis=1
    )
    tags = sp.csr_matrix(
        (np.ones(n * categories), cols.ravel(), np.arange(0, n * categories + 1, categories)),
        shape=(n, slots),
    )
    mixing = rng.standard_normal((slots, d)).astype(np.float32)
    x = (tags @ mixing).astype(np.float32) + 6.0 * rng.standard_normal((n, d), dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32), tags


REPEAT = 3


def timed(fn):
    """(best of REPEAT wall times in seconds, last value): the machine is shared, take the minimum."""
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def bare_product(x: np.ndarray, block: int) -> float:
    """Seconds for X[rows] @ X.T over all anchor blocks, float32 (result discarded)."""
    xn = score._normalize_dense_rows(x)

    def run():
        for s in range(0, xn.shape[0], block):
            xn[s : s + block] @ xn.T

    return timed(run)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000, 20000])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--slots", type=int, default=300)
    parser.add_argument("--categories", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per timing")
    parser.add_argument("--blockwise", action="store_true", help="also time the blockwise Pearson path")
    parser.add_argument("--spearman", action="store_true", help="also time the per-anchor Spearman (all anchors)")
    parser.add_argument("--allpairs", action="store_true", help="also time exact all-pairs Pearson and Spearman")
    args = parser.parse_args()
    global REPEAT
    REPEAT = args.repeat

    for n in args.sizes:
        x, tags = synthetic(n, args.dim, args.slots, args.categories)
        block = score._block_size(None, n)
        bare = bare_product(x, block)
        line = [f"n={n} d={args.dim} t={args.slots} block={block}", f"bare f32 product {bare:.2f}s"]
        t_auto, res = timed(lambda: score.corrembed(x, tags, anchors="all"))
        line.append(f"corrembed auto {t_auto:.2f}s ({t_auto / bare:.2f}x) = {res.mean:.6f}")
        if args.blockwise:
            t_blk, res_b = timed(lambda: score.corrembed(x, tags, anchors="all", strategy="blockwise"))
            line.append(
                f"blockwise {t_blk:.2f}s ({t_blk / bare:.2f}x), max |diff| {np.nanmax(np.abs(res_b.per_anchor - res.per_anchor)):.1e}"
            )
        if args.spearman:
            t_sp, _ = timed(lambda: score.corrembed(x, tags, anchors="all", method="spearman"))
            line.append(f"anchor spearman {t_sp:.2f}s ({t_sp / bare:.2f}x)")
        if args.allpairs:
            t_ap, _ = timed(lambda: score.allpairs_pearson(x, tags))
            t_as, _ = timed(lambda: score.allpairs_spearman(x, tags))
            line.append(f"allpairs pearson {t_ap:.2f}s, spearman (exact) {t_as:.2f}s")
        print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()

"""All-pairs Spearman: exact (every pair i < j, as packed sort keys) or on a seeded pair sample.

Ranks are of similarities rounded to TIE_DECIMALS decimals, ties averaged. The exact route packs
each pair into a uint64 sort key (8 bytes per pair: 1.6 GB at n = 20,000); above
``max_exact_pairs`` pairs are sampled, with a batch-means standard error.
"""

from __future__ import annotations

import numpy as np

from ..errors import ScoringError
from .backends import TIE_SCALE, NumpyBackend, quantize
from .correlation import pearson_from_sums, row_pearson
from .prepare import Operands, iter_blocks, upper_mask
from .ranks import row_ranks
from .results import AllPairsSpearman
from .threads import map_rows


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
        """Room for ``n_pairs`` keys (8 bytes each), allocated up front."""
        self.keys = np.empty(n_pairs, dtype=np.uint64)
        self.filled = 0
        self.levels_by_code = np.empty(0, dtype=np.int64)  # quantized tag values, discovery order
        self._sorted_levels = np.empty(0, dtype=np.int64)
        self._sorted_codes = np.empty(0, dtype=np.int64)

    def _codes(self, q_tag: np.ndarray) -> np.ndarray:
        """(k,) int64 codes of quantized tag similarities; new values get new codes."""
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
        """Append the pairs of two (k,) similarity arrays (embedding, tag) as keys."""
        q_emb = np.clip(quantize(emb), -int(TIE_SCALE), int(TIE_SCALE)) + int(TIE_SCALE)
        codes = self._codes(quantize(tag))
        stop = self.filled + emb.size
        out = self.keys[self.filled : stop]
        np.left_shift(q_emb.astype(np.uint64), np.uint64(self.CODE_BITS), out=out)
        out |= codes.astype(np.uint64)
        self.filled = stop

    def spearman(self, chunk: int = 2**22) -> float:
        """Sort the keys (in place) and return the Spearman correlation of every pair added.

        Embedding ranks from positions in the sort (tie runs averaged, found with a neighbour on
        each side of each ``chunk`` of keys), tag ranks from the counts per tag level.
        """
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
        r = pearson_from_sums(np.array([emb_ss]), np.array([tag_ss]), np.array([cross]), total, np.float64, np.float64)
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
    be = NumpyBackend()
    ranks_e = row_ranks(emb[None])
    ranks_t = row_ranks(tag[None])
    return float(row_pearson(be, ranks_e, ranks_t, None, np.float64, np.float64)[0])


def _allpairs_spearman_sampled(ops: Operands, n_samples: int, seed: int, batches: int = 20) -> AllPairsSpearman:
    """All-pairs Spearman on ``n_samples`` pairs drawn uniformly with replacement (seeded), with the
    batch-means standard error over ``batches`` contiguous batches."""
    n = ops.n
    n_pairs = n * (n - 1) // 2
    rng = np.random.default_rng(seed)
    k = rng.integers(0, n_pairs, size=n_samples)
    i, j = _pair_index_to_ij(k, n)
    emb = np.empty(n_samples)
    tag = np.empty(n_samples)
    # Pairs in row-major order: the first rows of a chunk's pairs are then near each other in
    # memory (fewer cache misses); values go back to their draw order, which the batches use.
    order = np.argsort(k)
    chunk = 8192  # (chunk, d) gathers of both sides' rows

    def fill(lo: int, hi: int) -> None:
        """Similarities of the pairs order[lo:hi], in chunks."""
        for start in range(lo, hi, chunk):
            sel = order[start : min(hi, start + chunk)]
            a, b = i[sel], j[sel]
            emb[sel] = np.einsum("ij,ij->i", ops.x[a], ops.x[b])
            tag[sel] = np.asarray(ops.tags[a].multiply(ops.tags[b]).sum(axis=1)).ravel()

    map_rows(fill, 0, n_samples, min_rows=chunk)
    value = _spearman_of_values(emb, tag)
    # Pairs are i.i.d. draws, so contiguous batches are independent estimates of the same value.
    per_batch = [_spearman_of_values(e, t) for e, t in zip(np.array_split(emb, batches), np.array_split(tag, batches))]
    se = float(np.std(per_batch, ddof=1) / np.sqrt(batches))
    return AllPairsSpearman(value=value, method="sampled", n_pairs=n_samples, standard_error=se)


def allpairs_spearman_of(
    ops: Operands, block: int, max_exact_pairs: int, sample_pairs: int, seed: int
) -> AllPairsSpearman:
    """All-pairs Spearman: exact over similarity blocks of ``block`` rows up to ``max_exact_pairs``
    pairs, else :func:`_allpairs_spearman_sampled`."""
    n_pairs = ops.n * (ops.n - 1) // 2
    if n_pairs > max_exact_pairs:
        return _allpairs_spearman_sampled(ops, sample_pairs, seed)
    be = ops.backend
    collector = _PairRankCollector(n_pairs)
    for rows in iter_blocks(np.arange(ops.n), block):
        start = int(rows[0])
        emb, tag = ops.similarity_block(rows, col_start=start)
        mask = upper_mask(rows, start, emb.shape[1])
        collector.add(be.get(emb)[mask], be.get(tag)[mask])
        del emb, tag
    return AllPairsSpearman(value=collector.spearman(), method="exact", n_pairs=n_pairs, standard_error=0.0)

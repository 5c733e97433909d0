"""Splitting a catalogue's images into shards: contiguous row ranges embedded by separate jobs.

Shard ``k`` of ``n_shards`` embeds rows ``[start, stop)`` of the catalogue's images.parquet;
the ranges are contiguous, cover every row once and are in row order, so concatenating the
shards' outputs in index order gives the rows of an unsharded run.

Boundaries fall on multiples of :data:`SHARD_GRANULE` rows once shards hold at least
``4 * SHARD_GRANULE`` rows: CPU convolution kernels give results that differ in the last bits
with the composition of a batch, so shard boundaries that are also batch boundaries (for batch
sizes dividing the granule: 8, 16, ..., 256) make a sharded fp32 CPU run bit-identical to an
unsharded one.
"""

from __future__ import annotations

import re

#: Boundaries of large shards are multiples of this many rows (see the module docstring).
SHARD_GRANULE = 256

_SHARD_ID = re.compile(r"^(\d{5})-of-(\d{5})$")


def shard_bounds(n_rows: int, n_shards: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` row range of every shard, in order; a shard may be empty only
    when there are fewer rows than shards.

    >>> shard_bounds(10, 3)
    [(0, 3), (3, 7), (7, 10)]
    """
    if n_shards < 1 or n_rows < 0:
        raise ValueError(f"need n_shards >= 1 and n_rows >= 0, got {n_shards}, {n_rows}")
    granule = SHARD_GRANULE if n_rows >= 4 * SHARD_GRANULE * n_shards else 1
    cuts = [0]
    for k in range(1, n_shards):
        # Nearest multiple of the granule to the balanced cut k * n / N (integer arithmetic).
        cut = ((k * n_rows + (n_shards * granule) // 2) // (n_shards * granule)) * granule
        cuts.append(min(max(cut, cuts[-1]), n_rows))
    cuts.append(n_rows)
    return list(zip(cuts[:-1], cuts[1:]))


def shard_id(index: int, count: int) -> str:
    """``"00001-of-00004"``: the name of shard ``index`` (0-based) of ``count`` in file paths."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} out of range for {count} shard(s)")
    return f"{index:05d}-of-{count:05d}"


def parse_shard_id(text: str) -> tuple[int, int]:
    """``"00001-of-00004"`` -> ``(1, 4)``; ValueError for anything else."""
    match = _SHARD_ID.match(text)
    if not match:
        raise ValueError(f"not a shard id (NNNNN-of-NNNNN): {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    shard_id(index, count)  # range check
    return index, count

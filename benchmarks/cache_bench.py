"""Cost of the embedding cache's integrity checks (a script, not a timed test).

Two measurements, each a ratio against a baseline run in the same invocation, alternating the
variants so that load on a shared machine hits both alike:

- **cache read**: a cache of ``--entries`` (default 10^5) embeddings of ``--dim`` floats in
  4,096-row segments; open it and fetch every entry in catalogue order, with verification
  (``EmbeddingCache(..., verify=True)``: each segment's bytes read once more and CRC-32 checked)
  and without (``verify=False``, the read as it was before checksums). Wall time (median and best-of) and the
  process's CPU time (steadier on a loaded machine).
- **embed stage**: ``corrembed.embed.embed_images`` of ``--images`` real photos with a random-init
  model into a fresh cache, with checksummed segment names (the CRC-32 of each segment's bytes)
  and with the old name (no CRC); plus the CRC time itself, summed over the segments written,
  as a fraction of the embedding time.

Every timing is the median of ``--repeats`` (default 5; ``--embed-repeats``, default 4, for the
embed stage), the variants' order alternating between repeats. Usage::

    .venv/bin/python benchmarks/cache_bench.py [--entries 100000] [--dim 512] [--images 192]
        [--repeats 5] [--embed-repeats 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FASHION = REPO.parent / "shared" / "data" / "fashion-product-224" / "images"
sys.path.insert(0, str(REPO / "workflow"))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from corrembed.embed import cache as embedding_cache  # noqa: E402
from corrembed.embed import integrity as cache_integrity  # noqa: E402
from corrembed.embed.cache import EmbeddingCache  # noqa: E402
from corrembed.storage import file_sha256  # noqa: E402

IDENTITY = {"format": "bench", "arch": "none", "dim": 0}


def build_cache(root: Path, entries: int, dim: int) -> list[str]:
    """A cache of ``entries`` random embeddings (4,096-row segments); their hashes in order."""
    rng = np.random.default_rng(0)
    shas = [f"{k:064x}" for k in range(entries)]
    cache = EmbeddingCache(root, IDENTITY)
    with cache.writer(dim, segment_rows=4096) as writer:
        for start in range(0, entries, 4096):
            part = shas[start : start + 4096]
            writer.add(part, rng.standard_normal((len(part), dim), dtype=np.float32))
    return shas


def time_read(root: Path, shas: list[str], verify: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of opening the cache and fetching every entry."""
    started, cpu = time.perf_counter(), time.process_time()
    cache = EmbeddingCache(root, IDENTITY, verify=verify)
    for start in range(0, len(shas), 4096):  # as the embed stage reads: 4,096 rows per step
        cache.fetch(shas[start : start + 4096])
    return time.perf_counter() - started, time.process_time() - cpu


def read_case(entries: int, dim: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        shas = build_cache(root, entries, dim)
        size = sum(p.stat().st_size for p in root.rglob("seg-*.parquet"))
        time_read(root, shas, True)  # warm the page cache
        times = {True: [], False: []}
        for repeat in range(repeats):
            for verify in (False, True) if repeat % 2 == 0 else (True, False):  # alternate who goes first
                times[verify].append(time_read(root, shas, verify))
    wall = {key: [t[0] for t in value] for key, value in times.items()}
    cpu = {key: [t[1] for t in value] for key, value in times.items()}
    base, checked = statistics.median(wall[False]), statistics.median(wall[True])
    return {
        "bytes": size,
        "baseline_s": base,
        "verified_s": checked,
        "ratio": checked / base,
        "best_ratio": min(wall[True]) / min(wall[False]),
        "cpu_ratio": statistics.median(cpu[True]) / statistics.median(cpu[False]),
    }


def crc_free_name(data, rows: int) -> str:
    """The segment name as written before checksums (no CRC computed)."""
    return f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"


def embed_case(n_images: int, arch: str, repeats: int) -> dict:
    from corrembed.embed import embed_images

    paths = sorted(FASHION.glob("*.jpg"))[:n_images]
    if len(paths) < n_images:
        raise SystemExit(f"need {n_images} images in {FASHION}")
    images = pl.DataFrame(
        {
            "item_id": [p.stem for p in paths],
            "image": [str(p) for p in paths],
            "sha256": [file_sha256(p) for p in paths],
        }
    )
    spec = {"arch": arch, "weights": None}
    original = cache_integrity.segment_name
    crc_seconds = []

    def timed_name(data, rows):
        started = time.perf_counter()
        zlib.crc32(data)
        crc_seconds.append(time.perf_counter() - started)
        return original(data, rows)

    times = {"checksum": [], "baseline": []}
    embed_seconds = []
    for repeat in range(repeats):
        for variant in ("baseline", "checksum") if repeat % 2 == 0 else ("checksum", "baseline"):
            embedding_cache.segment_name = timed_name if variant == "checksum" else crc_free_name
            with tempfile.TemporaryDirectory() as work:
                started = time.perf_counter()
                meta = embed_images(
                    images,
                    spec,
                    Path(work) / "out",
                    model_name="bench",
                    torch_home=None,
                    device="cpu",
                    batch_size=32,
                    cache_dir=Path(work) / "cache",
                    progress=lambda line: None,
                )
                times[variant].append(time.perf_counter() - started)
                if variant == "checksum":
                    embed_seconds.append(meta["seconds"])
    embedding_cache.segment_name = original
    base, checked = statistics.median(times["baseline"]), statistics.median(times["checksum"])
    best = min(times["checksum"]) / min(times["baseline"])
    crc_per_run = sum(crc_seconds) / repeats
    return {
        "baseline_s": base,
        "checksum_s": checked,
        "ratio": checked / base,
        "best_ratio": best,
        "crc_s_per_run": crc_per_run,
        "crc_fraction": crc_per_run / statistics.median(embed_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--embed-repeats", type=int, default=4)
    parser.add_argument("--cases", default="read,embed", help="comma-separated: read, embed")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    cases = args.cases.split(",")
    if "read" in cases:
        report_read(read_case(args.entries, args.dim, args.repeats), args)
    if "embed" in cases:
        report_embed(embed_case(args.images, args.arch, args.embed_repeats), args)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def report_read(read: dict, args) -> None:
    print(
        f"cache read, {args.entries} entries x {args.dim} float32 ({read['bytes'] / 2**20:.0f} MiB of segments): "
        f"without verification {read['baseline_s']:.3f} s, with {read['verified_s']:.3f} s, "
        f"ratio {read['ratio']:.3f} (medians; best-of ratio {read['best_ratio']:.3f}; "
        f"CPU-time ratio {read['cpu_ratio']:.3f})"
    )


def report_embed(embed: dict, args) -> None:
    print(
        f"embed stage, {args.images} images, {args.arch} (random init, CPU): without checksum "
        f"{embed['baseline_s']:.2f} s, with {embed['checksum_s']:.2f} s, ratio {embed['ratio']:.3f} "
        f"(best-of {embed['best_ratio']:.3f}); "
        f"CRC-32 itself {embed['crc_s_per_run'] * 1e3:.3f} ms per run = {embed['crc_fraction'] * 100:.4f} % "
        "of the embedding time"
    )


if __name__ == "__main__":
    main()

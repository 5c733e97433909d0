"""Scale benchmark (issue 13): the workflow's stages through the library on a synthetic catalogue.

A seeded synthetic catalogue of N items is generated: one small JPEG per item (``--image-size``
pixels square, random colour blocks and noise, each file distinct), a wide manifest CSV with 8
tag categories (skewed value frequencies, a multi-valued one). Then each stage runs as the
workflow's rule script runs it, each in its own subprocess, which reports its wall time and its
peak resident memory (``ru_maxrss``) and the resident memory when it started (the interpreter
and imports), so "above start" is what the stage itself needed:

- ``ingest``: :func:`corrembed.ingest.ingest_catalogue` (manifest reading, every image checked);
- ``embed``: :func:`corrembed.embed.embed_images` with a tiny random-init torchvision model
  (``--embed-arch``, ``--embed-size`` pixels) on the first ``--embed-n`` images only (a CPU
  forward pass per image: the full N would take hours here; the table says how many);
- ``synth-embeddings``: the full N embeddings (d = ``--dim`` float32, partly driven by the tags)
  written in the workflow's embeddings format (:class:`EmbeddingShardWriter`), standing in for
  the embed stage at full N;
- ``tags``: the tags rule (catalogue read, binary weights, sparse tag vectors saved);
- ``score``: the score rule (embeddings read, item embeddings, :func:`score_report` with the
  workflow's default scoring settings, embeddings normalized in place, files written).

``--score-sizes`` adds score-only runs at larger n on synthetic embeddings (Parquet, the workflow
format) and synthetic tag vectors (``save_tag_vectors``, 8 categories, ``--slots`` slots), as the
score rule reads them; no images (n = 10^6 images do not fit this machine's time budget).

Usage::

    .venv/bin/python benchmarks/scale_bench.py [--n 20000] [--embed-n 1000] [--score-sizes 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

CATEGORIES = 8
STAGES = ("ingest", "embed", "synth-embeddings", "tags", "score")


# --------------------------------------------------------------------------------------------
# The synthetic catalogue
# --------------------------------------------------------------------------------------------


def _jpeg_bytes(rng: np.random.Generator, size: int) -> bytes:
    """One small distinct RGB JPEG: 4 x 4 random colour blocks upscaled, plus noise."""
    import io

    from PIL import Image

    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    pixels = np.repeat(np.repeat(blocks, size // 4 + 1, axis=0), size // 4 + 1, axis=1)[:size, :size]
    pixels = np.clip(pixels.astype(np.int16) + rng.integers(-12, 13, size=pixels.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=80)
    return out.getvalue()


def tag_columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Wide tag columns for n items: 8 categories of 4-100 values, zipf-skewed frequencies; the
    last category holds 1-2 values joined by "|" (multi-valued)."""
    sizes = [4, 8, 12, 20, 30, 50, 76, 100]
    columns = {}
    for c, size in enumerate(sizes):
        values = (rng.zipf(1.6, n) - 1) % size
        text = np.char.add(f"c{c}_v", values.astype(str))
        if c == CATEGORIES - 1:
            second = np.char.add(f"c{c}_v", ((values + 1 + rng.integers(0, 5, n)) % size).astype(str))
            text = np.where(rng.random(n) < 0.3, np.char.add(np.char.add(text, "|"), second), text)
        columns[f"cat{c}"] = text
    return columns


def make_catalogue(folder: Path, n: int, image_size: int, seed: int = 0) -> float:
    """Write ``images/NNNNNNN.jpg`` and ``manifest.csv`` for n items; returns seconds taken."""
    import polars as pl

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    ids = [f"{i:07d}" for i in range(n)]
    for item in ids:
        (images / f"{item}.jpg").write_bytes(_jpeg_bytes(rng, image_size))
    manifest = pl.DataFrame({"item_id": ids, "image": [f"images/{i}.jpg" for i in ids], **tag_columns(n, rng)})
    manifest.write_csv(folder / "manifest.csv")
    return time.perf_counter() - start


def synthetic_tag_vectors(n: int, slots: int, rng: np.random.Generator):
    """TagVectors for n items: 8 categories over ``slots`` slots, one value each (zipf-skewed)."""
    import scipy.sparse as sp

    from corrembed.tags import TagVectors

    sizes = np.full(CATEGORIES, slots // CATEGORIES)
    sizes[: slots - sizes.sum()] += 1
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cols = np.stack([off + (rng.zipf(1.6, n) - 1) % size for off, size in zip(offsets, sizes)], axis=1)
    matrix = sp.csr_matrix(
        (np.ones(n * CATEGORIES), cols.ravel(), np.arange(0, n * CATEGORIES + 1, CATEGORIES)), shape=(n, slots)
    )
    slot_category = np.repeat([f"cat{c}" for c in range(CATEGORIES)], sizes)
    slot_value = np.array([f"v{s}" for s in range(slots)])
    item_ids = np.array([f"{i:07d}" for i in range(n)])
    return TagVectors(matrix=matrix, item_ids=item_ids, slot_category=slot_category, slot_value=slot_value)


def write_synthetic_embeddings(path: Path, item_ids, images, tag_matrix, dim: int, seed: int, chunk: int = 65536):
    """Embeddings partly driven by the tags, written chunk by chunk in the workflow's format."""
    from corrembed.embed.store import EmbeddingShardWriter

    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((tag_matrix.shape[1], dim)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with EmbeddingShardWriter(path, dim=dim) as writer:
        for start in range(0, len(item_ids), chunk):
            stop = min(len(item_ids), start + chunk)
            x = np.asarray(tag_matrix[start:stop] @ mixing, dtype=np.float32)
            x += 6.0 * rng.standard_normal(x.shape, dtype=np.float32)
            writer.write(item_ids[start:stop], images[start:stop], x)


# --------------------------------------------------------------------------------------------
# Stages (subprocess side)
# --------------------------------------------------------------------------------------------


def _status_mib(key: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM the peak), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - not Linux


def _rss_now_mib() -> float:
    return _status_mib("VmRSS")


def _reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux: writing 5 to clear_refs), to measure one call's peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # pragma: no cover - not Linux or not allowed: VmHWM stays the process peak
        pass


def _read_catalogue(images_path, tags_path):
    try:
        from corrembed.ingest.catalogue import read_catalogue
    except ImportError:  # older layout
        from corrembed.ingest import read_catalogue
    return read_catalogue(images_path, tags_path)


def run_stage(stage: str, work: Path, args) -> dict:
    """Run one stage in this process; returns what it measured."""
    import polars as pl

    out = work / "results"
    info: dict = {}
    if stage == "ingest":
        from corrembed.ingest import ingest_catalogue

        report = ingest_catalogue(
            work / "manifest.csv",
            images_out=out / "catalogue/images.parquet",
            tags_out=out / "catalogue/tags.parquet",
            rejects_out=out / "catalogue/rejects.csv",
            threads=args.threads,
        )
        info["items"] = getattr(report, "n_items", None) or pl.read_parquet(out / "catalogue/images.parquet").height
    elif stage == "embed":
        from corrembed.embed import embed_images

        images = pl.read_parquet(out / "catalogue/images.parquet").head(args.embed_n)
        spec = {
            "arch": args.embed_arch,
            "weights": None,
            "transforms": {"resize_size": args.embed_size, "crop_size": args.embed_size},
        }
        meta = embed_images(
            images,
            spec,
            out / "embeddings/tiny",
            model_name="tiny",
            torch_home=None,
            device="cpu",
            batch_size=64,
            num_workers=0,
        )
        info["items"] = images.height
        info["images_per_second"] = meta.get("images_per_second")
    elif stage == "synth-embeddings":
        from corrembed.tags import load_tag_vectors

        images = pl.read_parquet(out / "catalogue/images.parquet", columns=["item_id", "image"])
        vectors = load_tag_vectors(out / "tags/binary/vectors.npz")
        row = {item: i for i, item in enumerate(vectors.item_ids.tolist())}
        index = np.array([row[i] for i in images["item_id"].to_list()])
        write_synthetic_embeddings(
            out / "embeddings/synthetic/part-00000.parquet",
            images["item_id"].to_list(),
            images["image"].to_list(),
            vectors.matrix[index],
            args.dim,
            seed=1,
        )
        info["items"] = images.height
    elif stage == "tags":
        from corrembed.tags import category_table, save_tag_vectors, tag_vectors

        images, tags = _read_catalogue(out / "catalogue/images.parquet", out / "catalogue/tags.parquet")
        item_ids = images["item_id"].unique(maintain_order=True).to_list()
        table = category_table(tags, item_ids, "binary")
        vectors = tag_vectors(tags, item_ids, dict(zip(table["category"], table["weight"])))
        (out / "tags/binary").mkdir(parents=True, exist_ok=True)
        save_tag_vectors(out / "tags/binary/vectors.npz", vectors)
        info["items"], info["slots"], info["nnz"] = *vectors.matrix.shape, vectors.matrix.nnz
    elif stage == "score":
        info.update(score_stage(out / "embeddings/synthetic/part-00000.parquet", out / "tags/binary/vectors.npz", out))
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return info


def score_stage(shard: Path, vectors_path: Path, out: Path) -> dict:
    """What workflow/scripts/score.py does, with the workflow's default scoring settings."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from score_bench import workflow_default_options

    from corrembed.embed.items import usable_item_embeddings
    from corrembed.embed.store import read_embeddings
    from corrembed.score import score_report
    from corrembed.score.files import write_score
    from corrembed.tags import load_tag_vectors

    vectors = load_tag_vectors(vectors_path)
    embeddings = read_embeddings([shard])
    usable = usable_item_embeddings(embeddings, vectors.item_ids, "first")
    del embeddings
    import pyarrow

    pyarrow.default_memory_pool().release_unused()  # as the score script does
    options = workflow_default_options().with_overrides(normalize_in_place=True)
    matrix = vectors.matrix[usable.keep]
    inputs_mib = (usable.vectors.nbytes + matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 2**20
    _reset_peak_rss()
    before = _rss_now_mib()
    start = time.perf_counter()
    report = score_report(usable.vectors, matrix, options)
    report_seconds = time.perf_counter() - start
    report_peak = _status_mib("VmHWM")
    (out / "scores").mkdir(parents=True, exist_ok=True)
    write_score(
        report,
        out / "scores/score.json",
        out / "scores/per_anchor.parquet",
        item_ids=vectors.item_ids[usable.keep],
        extra={"model": "synthetic", "weighting": "binary"},
    )
    return {
        "items": report.n_items,
        "score_report_s": report_seconds,
        "inputs_mib": inputs_mib,
        "report_above_inputs_mib": report_peak - before,
        "corrembed": report.corrembed,
        "allpairs_spearman": report.allpairs_spearman,
        "allpairs_spearman_se": report.allpairs_spearman_se,
        "allpairs_spearman_method": report.allpairs_spearman_method,
    }


def _child(stage: str, work: Path, args) -> None:
    start_rss = _rss_now_mib()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    info = run_stage(stage, work, args)
    seconds = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(
        json.dumps({"stage": stage, "seconds": seconds, "cpu_s": cpu, "peak_mib": peak, "start_mib": start_rss, **info})
    )


def _run_child(stage: str, work: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--stage", stage, "--work", str(work)] + _pass_through(args)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pass_through(args) -> list[str]:
    return [
        "--dim", str(args.dim), "--slots", str(args.slots), "--embed-n", str(args.embed_n),
        "--embed-arch", args.embed_arch, "--embed-size", str(args.embed_size), "--threads", str(args.threads),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _row(n, r: dict) -> str:
    extra = ""
    if r["stage"] == "score":
        extra = (
            f"score_report {r['score_report_s']:.1f} s, {r['report_above_inputs_mib']:.0f} MiB above its inputs "
            f"({r['inputs_mib']:.0f} MiB); CorrEmbed {r['corrembed']:.4f}; all-pairs Spearman "
            f"{r['allpairs_spearman']:.4f} ({r['allpairs_spearman_method']}, SE {r['allpairs_spearman_se']:.1e})"
        )
    elif r["stage"] == "embed":
        extra = f"{r['items']} images (subset), {r.get('images_per_second') or float('nan'):.0f} img/s"
    elif r["stage"] == "tags":
        extra = f"{r['slots']} slots, {r['nnz']} non-zeros"
    elif r["stage"] == "ingest":
        extra = f"{r['items']} items"
    return (
        f"| {n} | {r['stage']} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {r['peak_mib']:.0f} "
        f"| {r['peak_mib'] - r['start_mib']:.0f} | {extra} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="catalogue items (images) for the full pipeline")
    parser.add_argument("--embed-n", type=int, default=1000, help="images embedded by the tiny model")
    parser.add_argument("--embed-arch", default="resnet18")
    parser.add_argument("--embed-size", type=int, default=64, help="model input side (resize = crop)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the generated JPEGs")
    parser.add_argument("--dim", type=int, default=768, help="synthetic embedding dimension")
    parser.add_argument("--slots", type=int, default=300, help="tag slots of the score-only runs")
    parser.add_argument("--score-sizes", type=int, nargs="*", default=[100000], help="score-only runs at these n")
    parser.add_argument("--threads", type=int, default=2, help="ingest image-check threads")
    parser.add_argument("--work", help="working folder (default: a temporary one)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # subprocess side
    args = parser.parse_args()

    if args.stage:
        _child(args.stage, Path(args.work), args)
        return

    print(f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; d={args.dim}\n")
    print("| n | stage | wall s | CPU s | peak RSS MiB | above start MiB | notes |")
    print("|---|---|---|---|---|---|---|")
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp) / "catalogue"
        if args.n:
            seconds = make_catalogue(work, args.n, args.image_size)
            print(
                f"| {args.n} | generate catalogue | {seconds:.1f} | - | - | - | {args.image_size} px JPEGs |",
                flush=True,
            )
            for stage in ("ingest", "tags", "embed", "synth-embeddings", "score"):
                if stage == "embed" and args.embed_n <= 0:
                    continue
                print(_row(args.n, _run_child(stage, work, args)), flush=True)
        for n in args.score_sizes:
            only = Path(tmp) / f"score-{n}"
            start = time.perf_counter()
            vectors = synthetic_tag_vectors(n, args.slots, np.random.default_rng(n))
            from corrembed.tags import save_tag_vectors

            (only / "results/tags/binary").mkdir(parents=True, exist_ok=True)
            save_tag_vectors(only / "results/tags/binary/vectors.npz", vectors)
            ids = vectors.item_ids.tolist()
            write_synthetic_embeddings(
                only / "results/embeddings/synthetic/part-00000.parquet", ids, [f"images/{i}.jpg" for i in ids],
                vectors.matrix, args.dim, seed=2,
            )  # fmt: skip
            del vectors, ids
            print(f"| {n} | generate (score only) | {time.perf_counter() - start:.1f} | - | - | - | synthetic |")
            print(_row(n, _run_child("score", only, args)), flush=True)


if __name__ == "__main__":
    main()

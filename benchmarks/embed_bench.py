"""Embedding extraction benchmark (a script, not a timed test).

For each model (random init: speed does not depend on the weights) and each image set, at a
fixed batch size:

- **forward-only**: the bound, ``FeatureExtractor`` on pre-made float tensors already on the
  device (no decoding, no copies), images/s;
- **end-to-end**: ``corrembed.embed.embed_images`` on the real files (DataLoader workers, cache,
  shard writer, merge), images/s over the extraction loop (``meta["images_per_second"]``),
  and wall-clock seconds of the whole call (model build and output writing included);
- **decode-only**: the same DataLoader (decode, resize, crop, collate) with no model, images/s;
- **peak RSS** of the process running the case (each case runs in its own subprocess).

Image sets: real JPEGs from ``../shared/data/fashion-product-224/images`` (224 x 224), and the
same images upscaled to 800 x 1000 (JPEG quality 90) in a temporary folder, like product photos
(``--image-sets`` picks them).

Decoders (``--decoders``, comma-separated): each case runs once per decoder, so ``--decoders
pil,pil-reduced`` compares the full decode with the reduced-scale JPEG decode in one invocation;
the table then gives each decoder's decode-only and end-to-end speed-up over the first decoder of
the same model and image set. ``NAME@REV`` runs decoder NAME with the library as it was at git
revision REV (a temporary worktree of this repository, first on ``PYTHONPATH``): the baseline a
change to the input pipeline is measured against, in the same invocation (``--decoders
pil@HEAD~3,pil,pil-reduced@HEAD~3,pil-reduced``). The machine's load average (1 minute)
is printed before and after: other processes on a shared machine slow every measurement, which is
why the figures that matter are ratios measured in the same invocation.

Then the incremental case: a 3,000-image catalogue (the whole real set) embedded once, then
re-run after adding 1 % (30) new images (the upscaled copies of 30 other real photos).

Every timing is the best of ``--repeats`` (default 3). Usage::

    .venv/bin/python benchmarks/embed_bench.py [--images 64] [--batch-size 32] [--workers 1]
        [--archs resnet18,resnet50] [--image-sets 800x1000] [--decoders pil,pil-reduced]
        [--incremental-arch ""]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FASHION = REPO.parent / "shared" / "data" / "fashion-product-224" / "images"


def make_upscaled(paths: list[Path], folder: Path, size=(800, 1000)) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in paths:
        target = folder / path.name
        if not target.exists():
            Image.open(path).convert("RGB").resize(size, Image.BICUBIC).save(target, quality=90)
        out.append(target)
    return out


def worktree_at(revision: str, folder: Path) -> Path:
    """A detached git worktree of this repository at ``revision`` under ``folder`` (made once;
    :func:`remove_worktrees` takes it away), whose ``workflow/`` holds the library as it was then."""
    path = folder / f"rev-{revision.replace('/', '_').replace('~', '-').replace('^', '-')}"
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--quiet", "--detach", str(path), revision], check=True
        )
    return path


def remove_worktrees(folder: Path) -> None:
    """Remove the worktrees :func:`worktree_at` made under ``folder``."""
    for path in folder.glob("rev-*"):
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)


def images_table(paths):
    import polars as pl

    from corrembed.storage import file_sha256

    return pl.DataFrame(
        {
            "item_id": [p.stem for p in paths],
            "image": [str(p) for p in paths],
            "sha256": [file_sha256(p) for p in paths],
        }
    )


def run_case(
    arch: str,
    image_dir: str,
    n_images: int,
    batch_size: int,
    workers: int,
    repeats: int,
    device: str = "cpu",
    precision: str = "fp32",
    channels_last: bool = False,
    decoder: str = "pil",
) -> dict:
    """One (model, image set) case in this process; prints nothing, returns figures.
    On CUDA the forward-only bound runs under the same autocast / memory format."""
    import torch
    from torch.utils.data import DataLoader

    from corrembed.embed import PRECISIONS, embed_images, resolve_device
    from corrembed.images.batches import ImageFileDataset, Preprocess, collate_images
    from corrembed.models import FeatureExtractor, build_model, build_transform, parse_model_spec

    spec = parse_model_spec({"arch": arch, "weights": None}, model_name=arch)
    paths = sorted(Path(image_dir).glob("*.jpg"))[:n_images]
    table = images_table(paths)
    transform, _ = build_transform(spec)
    preprocess = Preprocess.from_transform(transform)

    target = resolve_device(device)
    sync = torch.cuda.synchronize if target.type == "cuda" else (lambda: None)
    extractor = FeatureExtractor(build_model(spec), "penultimate").eval().to(target)
    x = torch.randn(batch_size, 3, preprocess.crop_size, preprocess.crop_size, device=target)
    if channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = PRECISIONS[precision]
    n_batches = max(n_images // batch_size, 1)
    autocast = torch.autocast(target.type, dtype=dtype, enabled=dtype is not None)
    with torch.inference_mode(), autocast:
        extractor(x)  # warm-up
    sync()
    forward, decode, end_to_end, wall = [], [], [], []
    # The three measurements are interleaved, so that load from other processes hits them alike.
    for _ in range(repeats):
        with torch.inference_mode(), autocast:
            started = time.perf_counter()
            for _ in range(n_batches):
                extractor(x).float().cpu()  # the copy back is part of any real extraction
            sync()
            forward.append(n_batches * batch_size / (time.perf_counter() - started))

        loader = DataLoader(
            ImageFileDataset([str(p) for p in paths], preprocess, decoder=decoder),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collate_images,
            prefetch_factor=4 if workers else None,
        )
        # Steady state: timed from the first batch on (the worker's start-up happens once per job).
        batches = iter(loader)
        next(batches)
        started = time.perf_counter()
        count = sum(batch["size"] for batch in batches)
        decode.append(count / (time.perf_counter() - started))

        with tempfile.TemporaryDirectory() as work:
            started = time.perf_counter()
            meta = embed_images(
                table,
                spec,
                Path(work) / "out",
                model_name=arch,
                torch_home=None,
                batch_size=batch_size,
                num_workers=workers,
                device=device,
                precision=precision,
                channels_last=channels_last,
                decoder=decoder,
                cache_dir=Path(work) / "cache",
                progress=lambda line: None,
            )
            wall.append(time.perf_counter() - started)
            end_to_end.append(meta["images_per_second"])
    return {
        "arch": arch,
        "images": image_dir,
        "n_images": len(paths),
        "batch_size": batch_size,
        "workers": workers,
        "torch_threads": torch.get_num_threads(),
        "forward_ips": max(forward),
        "end_to_end_ips": max(end_to_end),
        "end_to_end_wall_s": min(wall),
        "decode_ips": max(decode),
        "device": meta["device"],
        "device_name": meta["device_name"],
        "precision": precision,
        "channels_last": channels_last,
        "decoder": decoder,
        "cuda_peak_mib": (torch.cuda.max_memory_allocated(target) / 2**20) if target.type == "cuda" else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_incremental(arch: str, work: Path, batch_size: int, workers: int, repeats: int) -> dict:
    """Full run on the 3,000 real images, then re-runs after adding 30 new ones (each re-run
    starts from the cache state after the full run)."""
    import shutil

    import polars as pl

    from corrembed.embed import embed_images

    all_paths = sorted(FASHION.glob("*.jpg"))
    base = images_table(all_paths[:3000])
    extra_sources = make_upscaled(all_paths[:30], work / "new", size=(240, 300))
    added = images_table(extra_sources).with_columns(pl.lit("new-").add(pl.col("item_id")).alias("item_id"))
    spec = {"arch": arch, "weights": None}
    kwargs = dict(
        model_name=arch,
        torch_home=None,
        batch_size=batch_size,
        num_workers=workers,
        device="cpu",
        progress=lambda line: None,
    )
    started = time.perf_counter()
    full = embed_images(base, spec, work / "out", cache_dir=work / "cache", **kwargs)
    full_s = time.perf_counter() - started
    shutil.copytree(work / "cache", work / "cache_after_full")
    reruns, unchanged = [], []
    for _ in range(repeats):
        shutil.rmtree(work / "cache")
        shutil.copytree(work / "cache_after_full", work / "cache")
        started = time.perf_counter()
        meta = embed_images(pl.concat([base, added]), spec, work / "out", cache_dir=work / "cache", **kwargs)
        reruns.append(time.perf_counter() - started)
        assert meta["n_embedded"] == 30, meta["n_embedded"]
        started = time.perf_counter()
        meta = embed_images(pl.concat([base, added]), spec, work / "out", cache_dir=work / "cache", **kwargs)
        unchanged.append(time.perf_counter() - started)
        assert meta["n_embedded"] == 0
    return {
        "arch": arch,
        "n_images": 3000,
        "n_added": 30,
        "full_run_s": full_s,
        "full_run_ips": full["images_per_second"],
        "rerun_plus_1pct_s": min(reruns),
        "rerun_unchanged_s": min(unchanged),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archs", default="resnet18,resnet50,vit_b_16")
    parser.add_argument("--incremental-arch", default="resnet18")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--decoder", default="pil", choices=["pil", "pil-reduced", "torchvision"])
    parser.add_argument("--decoders", default=None, help="comma-separated decoders to compare (default: --decoder)")
    parser.add_argument("--image-sets", default="224x224,800x1000", help="comma-separated: 224x224, 800x1000")
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)  # internal: arch image_dir
    args = parser.parse_args()
    if args.case:
        print(
            json.dumps(
                run_case(
                    args.case[0],
                    args.case[1],
                    args.images,
                    args.batch_size,
                    args.workers,
                    args.repeats,
                    args.device,
                    args.precision,
                    args.channels_last,
                    args.decoder,
                )
            )
        )
        return
    rows = []
    decoders = (args.decoders or args.decoder).split(",")
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="embed-bench-"))
        stack.callback(remove_worktrees, Path(tmp))  # runs first: before the folder goes
        paths = sorted(FASHION.glob("*.jpg"))[: args.images]
        large = make_upscaled(paths, Path(tmp) / "800x1000")
        image_sets = {"224x224": FASHION, "800x1000": large[0].parent}
        for arch in args.archs.split(","):
            for set_name in args.image_sets.split(","):
                image_dir = image_sets[set_name]
                for label in decoders:
                    decoder, _, revision = label.partition("@")
                    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
                    if revision:
                        env["PYTHONPATH"] = str(worktree_at(revision, Path(tmp)) / "workflow")
                    command = [
                        sys.executable,
                        __file__,
                        "--case",
                        arch,
                        str(image_dir),
                        "--images",
                        str(args.images),
                        "--batch-size",
                        str(args.batch_size),
                        "--workers",
                        str(args.workers),
                        "--repeats",
                        str(args.repeats),
                        "--device",
                        args.device,
                        "--precision",
                        args.precision,
                        "--decoder",
                        decoder,
                        *(["--channels-last"] if args.channels_last else []),
                    ]
                    row = json.loads(
                        subprocess.run(
                            command,
                            check=True,
                            capture_output=True,
                            text=True,
                            env=env,
                        ).stdout
                    )
                    row["decoder"] = label
                    row["images"] = set_name
                    row["ratio"] = row["end_to_end_ips"] / row["forward_ips"]
                    base = next(r for r in rows + [row] if r["arch"] == arch and r["images"] == set_name)
                    row["decode_speedup"] = row["decode_ips"] / base["decode_ips"]
                    row["end_to_end_speedup"] = row["end_to_end_ips"] / base["end_to_end_ips"]
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    rows.append(row)
        load_after = os.getloadavg()[0]
        print(
            f"device: {rows[0]['device_name']} ({rows[0]['device']}), {rows[0]['precision']}, batch "
            f"{args.batch_size}, {args.workers} DataLoader worker(s), {rows[0]['torch_threads']} torch threads, "
            f"{os.cpu_count()} CPUs; load average (1 min) {load_before:.1f} before, {load_after:.1f} after"
        )
        print(
            "| model | images | decoder | forward-only img/s | end-to-end img/s | end-to-end / forward-only | "
            "decode-only img/s | decode-only speed-up | end-to-end speed-up | end-to-end wall s | peak RSS MiB |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['arch']} | {r['images']} | {r['decoder']} | {r['forward_ips']:.1f} | "
                f"{r['end_to_end_ips']:.1f} | {100 * r['ratio']:.0f} % | {r['decode_ips']:.0f} | "
                f"{r['decode_speedup']:.2f}x | {r['end_to_end_speedup']:.2f}x | {r['end_to_end_wall_s']:.1f} | "
                f"{r['peak_rss_mib']:.0f} |"
            )
        if args.incremental_arch:
            inc = run_incremental(args.incremental_arch, Path(tmp) / "inc", args.batch_size, args.workers, args.repeats)
            print(json.dumps(inc), file=sys.stderr)
            print(
                f"\nIncremental ({inc['arch']}, {inc['n_images']} images): full run {inc['full_run_s']:.1f} s "
                f"({inc['full_run_ips']:.1f} img/s); re-run after adding {inc['n_added']} images "
                f"{inc['rerun_plus_1pct_s']:.1f} s; re-run with nothing new {inc['rerun_unchanged_s']:.1f} s"
            )


if __name__ == "__main__":
    main()

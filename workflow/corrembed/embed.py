"""The embed stage: batched embedding extraction into a Parquet shard plus ``meta.json``.

One call embeds every image of the catalogue with one configured model and writes
``{out_dir}/part-00000.parquet`` (via :class:`corrembed.embedding_store.EmbeddingShardWriter`,
streamed batch by batch, rows in input order) and then ``{out_dir}/meta.json``. Both are written
atomically and ``meta.json`` is removed first, so a ``meta.json`` on disk always describes the
shard beside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import polars as pl
import pyarrow
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from . import __version__
from .embedding_store import EmbeddingShardWriter, shard_name
from .errors import ConfigError, CorrEmbedError
from .models import FeatureExtractor, ModelSpec, build_model, build_transform, parse_model_spec
from .storage import write_json

META_NAME = "meta.json"


class ImageFileDataset(Dataset):
    """Images from files: item ``i`` is ``transform(PIL.Image.open(paths[i]).convert("RGB"))``."""

    def __init__(self, paths: Sequence[str], transform: Callable[[Image.Image], torch.Tensor]):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, ValueError) as exc:
            raise CorrEmbedError(
                f"cannot read image {path} ({type(exc).__name__}: {exc}); it decoded at ingest, so "
                "the file changed since: re-run the ingest stage"
            ) from exc
        return self.transform(rgb)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as given.
    Raises ConfigError for an unknown device or a CUDA device this machine does not have."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available here; use "
                              "device: auto or cpu, or run the job on a GPU node")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise ConfigError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return resolved


def _progress_function(progress: Callable[[str], Any] | logging.Logger | None) -> Callable[[str], Any]:
    if progress is None:
        return lambda line: print(line, file=sys.stderr, flush=True)
    if isinstance(progress, logging.Logger):
        return progress.info
    return progress


def progress_line(model_name: str, done: int, total: int, elapsed: float) -> str:
    """``"resnet50: 1234/5000 images (24.7%), 85.3 img/s, ETA 44 s"``."""
    rate = done / elapsed if elapsed > 0 else float("nan")
    eta = (total - done) / rate if rate > 0 else float("nan")
    share = 100.0 * done / total if total else 100.0
    return f"{model_name}: {done}/{total} images ({share:.1f}%), {rate:.1f} img/s, ETA {eta:.0f} s"


def embed_images(images: pl.DataFrame, spec: Mapping[str, Any] | ModelSpec, out_dir: str | os.PathLike, *,
                 model_name: str, torch_home: str | os.PathLike | None, batch_size: int = 32,
                 num_workers: int = 0, device: str = "auto",
                 progress: Callable[[str], Any] | logging.Logger | None = None,
                 log_every: int = 20) -> dict[str, Any]:
    """Embed ``images`` with the model of ``spec`` into ``out_dir``; return the meta dict.

    images: polars DataFrame with ``item_id`` and ``image`` (path) columns, e.g. the catalogue's
        images.parquet; output rows keep this order.
    spec: the model spec (see :mod:`corrembed.models`); enum weights are read from
        ``{torch_home}/hub/checkpoints`` and never downloaded (run the weights stage first).
    device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N". Computation is float32;
        on the CPU repeated runs give identical embeddings.
    progress: receives a progress line every ``log_every`` batches and after the last one
        (a callable, or a logging.Logger; default: print to stderr).

    Writes ``part-00000.parquet`` (item_id, image, embedding fixed_size_list<float32>[dim]) and
    ``meta.json`` (model, arch, weights, layer, dim, transforms, device, dtype, n_images,
    seconds, images_per_second, peak memory, versions, batch_size, num_workers).
    """
    for column in ("item_id", "image"):
        if column not in images.columns:
            raise CorrEmbedError(f"images table has no {column!r} column (columns: {images.columns}); "
                                 "pass the catalogue's images.parquet")
    if images.height == 0:
        raise CorrEmbedError(f"model {model_name!r}: no images to embed (the catalogue is empty)")
    if batch_size < 1 or num_workers < 0:
        raise ConfigError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
    say = _progress_function(progress)
    spec = parse_model_spec(spec, model_name=model_name)
    target = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    transform, transform_description = build_transform(spec)
    model = build_model(spec, torch_home=torch_home)
    extractor = FeatureExtractor(model, spec.layer, model_name=spec.name).to(target).eval()
    setup_seconds = time.monotonic() - started

    item_ids = images.get_column("item_id").cast(pl.String).to_list()
    paths = images.get_column("image").cast(pl.String).to_list()
    on_cuda = target.type == "cuda"
    loader = DataLoader(ImageFileDataset(paths, transform), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=on_cuda)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(target)

    # A meta.json must never describe an older shard: drop it before the shard is replaced.
    (out / META_NAME).unlink(missing_ok=True)
    total = len(paths)
    done = 0
    dim = None
    loop_started = time.monotonic()
    with contextlib.ExitStack() as stack, torch.inference_mode():
        writer = None
        for batch_index, batch in enumerate(loader):
            features = extractor(batch.to(target, non_blocking=True))
            vectors = features.cpu().numpy()
            if writer is None:
                # The dimension is known from the first batch; open the shard then.
                dim = int(vectors.shape[1])
                writer = stack.enter_context(EmbeddingShardWriter(out / shard_name(0), dim=dim))
            stop = done + vectors.shape[0]
            writer.write(item_ids[done:stop], paths[done:stop], vectors)
            done = stop
            if (batch_index + 1) % log_every == 0 or done == total:
                say(progress_line(spec.name, done, total, time.monotonic() - loop_started))
    seconds = time.monotonic() - loop_started

    meta = {
        "model": spec.name,
        "arch": spec.arch,
        "weights": {"configured": spec.weights.configured, "resolved": spec.weights.resolved,
                    "kind": spec.weights.kind},
        "layer": spec.layer,
        "dim": dim,
        "transforms": transform_description,
        "device": _device_string(target),
        "device_name": _device_name(target),
        "dtype": "float32",
        "n_images": done,
        "seconds": round(seconds, 3),
        "setup_seconds": round(setup_seconds, 3),
        "images_per_second": round(done / seconds, 3) if seconds > 0 else None,
        "peak_memory": _peak_memory(target),
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "pyarrow": pyarrow.__version__, "polars": pl.__version__, "corrembed": __version__,
        },
        "batch_size": batch_size,
        "num_workers": num_workers,
        "torch_num_threads": torch.get_num_threads(),
    }
    write_json(out / META_NAME, meta)
    return meta


def _device_string(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index}"
    return "cpu"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def _peak_memory(device: torch.device) -> dict[str, int | None]:
    # ru_maxrss is KiB on Linux, bytes on macOS; peak of this process (not DataLoader workers).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = int(rss if sys.platform == "darwin" else rss * 1024)
    cuda_bytes = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return {"cpu_peak_rss_bytes": rss_bytes, "cuda_max_allocated_bytes": cuda_bytes}

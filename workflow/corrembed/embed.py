"""The embed stage: sharded, resumable, incremental embedding extraction.

A model's embeddings are made in three steps (each a function here, each a Snakemake job):

1. :func:`embed_shard` (N jobs, config ``embed.shards``): shard ``k`` of ``N`` takes its
   contiguous range of catalogue rows (:func:`corrembed.shards.shard_bounds`), looks every image
   up by content hash (images.parquet's ``sha256``) in the embedding cache
   (:mod:`corrembed.embedding_cache`), embeds only the images not there (streaming finished
   batches into cache segments, so memory stays bounded and a killed job keeps its finished
   segments), then writes ``shard-{k}-of-{N}.parquet`` (rows in catalogue order, read back from
   the cache) and ``shard-{k}-of-{N}.json``.
2. :func:`merge_embedding_shards` (one cheap job): checks the shards cover the catalogue, in
   order, with one embedding identity, and streams them into ``part-00000.parquet`` plus
   ``meta.json`` (the format of :mod:`corrembed.embedding_store`).
3. :func:`embed_images` does both in one call (library use and tests).

Every output is written atomically and a shard's ``.json`` is removed before its Parquet file
is replaced (``meta.json`` likewise), so a ``.json`` on disk always describes a complete file.

Speed: DataLoader workers decode and resize (uint8, pinned on CUDA, non-blocking copies); the
batch is converted and normalised on the device (:mod:`corrembed.image_batches`); on CUDA the
forward pass can run under bf16/fp16 autocast (``precision``, part of the identity), with
``channels_last`` and ``torch.compile`` (run settings), and the next batch is queued before the
previous one's features are copied back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import polars as pl
import pyarrow
import pyarrow.parquet as pq
import torch
import torchvision
from torch.utils.data import DataLoader

from . import __version__
from .cache_integrity import CacheEntriesLost, quarantine_counts
from .embedding_cache import EmbeddingCache, embedding_identity
from .embedding_store import EmbeddingShardWriter, embedding_schema, shard_name
from .errors import ConfigError, CorrEmbedError
from .image_batches import (
    DECODERS,
    ImageFileDataset,
    Preprocess,
    batch_to_device,
    collate_images,
    failed_images,
)
from .models import ModelSpec, build_extractor, build_model, parse_model_spec, preprocessing
from .records import EmbeddingMeta
from .shards import shard_bounds, shard_id
from .storage import file_sha256, write_json

META_NAME = "meta.json"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Rows read back from the cache and written per step when assembling a shard.
WRITE_CHUNK_ROWS = 4096
#: Rounds of embed-then-read a shard tries when cache segments turn out damaged while read.
MAX_CACHE_ROUNDS = 8


@dataclass(frozen=True)
class RunSettings:
    """How to run an extraction; none of these changes what an embedding is (they are not
    part of the cache identity and changing them re-embeds nothing).

    batch_size: images per forward pass; num_workers: DataLoader worker processes (0: decode
    in the main process); device: "auto" (CUDA when available), "cpu", "cuda", "cuda:N";
    channels_last: NHWC memory format for the model and inputs; compile: ``torch.compile`` the
    extractor; log_every: batches between progress lines; segment_rows / segment_seconds: how
    often finished embeddings are committed to the cache (the work a killed job can lose).
    """

    batch_size: int = 32
    num_workers: int = 0
    device: str = "auto"
    channels_last: bool = False
    compile: bool = False
    log_every: int = 20
    segment_rows: int = 4096
    segment_seconds: float = 300.0

    def __post_init__(self):
        """Reject a batch size below 1 or a negative worker count (ConfigError)."""
        if self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError(
                f"batch_size must be >= 1 and num_workers >= 0, got {self.batch_size}, {self.num_workers}"
            )


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
            raise ConfigError(
                f"device {device!r} requested but CUDA is not available here; use "
                "device: auto or cpu, or run the job on a GPU node"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise ConfigError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return resolved


def check_precision(precision: str, decoder: str = "pil") -> None:
    """ConfigError unless precision is fp32/bf16/fp16 and decoder pil/torchvision."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if decoder not in DECODERS:
        raise ConfigError(f"unknown decoder {decoder!r}; use one of {', '.join(DECODERS)}")


def _progress_function(progress: Callable[[str], Any] | logging.Logger | None) -> Callable[[str], Any]:
    """A line sink: stderr (None), a Logger's ``info``, or the callable itself."""
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


def shard_meta_path(shard_path: str | os.PathLike) -> Path:
    """``shard-00000-of-00002.parquet`` -> ``shard-00000-of-00002.json``."""
    return Path(shard_path).with_suffix(".json")


def content_hashes(images: pl.DataFrame) -> list[str]:
    """The ``sha256`` column of the images table, or the files' hashes when it has none."""
    if "sha256" in images.columns:
        return images.get_column("sha256").cast(pl.String).to_list()
    hashes = []
    for path in images.get_column("image").cast(pl.String).to_list():
        try:
            hashes.append(file_sha256(path))
        except OSError as exc:
            raise CorrEmbedError(f"cannot read image {path} ({exc.strerror or exc}); re-run the ingest stage") from exc
    return hashes


def _check_images_table(images: pl.DataFrame) -> None:
    """CorrEmbedError unless the images table has ``item_id`` and ``image`` columns."""
    for column in ("item_id", "image"):
        if column not in images.columns:
            raise CorrEmbedError(
                f"images table has no {column!r} column (columns: {images.columns}); "
                "pass the catalogue's images.parquet"
            )


# --------------------------------------------------------------------------- the forward loop


def _on_device(module: torch.nn.Module, target: torch.device, settings: RunSettings) -> torch.nn.Module:
    """``module`` on ``target`` in eval mode (channels_last / compiled per ``settings``)."""
    module = module.to(target).eval()
    if settings.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if settings.compile:
        return torch.compile(module, dynamic=False)
    return module


def _build_extractor(
    spec: ModelSpec, torch_home, target: torch.device, settings: RunSettings, hf_home=None
) -> torch.nn.Module:
    """The spec's embedding extractor on ``target`` in eval mode (channels_last / compiled per ``settings``)."""
    model = build_model(spec, torch_home=torch_home, hf_home=hf_home)
    return _on_device(build_extractor(spec, model), target, settings)


def _embed_missing(
    paths: list[str],
    shas: list[str],
    caches: Mapping[str, EmbeddingCache],
    build_forward: Callable[[], torch.nn.Module],
    *,
    preprocess: Preprocess,
    precision: str,
    decoder: str,
    target: torch.device,
    settings: RunSettings,
    say: Callable[[str], Any],
    label: str,
    needed: Mapping[str, set[str]] | None = None,
) -> dict[str, Any]:
    """Embed ``paths`` (distinct contents ``shas``) and add them to the caches; return timings.

    ``build_forward()`` gives the module run on each batch: ``(b, 3, H, W) -> (b, dim)`` for one
    cache, or ``-> {key: (b, dim_key)}`` for one cache per key of ``caches`` (a layer sweep);
    ``needed[key]``, when given, is the set of hashes cache ``key`` lacks (others are not added).
    """
    started = time.monotonic()
    forward = build_forward()
    setup_seconds = time.monotonic() - started
    on_cuda = target.type == "cuda"
    dataset = ImageFileDataset(
        paths, preprocess, decoder=decoder, decode_in_worker=not (on_cuda and decoder == "torchvision")
    )
    workers = settings.num_workers
    loader = DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=on_cuda,
        collate_fn=collate_images,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    dtype = PRECISIONS[precision]
    autocast = torch.autocast(device_type=target.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(target)
    total = len(paths)
    done = finished = 0
    loop_started = time.monotonic()
    pending: list[tuple[list[str], dict[str, torch.Tensor], Any, list[dict]]] = []
    set_aside: list[dict[str, Any]] = []  # images that could not be decoded: no embedding, not cached
    (only_key,) = caches if len(caches) == 1 else (None,)

    with contextlib.ExitStack() as stack, torch.inference_mode():
        writers: dict[str, Any] = {}

        def finish(item) -> None:
            """Wait for one queued batch's copies, add them to the caches, report progress."""
            nonlocal done, finished
            batch_shas, hosts, event, failed = item
            if event is not None:
                event.synchronize()
            done += len(batch_shas)
            keep = np.arange(len(batch_shas))
            if failed:
                keep = np.setdiff1d(keep, [f["position"] for f in failed])
                set_aside.extend(
                    {"image": f["image"], "sha256": batch_shas[f["position"]], "kind": f["kind"], "reason": f["reason"]}
                    for f in failed
                )
            for key, host in hosts.items():
                rows = keep
                if needed is not None:
                    rows = np.array([k for k in keep if batch_shas[k] in needed[key]], dtype=np.int64)
                if rows.size == 0:
                    continue
                vectors = host.numpy()
                if key not in writers:  # the dimension is known from the first batch
                    writers[key] = stack.enter_context(
                        caches[key].writer(
                            int(vectors.shape[1]),
                            segment_rows=settings.segment_rows,
                            segment_seconds=settings.segment_seconds,
                        )
                    )
                rows_all = rows.size == len(batch_shas)
                writers[key].add(
                    batch_shas if rows_all else [batch_shas[k] for k in rows], vectors if rows_all else vectors[rows]
                )
            finished += 1
            if finished % settings.log_every == 0 or done == total:
                say(progress_line(label, done, total, time.monotonic() - loop_started))

        for batch_index, batch in enumerate(loader):
            start = batch_index * settings.batch_size
            batch_paths = paths[start : start + batch["size"]]
            x = batch_to_device(batch, batch_paths, preprocess, target, channels_last=settings.channels_last)
            with autocast:
                features = forward(x)
            if not isinstance(features, Mapping):
                features = {only_key: features}
            # Queue the copies back and let the device run ahead by one batch before waiting.
            hosts = {key: value.float().to("cpu", non_blocking=on_cuda) for key, value in features.items()}
            event = None
            if on_cuda:
                event = torch.cuda.Event()
                event.record()
            pending.append((shas[start : start + batch["size"]], hosts, event, failed_images(batch, batch_paths)))
            if len(pending) > 1:
                finish(pending.pop(0))
        while pending:
            finish(pending.pop(0))
    seconds = time.monotonic() - loop_started
    return {"seconds": seconds, "setup_seconds": setup_seconds, "set_aside": set_aside}


# --------------------------------------------------------------------------- one shard


def embed_shard(
    images: pl.DataFrame,
    spec: ModelSpec,
    shard_path: str | os.PathLike,
    *,
    torch_home: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    shard: tuple[int, int] = (0, 1),
    precision: str = "fp32",
    decoder: str = "pil",
    settings: RunSettings = RunSettings(),
    progress: Callable[[str], Any] | logging.Logger | None = None,
    hf_home: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Embed shard ``shard = (index, count)`` of ``images`` into ``shard_path``; return its meta.

    images: the catalogue's images table (``item_id``, ``image``, ``sha256``; without
        ``sha256`` the files are hashed here), in catalogue order.
    spec: the parsed model spec (:func:`corrembed.models.parse_model_spec`); hub weights are
        read from ``torch_home`` / ``hf_home`` (the weights step's caches) with the hub
        offline, never downloaded.
    cache_dir: root of the embedding cache; images whose content is cached under this
        model's identity are not embedded again, new embeddings are added to it.
    precision: ``fp32``, ``bf16`` or ``fp16`` (autocast of the forward pass; stored float32);
        decoder: ``pil`` or ``torchvision`` (see :mod:`corrembed.image_batches`).

    Writes ``shard_path`` (item_id, image, embedding fixed_size_list<float32>[dim]: the shard's
    rows in catalogue order) and then :func:`shard_meta_path` (JSON: shard, rows, identity,
    counts, timings, device, settings). The model is not even built when every image is cached.
    """
    _check_images_table(images)
    check_precision(precision, decoder)
    say = _progress_function(progress)
    if not isinstance(spec, ModelSpec):
        raise TypeError("embed_shard: spec must be a parsed ModelSpec (corrembed.models.parse_model_spec)")
    target = resolve_device(settings.device)
    index, count = shard
    start, stop = shard_bounds(images.height, count)[index]
    label = spec.name if count == 1 else f"{spec.name} [shard {shard_id(index, count)}]"
    shard_path = Path(shard_path)
    meta_path = shard_meta_path(shard_path)
    shard_path.parent.mkdir(parents=True, exist_ok=True)
    # A shard's .json must never describe an older Parquet file: drop it first.
    meta_path.unlink(missing_ok=True)

    rows = images.slice(start, stop - start)
    item_ids = rows.get_column("item_id").cast(pl.String).to_list()
    paths = rows.get_column("image").cast(pl.String).to_list()
    shas = content_hashes(rows)
    resolved_preprocessing = preprocessing(spec, torch_home=torch_home, hf_home=hf_home)
    transform_description = resolved_preprocessing.describe()
    identity = embedding_identity(spec, transform_description, precision=precision, decoder=decoder)
    cache = EmbeddingCache(cache_dir, identity)
    timings = {"seconds": 0.0, "setup_seconds": 0.0, "set_aside": []}
    embedded: list[str] = []  # several rounds when a damaged cache segment turns up while reading
    for _round in range(MAX_CACHE_ROUNDS):
        undecodable = {record["sha256"] for record in timings["set_aside"]}  # tried once is enough
        missing = [sha for sha in cache.missing(shas) if sha not in undecodable]
        say(
            f"{label}: rows {start}-{stop} of {images.height}: {len(shas) - len(missing)} image(s) "
            f"cached, {len(missing)} distinct to embed (cache {cache.directory})"
        )
        if missing:
            first_path = {}
            for sha, path in zip(shas, paths):
                first_path.setdefault(sha, path)
            done = _embed_missing(
                [first_path[s] for s in missing],
                missing,
                {spec.layer: cache},
                lambda: _build_extractor(spec, torch_home, target, settings, hf_home),
                preprocess=Preprocess.from_transform(resolved_preprocessing.transform()),
                precision=precision,
                decoder=decoder,
                target=target,
                settings=settings,
                say=say,
                label=label,
            )
            timings = {key: timings[key] + done[key] for key in timings}
            embedded += missing

        dim = cache.dim if cache.dim is not None else 0  # 0: an empty shard of an empty cache
        try:
            with EmbeddingShardWriter(shard_path, dim=dim) as writer:
                for chunk in range(0, len(shas), WRITE_CHUNK_ROWS):
                    part = slice(chunk, chunk + WRITE_CHUNK_ROWS)
                    writer.write(item_ids[part], paths[part], _fetch(cache, shas[part], timings["set_aside"]))
            break
        except CacheEntriesLost as lost:
            say(f"{label}: {lost}")
    else:
        raise CorrEmbedError(f"{label}: cache {cache.directory} kept losing segments while read; check the disk")
    missing = embedded  # the counts below are over every round

    seconds = timings["seconds"]
    meta = {
        **_model_meta(spec, transform_description),
        "dim": dim if len(shas) else cache.dim,
        "identity": identity,
        "identity_key": cache.key,
        "cache": str(cache.directory),
        "shard": {"index": index, "count": count, "start": start, "stop": stop},
        "n_images": len(shas),
        "n_embedded": len(missing),
        "n_from_cache": len(shas) - len(missing),
        "precision": precision,
        "decoder": decoder,
        "device": _device_string(target),
        "device_name": _device_name(target),
        "dtype": "float32",
        "seconds": round(seconds, 3),
        "setup_seconds": round(timings["setup_seconds"], 3),
        "images_per_second": round(len(missing) / seconds, 3) if missing and seconds > 0 else None,
        "images_set_aside": timings["set_aside"],
        **quarantine_counts(cache.quarantined),
        "peak_memory": _peak_memory(target),
        "versions": _versions(),
        **{key: value for key, value in asdict(settings).items() if key != "device"},
        "torch_num_threads": torch.get_num_threads(),
        # Which cluster job made these embeddings (None outside Slurm), to find its sacct record.
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    write_json(meta_path, meta)
    return meta


def _fetch(cache: EmbeddingCache, shas: list[str], set_aside: list[dict[str, Any]]) -> np.ndarray:
    """Cached embeddings of ``shas``; NaN rows for images this job could not decode (never cached)."""
    failed = {record["sha256"] for record in set_aside}
    if not failed.intersection(shas):
        return cache.fetch(shas)
    if cache.dim is None:
        raise CorrEmbedError(
            f"none of the images could be decoded ({set_aside[0]['image']}: "
            f"{set_aside[0]['reason']}, ...); check the image files and re-run the ingest stage"
        )
    out = np.full((len(shas), cache.dim), np.nan, dtype=np.float32)
    rows = [k for k, sha in enumerate(shas) if sha not in failed]
    out[rows] = cache.fetch([shas[k] for k in rows])
    return out


# --------------------------------------------------------------------------- merge


def merge_embedding_shards(
    images: pl.DataFrame, shard_paths: list[str | os.PathLike], out_dir: str | os.PathLike
) -> dict[str, Any]:
    """Concatenate shards (in the given order, shard 0 first) into ``out_dir``; return meta.

    Checks that the shards are shards 0..N-1 of one count, made with one embedding identity,
    and that their rows are exactly the catalogue's ``item_id``/``image`` rows in order
    (CorrEmbedError naming the shard otherwise). Streams record batches into
    ``part-00000.parquet`` (values copied bit for bit) and writes ``meta.json``: the shards'
    common fields, totals (n_images, n_embedded, n_from_cache, seconds), images_per_second
    over the embedded images, the largest peak memory, and the per-shard records.
    """
    _check_images_table(images)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metas = [json.loads(shard_meta_path(p).read_text(encoding="utf-8")) for p in shard_paths]
    count = len(shard_paths)
    for k, (path, meta) in enumerate(zip(shard_paths, metas)):
        if meta["shard"]["index"] != k or meta["shard"]["count"] != count:
            raise CorrEmbedError(
                f"{path}: is shard {meta['shard']['index']} of {meta['shard']['count']}, expected {k} of {count}"
            )
        if meta["identity_key"] != metas[0]["identity_key"]:
            raise CorrEmbedError(
                f"{path}: made with embedding identity {meta['identity_key']}, shard 0 "
                f"with {metas[0]['identity_key']}; re-run the embed jobs"
            )
    expected = shard_bounds(images.height, count)
    dims = {m["dim"] for m in metas if m["n_images"]}
    if len(dims) > 1:
        raise CorrEmbedError(f"shards of {out} have different dimensions {sorted(dims)}")
    dim = dims.pop() if dims else 0
    item_ids = images.get_column("item_id").cast(pl.String)
    image_paths = images.get_column("image").cast(pl.String)

    (out / META_NAME).unlink(missing_ok=True)
    with EmbeddingShardWriter(out / shard_name(0), dim=dim) as writer:
        for path, meta, (start, stop) in zip(shard_paths, metas, expected):
            if (meta["shard"]["start"], meta["shard"]["stop"]) != (start, stop):
                raise CorrEmbedError(
                    f"{path}: covers catalogue rows {meta['shard']['start']}-{meta['shard']['stop']}, "
                    f"the catalogue now needs {start}-{stop}; re-run the embed jobs"
                )
            if stop == start:
                continue
            parquet = pq.ParquetFile(path)
            names = pq.read_table(path, columns=["item_id", "image"])
            if (
                names.column("item_id").to_pylist() != item_ids[start:stop].to_list()
                or names.column("image").to_pylist() != image_paths[start:stop].to_list()
            ):
                raise CorrEmbedError(
                    f"{path}: rows differ from the catalogue's rows {start}-{stop} "
                    "(images.parquet changed since); re-run the embed jobs"
                )
            for batch in parquet.iter_batches(batch_size=WRITE_CHUNK_ROWS):
                writer.write_record_batch(batch.cast(embedding_schema(dim)))

    embedded = sum(m["n_embedded"] for m in metas)
    seconds = sum(m["seconds"] for m in metas)
    first = metas[0]
    common = (
        "model",
        "source",
        "arch",
        "weights",
        "layer",
        "transforms",
        "identity",
        "identity_key",
        "cache",
        "precision",
        "decoder",
        "device",
        "device_name",
        "dtype",
        "versions",
        "batch_size",
        "num_workers",
        "channels_last",
        "compile",
        "torch_num_threads",
    )
    job_ids = sorted({m["slurm_job_id"] for m in metas if m.get("slurm_job_id")})
    meta = {
        **{key: first.get(key) for key in common},
        "dim": dim,
        "n_images": sum(m["n_images"] for m in metas),
        "n_embedded": embedded,
        "n_from_cache": sum(m["n_from_cache"] for m in metas),
        "shards": count,
        "seconds": round(seconds, 3),
        "setup_seconds": round(sum(m["setup_seconds"] for m in metas), 3),
        "images_per_second": round(embedded / seconds, 3) if embedded and seconds > 0 else None,
        "peak_memory": {
            key: max((m["peak_memory"][key] for m in metas if m["peak_memory"][key] is not None), default=None)
            for key in first["peak_memory"]
        },
        "slurm_job_id": ",".join(job_ids) if job_ids else None,
        "images_set_aside": [record for m in metas for record in m.get("images_set_aside", [])],
        **quarantine_counts([record for m in metas for record in m.get("cache_quarantined", [])]),
        "shard_records": [
            {**m["shard"], **{k: m[k] for k in ("n_images", "n_embedded", "seconds", "device", "slurm_job_id")}}
            for m in metas
        ],
    }
    record = EmbeddingMeta.from_dict(meta)
    record.write(out / META_NAME)
    return record.to_dict()


# --------------------------------------------------------------------------- all in one


def embed_images(
    images: pl.DataFrame,
    spec: Mapping[str, Any] | ModelSpec,
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    torch_home: str | os.PathLike | None,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    decoder: str = "pil",
    channels_last: bool = False,
    compile: bool = False,
    cache_dir: str | os.PathLike | None = None,
    shards: int = 1,
    progress: Callable[[str], Any] | logging.Logger | None = None,
    log_every: int = 20,
    hf_home: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Embed every image of ``images`` into ``out_dir`` (``part-00000.parquet`` + ``meta.json``,
    rows in input order); return the meta dict.

    The spec (a config mapping or a parsed :class:`~corrembed.models.ModelSpec`) is parsed once
    here. The shards are embedded one after the other, then merged (:func:`embed_shard`,
    :func:`merge_embedding_shards`); cache_dir None uses a temporary cache (nothing reused).
    On the CPU in fp32, repeated runs give identical embeddings.
    """
    _check_images_table(images)
    if images.height == 0:
        raise CorrEmbedError(f"model {model_name!r}: no images to embed (the catalogue is empty)")
    spec = parse_model_spec(spec, model_name=model_name)
    settings = RunSettings(
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        channels_last=channels_last,
        compile=compile,
        log_every=log_every,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_NAME).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=".embed-", dir=out) as work:
        cache = cache_dir if cache_dir is not None else Path(work) / "cache"
        paths = [Path(work) / f"shard-{shard_id(k, shards)}.parquet" for k in range(shards)]
        for k, path in enumerate(paths):
            embed_shard(
                images,
                spec,
                path,
                torch_home=torch_home,
                hf_home=hf_home,
                cache_dir=cache,
                shard=(k, shards),
                precision=precision,
                decoder=decoder,
                settings=settings,
                progress=progress,
            )
        return merge_embedding_shards(images, paths, out)


# --------------------------------------------------------------------------- meta helpers


def _model_meta(spec: ModelSpec, transform_description: dict[str, Any]) -> dict[str, Any]:
    """The model part of an embedding meta: name, source, arch, weights, layer, preprocessing."""
    return {
        "model": spec.name,
        "source": spec.source,
        "arch": spec.arch,
        "weights": {
            "configured": spec.weights.configured,
            "resolved": spec.weights.resolved,
            "kind": spec.weights.kind,
        },
        "layer": spec.layer,
        "transforms": transform_description,
    }


def _versions() -> dict[str, str]:
    """Versions of the libraries that make the embeddings (for meta.json)."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "pyarrow": pyarrow.__version__,
        "polars": pl.__version__,
        "corrembed": __version__,
    }


def _device_string(device: torch.device) -> str:
    """``cpu`` or ``cuda:N`` (the index resolved)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index}"
    return "cpu"


def _device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's processor/machine string."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def _peak_memory(device: torch.device) -> dict[str, int | None]:
    """Peak host RSS of this process and peak CUDA allocation on ``device`` (None off CUDA), in bytes."""
    # ru_maxrss is KiB on Linux, bytes on macOS; peak of this process (not DataLoader workers).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = int(rss if sys.platform == "darwin" else rss * 1024)
    cuda_bytes = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return {"cpu_peak_rss_bytes": rss_bytes, "cuda_max_allocated_bytes": cuda_bytes}


# --------------------------------------------------------------------------- the Snakemake job


def run_settings(run: Mapping[str, Any], threads: int) -> RunSettings:
    """RunSettings from config ``embed:`` (batch_size, num_workers, device, channels_last,
    compile); DataLoader workers are capped at the job's threads minus the main process."""
    return RunSettings(
        batch_size=int(run.get("batch_size", 32)),
        num_workers=min(int(run.get("num_workers", 0)), max(int(threads) - 1, 0)),
        device=str(run.get("device", "auto")),
        channels_last=bool(run.get("channels_last", False)),
        compile=bool(run.get("compile", False)),
    )


def embed_shard_job(
    images_path: str | os.PathLike,
    shard_path: str | os.PathLike,
    *,
    model_name: str,
    shard: str,
    params: Mapping[str, Any],
    run: Mapping[str, Any],
    threads: int,
    log: logging.Logger,
    hf_home: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """What the embed rule runs: :func:`embed_shard` for shard id ``shard`` ("00000-of-00002")
    of ``images_path`` (images.parquet) with the rule's params (spec, torch_home, precision,
    decoder) and the config's run settings (``run``: config ``embed``)."""
    from .shards import parse_shard_id

    images = pl.read_parquet(images_path)
    images = images.select([c for c in ("item_id", "image", "sha256") if c in images.columns])
    spec = parse_model_spec(params["spec"], model_name=model_name)
    meta = embed_shard(
        images,
        spec,
        shard_path,
        torch_home=params.get("torch_home"),
        hf_home=hf_home,
        cache_dir=run.get("cache", "results/cache/embeddings"),
        shard=parse_shard_id(shard),
        precision=params.get("precision", "fp32"),
        decoder=params.get("decoder", "pil"),
        settings=run_settings(run, threads),
        progress=log,
    )
    log.info(
        "%s shard %s: %d images, %d embedded (%s images/s on %s, %s), %d from the cache",
        model_name,
        shard,
        meta["n_images"],
        meta["n_embedded"],
        meta["images_per_second"],
        meta["device"],
        meta["precision"],
        meta["n_from_cache"],
    )
    return meta

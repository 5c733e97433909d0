"""The forward loop: decode, batch, run a module on the device, add the features to the caches.

:func:`embed_missing` streams images through a DataLoader (workers decode and resize to uint8;
pinned memory and non-blocking copies on CUDA), converts and normalises each batch on the device
(:func:`corrembed.images.batches.batch_to_device`), runs the forward pass (under bf16/fp16
autocast for ``precision``) and queues the copy back; the next batch is queued before the
previous one's features are waited for. A :class:`CacheSink` adds each finished batch to the
caches (one segment writer per cache, committed every ``segment_rows`` / ``segment_seconds``),
so memory stays bounded and a killed job keeps its finished segments.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..images.batches import ImageFileDataset, batch_to_device, collate_images, failed_images
from ..models import ModelSpec, build_extractor, build_model
from ..models.preprocess import Preprocessing
from .cache import EmbeddingCache
from .settings import PRECISIONS, RunSettings, progress_line


@dataclass
class ForwardTimings:
    """What one forward loop took and what it could not embed.

    Attributes
    ----------
    seconds, setup_seconds : float
        The loop's wall time; the time to build the module before it.
    set_aside : list of dict
        Images that could not be decoded ``{image, sha256, kind, reason}`` (not cached).
    """

    seconds: float = 0.0
    setup_seconds: float = 0.0
    set_aside: list[dict[str, Any]] = field(default_factory=list)

    def __add__(self, other: ForwardTimings) -> ForwardTimings:
        """Two loops' timings together (a shard job that had to embed again after a damaged read)."""
        return ForwardTimings(
            self.seconds + other.seconds, self.setup_seconds + other.setup_seconds, self.set_aside + other.set_aside
        )


def on_device(module: torch.nn.Module, target: torch.device, settings: RunSettings) -> torch.nn.Module:
    """``module`` on ``target`` in eval mode (channels_last / compiled per ``settings``)."""
    module = module.to(target).eval()
    if settings.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if settings.compile:
        return torch.compile(module, dynamic=False)
    return module


def extractor_on_device(
    spec: ModelSpec, torch_home, target: torch.device, settings: RunSettings, hf_home=None
) -> torch.nn.Module:
    """The spec's embedding extractor, ``(b, 3, H, W) -> (b, dim)``, on ``target`` (see :func:`on_device`)."""
    model = build_model(spec, torch_home=torch_home, hf_home=hf_home)
    return on_device(build_extractor(spec, model), target, settings)


class CacheSink:
    """Adds finished batches to the caches and reports progress.

    Parameters
    ----------
    caches : mapping of str to EmbeddingCache
        Key -> the cache its features go to.
    needed : mapping of str to set of str
        Key -> the content hashes its cache lacks (other rows are not added to it).
    stack : contextlib.ExitStack
        Holds the caches' segment writers, opened at the first batch (the dimension is known then).
    """

    def __init__(
        self,
        caches: Mapping[str, EmbeddingCache],
        needed: Mapping[str, set[str]],
        *,
        stack: contextlib.ExitStack,
        settings: RunSettings,
        say: Callable[[str], Any],
        label: str,
        total: int,
    ):
        self.caches, self.needed, self.stack, self.settings = caches, needed, stack, settings
        self.say, self.label, self.total = say, label, total
        self.writers: dict[str, Any] = {}
        self.set_aside: list[dict[str, Any]] = []  # images that could not be decoded: no embedding, not cached
        self.done = self.finished = 0
        self.started = time.monotonic()

    def add(self, batch_shas: list[str], hosts: Mapping[str, torch.Tensor], event, failed: list[dict]) -> None:
        """Wait for one queued batch's copies (``event``), add its rows to the caches, report progress."""
        if event is not None:
            event.synchronize()
        self.done += len(batch_shas)
        keep = np.arange(len(batch_shas))
        if failed:
            keep = np.setdiff1d(keep, [f["position"] for f in failed])
            self.set_aside.extend(
                {"image": f["image"], "sha256": batch_shas[f["position"]], "kind": f["kind"], "reason": f["reason"]}
                for f in failed
            )
        for key, host in hosts.items():
            rows = np.array([k for k in keep if batch_shas[k] in self.needed[key]], dtype=np.int64)
            if rows.size:
                self._write(key, batch_shas, host.numpy(), rows)
        self.finished += 1
        if self.finished % self.settings.log_every == 0 or self.done == self.total:
            self.say(progress_line(self.label, self.done, self.total, time.monotonic() - self.started))

    def _write(self, key: str, batch_shas: list[str], vectors: np.ndarray, rows: np.ndarray) -> None:
        if key not in self.writers:  # the dimension is known from the first batch
            self.writers[key] = self.stack.enter_context(
                self.caches[key].writer(
                    int(vectors.shape[1]),
                    segment_rows=self.settings.segment_rows,
                    segment_seconds=self.settings.segment_seconds,
                )
            )
        if rows.size == len(batch_shas):
            self.writers[key].add(batch_shas, vectors)
        else:
            self.writers[key].add([batch_shas[k] for k in rows], vectors[rows])


def embed_missing(
    paths: list[str],
    shas: list[str],
    caches: Mapping[str, EmbeddingCache],
    build_forward: Callable[[], torch.nn.Module],
    *,
    preprocess: Preprocessing,
    precision: str,
    decoder: str,
    target: torch.device,
    settings: RunSettings,
    say: Callable[[str], Any],
    label: str,
    needed: Mapping[str, set[str]],
) -> ForwardTimings:
    """Embed ``paths`` (distinct contents ``shas``) and add them to the caches.

    ``build_forward()`` gives the module run on each batch: ``(b, 3, H, W) -> (b, dim)`` for one
    cache, or ``-> {key: (b, dim_key)}`` for one cache per key of ``caches`` (a layer sweep);
    ``needed[key]`` is the set of hashes cache ``key`` lacks (others are not added to it).
    Features are stored as float32 whatever the autocast precision.
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
    pending: list[tuple[list[str], dict[str, torch.Tensor], Any, list[dict]]] = []
    (only_key,) = caches if len(caches) == 1 else (None,)
    with contextlib.ExitStack() as stack, torch.inference_mode():
        sink = CacheSink(caches, needed, stack=stack, settings=settings, say=say, label=label, total=len(paths))
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
                sink.add(*pending.pop(0))
        while pending:
            sink.add(*pending.pop(0))
    return ForwardTimings(time.monotonic() - sink.started, setup_seconds, sink.set_aside)

"""How an embed job runs: run settings, the device, precision and decoder checks, progress lines.

None of this changes what an embedding is except ``precision`` and ``decoder`` (checked here,
part of the cache identity, :mod:`.cache`); the run settings are not part of it, so changing
them re-embeds nothing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..images.batches import DECODERS

#: Precision name -> the autocast dtype of the forward pass (None: plain float32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class RunSettings:
    """How to run an extraction; none of these changes what an embedding is (they are not
    part of the cache identity and changing them re-embeds nothing).

    Attributes
    ----------
    batch_size : int
        Images per forward pass.
    num_workers : int
        DataLoader worker processes (0: decode in the main process).
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    channels_last : bool
        NHWC memory format for the model and inputs.
    compile : bool
        ``torch.compile`` the extractor.
    log_every : int
        Batches between progress lines.
    segment_rows, segment_seconds : int, float
        How often finished embeddings are committed to the cache (the work a killed job can lose).

    Examples
    --------
    >>> RunSettings(batch_size=64).num_workers
    0
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


def run_settings(run: Mapping[str, Any], threads: int) -> RunSettings:
    """RunSettings from config ``embed:`` (batch_size, num_workers, device, channels_last,
    compile); DataLoader workers are capped at the job's threads minus the main process.

    Examples
    --------
    >>> run_settings({"batch_size": 8, "num_workers": 4}, threads=2).num_workers
    1
    """
    return RunSettings(
        batch_size=int(run.get("batch_size", 32)),
        num_workers=min(int(run.get("num_workers", 0)), max(int(threads) - 1, 0)),
        device=str(run.get("device", "auto")),
        channels_last=bool(run.get("channels_last", False)),
        compile=bool(run.get("compile", False)),
    )


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as given.

    Raises ConfigError for an unknown device or a CUDA device this machine does not have.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
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
    """ConfigError unless precision is fp32/bf16/fp16 and decoder one of :data:`DECODERS`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if decoder not in DECODERS:
        raise ConfigError(f"unknown decoder {decoder!r}; use one of {', '.join(DECODERS)}")


def progress_sink(progress: Callable[[str], Any] | logging.Logger | None) -> Callable[[str], Any]:
    """A line sink: stderr (None), a Logger's ``info``, or the callable itself.

    Examples
    --------
    >>> progress_sink(print)("3/10 images")
    3/10 images
    """
    if progress is None:
        return lambda line: print(line, file=sys.stderr, flush=True)
    if isinstance(progress, logging.Logger):
        return progress.info
    return progress


def progress_line(model_name: str, done: int, total: int, elapsed: float) -> str:
    """``"resnet50: 1234/5000 images (24.7%), 85.3 img/s, ETA 44 s"``.

    Examples
    --------
    >>> progress_line("r18", 50, 100, 2.0)
    'r18: 50/100 images (50.0%), 25.0 img/s, ETA 2 s'
    """
    rate = done / elapsed if elapsed > 0 else float("nan")
    eta = (total - done) / rate if rate > 0 else float("nan")
    share = 100.0 * done / total if total else 100.0
    return f"{model_name}: {done}/{total} images ({share:.1f}%), {rate:.1f} img/s, ETA {eta:.0f} s"

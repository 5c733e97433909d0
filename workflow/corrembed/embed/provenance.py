"""Provenance of embeddings: the model, library versions, the device and peak memory (for meta.json)."""

from __future__ import annotations

import platform
import resource
import sys
from typing import Any

import numpy as np
import PIL
import polars as pl
import pyarrow
import torch
import torchvision

from .. import __version__
from ..models import ModelSpec


def model_meta(spec: ModelSpec, transform_description: dict[str, Any]) -> dict[str, Any]:
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


def library_versions() -> dict[str, str]:
    """Versions of the libraries that make the embeddings.

    Examples
    --------
    >>> sorted(library_versions())[:3]
    ['corrembed', 'numpy', 'pillow']
    """
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


def device_string(device: torch.device) -> str:
    """``cpu`` or ``cuda:N`` (the index resolved).

    Examples
    --------
    >>> device_string(torch.device("cpu"))
    'cpu'
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index}"
    return "cpu"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's processor/machine string."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def peak_memory(device: torch.device) -> dict[str, int | None]:
    """Peak host RSS of this process and peak CUDA allocation on ``device`` (None off CUDA), in bytes."""
    # ru_maxrss is KiB on Linux, bytes on macOS; peak of this process (not DataLoader workers).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = int(rss if sys.platform == "darwin" else rss * 1024)
    cuda_bytes = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return {"cpu_peak_rss_bytes": rss_bytes, "cuda_max_allocated_bytes": cuda_bytes}

"""Published ImageNet accuracy tables shipped as package data (``corrembed/data/``).

- ``timm-results-imagenet.csv``: timm's supervised ImageNet-1k validation results per
  ``name.tag`` (huggingface/pytorch-image-models ``results/results-imagenet.csv``, Apache-2.0).
- ``open_clip-zeroshot-results.csv``: open_clip's *zero-shot* ImageNet-1k top-1 per model name
  and pretrained tag (mlfoundations/open_clip ``docs/openclip_results.csv``, MIT).

Sources, commits, licences and how to refresh them: ``corrembed/data/README.md``.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources
from typing import Any


def _rows(file_name: str) -> list[dict[str, str]]:
    """The rows of a packaged CSV table as dicts (header keys)."""
    text = resources.files("corrembed").joinpath("data", file_name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@functools.cache
def timm_results() -> dict[str, list[dict[str, Any]]]:
    """``{"name.tag": [{img_size, top1, top5, param_count}, ...]}`` (a name may have several sizes)."""
    table: dict[str, list[dict[str, Any]]] = {}
    for row in _rows("timm-results-imagenet.csv"):
        table.setdefault(row["model"], []).append(
            {
                "img_size": int(row["img_size"]),
                "top1": float(row["top1"]),
                "top5": float(row["top5"]),
                "param_count": float(row["param_count"].replace(",", "")) * 1e6,
            }
        )
    return table


def timm_accuracy(name_tag: str, img_size: int | None) -> dict[str, Any] | None:
    """timm's published figures for ``name.tag`` at ``img_size`` (or its first row); None when absent.

    Returns
    -------
    dict or None
        ``{acc1, acc5, num_params}`` (percent, percent, count).
    """
    rows = timm_results().get(name_tag)
    if not rows:
        return None
    row = next((r for r in rows if r["img_size"] == img_size), rows[0])
    return {"acc1": row["top1"], "acc5": row["top5"], "num_params": int(round(row["param_count"]))}


@functools.cache
def open_clip_results() -> dict[tuple[str, str], dict[str, Any]]:
    """``{(name, pretrained): {zeroshot_acc1 (percent), params, gflops}}``."""
    table = {}
    for row in _rows("open_clip-zeroshot-results.csv"):
        table[(row["name"], row["pretrained"])] = {
            "acc1": round(float(row["ImageNet 1k"]) * 100, 4),
            "num_params": int(round(float(row["params (M)"]) * 1e6)),
            "gflops": float(row["FLOPs (B)"]),
        }
    return table


def open_clip_accuracy(name: str, pretrained: str) -> dict[str, Any] | None:
    """open_clip's published zero-shot ImageNet-1k top-1 (percent) and size for a model and tag; None when absent."""
    return open_clip_results().get((name, pretrained))

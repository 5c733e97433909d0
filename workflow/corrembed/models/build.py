"""The models front: build a parsed spec's network, preprocessing, extractor and ImageNet facts.

Every function takes the typed :class:`~corrembed.models.spec.ModelSpec` (parsed once, where a
config mapping enters: :func:`~corrembed.models.parse_model_spec`) and dispatches to the spec's
source (:func:`~corrembed.models.source.source_of`).

Examples
--------
>>> import torch
>>> from corrembed.models import parse_model_spec
>>> spec = parse_model_spec({"arch": "resnet18", "weights": None}, model_name="r18")
>>> model = build_model(spec)                       # random init, seeded, eval mode
>>> transform, description = build_transform(spec)  # PIL -> (3, 224, 224) float32
>>> embed = build_extractor(spec, model)            # (b, 3, 224, 224) -> (b, 512) float32
>>> tuple(embed(transform(torch.zeros(3, 256, 300, dtype=torch.uint8))[None]).shape)
(1, 512)
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from .preprocess import Preprocessing, ReferenceTransform
from .source import source_of
from .spec import IMAGENET_KEYS, ModelSpec

__all__ = [
    "build_extractor",
    "build_model",
    "build_transform",
    "imagenet_acc1_kind",
    "imagenet_metadata",
    "preprocessing",
    "require_parsed",
]


def require_parsed(spec: Any) -> ModelSpec:
    """``spec`` itself when it is a parsed :class:`ModelSpec`; TypeError otherwise.

    Parameters
    ----------
    spec : object
        What a front function was given.

    Returns
    -------
    ModelSpec

    Raises
    ------
    TypeError
        For a raw mapping (a programming error: parse it once with ``parse_model_spec``).

    Examples
    --------
    >>> require_parsed({"arch": "resnet18"})
    Traceback (most recent call last):
    ...
    TypeError: expected a parsed ModelSpec (corrembed.models.parse_model_spec), got dict
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"expected a parsed ModelSpec (corrembed.models.parse_model_spec), got {type(spec).__name__}")
    return spec


def build_model(
    spec: ModelSpec,
    *,
    torch_home: str | os.PathLike | None = None,
    hf_home: str | os.PathLike | None = None,
) -> nn.Module:
    """Build the spec's network on the CPU, in eval mode, with its weights loaded; never downloads.

    Parameters
    ----------
    spec : ModelSpec
        The parsed model (:func:`~corrembed.models.parse_model_spec`).
    torch_home : path or None
        The weights cache the weights step filled (needed for hub weights).
    hf_home : path or None
        The Hugging Face cache the weights step filled (default ``{torch_home}/huggingface``).

    Returns
    -------
    nn.Module
        In eval mode, on the CPU.
    """
    require_parsed(spec)
    return source_of(spec).build(spec, torch_home=torch_home, hf_home=hf_home).eval()


def preprocessing(
    spec: ModelSpec,
    *,
    torch_home: str | os.PathLike | None = None,
    hf_home: str | os.PathLike | None = None,
) -> Preprocessing:
    """The spec's resolved eval :class:`Preprocessing` (the source's own, with ``transforms:`` overrides).

    Parameters
    ----------
    spec : ModelSpec
        The parsed model.
    torch_home, hf_home : path or None
        The caches the weights step filled: hub models (open_clip ``hf-hub:``, Hugging Face ids)
        read their preprocessing config there.

    Returns
    -------
    Preprocessing
        Sizes in pixels, mean/std on the 0..1 scale.

    Raises
    ------
    WeightsUnavailableError
        A hub model whose config the weights step has not fetched yet.
    """
    require_parsed(spec)
    return source_of(spec).preprocessing(spec, torch_home=torch_home, hf_home=hf_home)


def build_transform(
    spec: ModelSpec,
    *,
    torch_home: str | os.PathLike | None = None,
    hf_home: str | os.PathLike | None = None,
) -> tuple[ReferenceTransform, dict[str, Any]]:
    """The spec's per-image preprocessing and a plain-dict description of it.

    Parameters
    ----------
    spec : ModelSpec
        The parsed model.
    torch_home, hf_home : path or None
        As :func:`preprocessing`.

    Returns
    -------
    transform : ReferenceTransform
        PIL image or uint8 (3, H, W) tensor -> float32 (3, crop, crop).
    description : dict
        :meth:`Preprocessing.describe` (written to meta.json; its pixel fields are in the cache identity).
    """
    resolved = preprocessing(spec, torch_home=torch_home, hf_home=hf_home)
    return resolved.transform(), resolved.describe()


def build_extractor(spec: ModelSpec, model: nn.Module) -> nn.Module:
    """A module mapping (b, 3, H, W) float inputs to (b, dim) float32 embeddings at the spec's layer.

    Parameters
    ----------
    spec : ModelSpec
        The parsed model (its ``layer``).
    model : nn.Module
        Its network (:func:`build_model`).

    Returns
    -------
    nn.Module
        The extractor (spatial maps are globally average-pooled).

    Raises
    ------
    ConfigError
        For a layer the model does not have.
    """
    require_parsed(spec)
    return source_of(spec).extractor(model, spec)


def imagenet_metadata(spec: ModelSpec) -> dict[str, Any]:
    """ImageNet-1k facts of a spec, without downloading anything.

    Parameters
    ----------
    spec : ModelSpec
        The parsed model.

    Returns
    -------
    dict
        ``{acc1, acc5, num_params, gflops}`` from the source (torchvision: the enum's
        ``weights.meta``; random init and checkpoints: parameters counted, the rest None), with
        the values given in the spec's ``imagenet:`` overriding them.
    """
    require_parsed(spec)
    values = source_of(spec).imagenet(spec)
    values.update(spec.imagenet)
    return {key: values.get(key) for key in IMAGENET_KEYS}


def imagenet_acc1_kind(spec: ModelSpec) -> str:
    """What the ImageNet top-1 of :func:`imagenet_metadata` is.

    Parameters
    ----------
    spec : ModelSpec
        The parsed model.

    Returns
    -------
    str
        ``"config"`` (given in the spec's ``imagenet:``), ``"supervised"`` (torchvision weights
        meta, timm's results table), ``"zero-shot"`` (open_clip's zero-shot table), or ``""``
        (no accuracy known).
    """
    require_parsed(spec)
    if spec.imagenet.get("acc1") is not None:
        return "config"
    values = source_of(spec).imagenet(spec)
    return str(values.get("acc1_kind") or "") if values.get("acc1") is not None else ""

"""Models from several libraries behind one small interface.

A config model entry is parsed once into a :class:`ModelSpec` (:mod:`.spec`); its ``source``
(:mod:`.source`: ``torchvision`` by default) builds the network, gives its preprocessing
(:mod:`.preprocess`), its embedding extractor (:mod:`.features`), the identity of its weights
and its ImageNet figures. The functions below are the front the rest of the package uses; each
accepts a parsed spec or a raw config mapping (parsed here, once).

Example
-------
>>> spec = parse_model_spec({"arch": "resnet18", "weights": None}, model_name="r18")
>>> model = build_model(spec)                       # random init, seeded, eval mode
>>> transform, description = build_transform(spec)  # PIL -> (3, 224, 224) float32
>>> embed = build_extractor(spec, model)            # (b, 3, 224, 224) -> (b, 512) float32
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from torch import nn

from .checkpoints import load_checkpoint_state_dict, load_state_dict_checked
from .features import FeatureExtractor, FunctionExtractor, final_classifier, pool_features
from .parse import parse_model_spec
from .preprocess import (
    DEFAULT_CROP_SIZE,
    DEFAULT_RESIZE_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TRANSFORM_KEYS,
    Preprocessing,
    ReferenceTransform,
)
from .source import SOURCES, MissingExtraError, ModelSource, get_source, install_command, source_of
from .spec import IMAGENET_KEYS, RUN_KEYS, SPEC_KEYS, ModelSpec, ResolvedWeights
from .torchvision_source import (
    RANDOM_INIT_SEED,
    available_archs,
    count_parameters,
    is_checkpoint_path,
    shape_only_model,
    torchvision_cache_file,
    weights_unavailable_message,
)

__all__ = [
    "DEFAULT_CROP_SIZE",
    "DEFAULT_RESIZE_SIZE",
    "IMAGENET_KEYS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RANDOM_INIT_SEED",
    "RUN_KEYS",
    "SOURCES",
    "SPEC_KEYS",
    "TRANSFORM_KEYS",
    "FeatureExtractor",
    "FunctionExtractor",
    "MissingExtraError",
    "ModelSource",
    "ModelSpec",
    "Preprocessing",
    "ReferenceTransform",
    "ResolvedWeights",
    "available_archs",
    "build_extractor",
    "build_model",
    "build_transform",
    "count_parameters",
    "final_classifier",
    "get_source",
    "imagenet_acc1_kind",
    "imagenet_metadata",
    "install_command",
    "is_checkpoint_path",
    "load_checkpoint_state_dict",
    "load_state_dict_checked",
    "parse_model_spec",
    "pool_features",
    "preprocessing",
    "shape_only_model",
    "source_of",
    "torchvision_cache_file",
    "weights_unavailable_message",
]


def build_model(
    spec: Mapping[str, Any] | ModelSpec,
    *,
    model_name: str = "model",
    torch_home: str | os.PathLike | None = None,
    hf_home: str | os.PathLike | None = None,
) -> nn.Module:
    """Build the spec's network on the CPU, in eval mode, with its weights loaded; never downloads.

    Parameters
    ----------
    spec : ModelSpec or mapping
        The model (a mapping is parsed with :func:`parse_model_spec`).
    model_name : str
        Name used when ``spec`` is a mapping.
    torch_home : path or None
        The weights cache the weights step filled (needed for hub weights).
    hf_home : path or None
        The Hugging Face cache the weights step filled (default ``{torch_home}/huggingface``).

    Returns
    -------
    nn.Module
        In eval mode, on the CPU.
    """
    spec = parse_model_spec(spec, model_name=model_name)
    return source_of(spec).build(spec, torch_home=torch_home, hf_home=hf_home).eval()


def preprocessing(
    spec: Mapping[str, Any] | ModelSpec,
    *,
    model_name: str = "model",
    torch_home: str | os.PathLike | None = None,
    hf_home: str | os.PathLike | None = None,
) -> Preprocessing:
    """The spec's resolved eval :class:`Preprocessing` (the source's own, with ``transforms:`` overrides).

    Hub models (open_clip ``hf-hub:``, Hugging Face ids) read their preprocessing config from
    the caches the weights step filled (``torch_home``, ``hf_home``).
    """
    spec = parse_model_spec(spec, model_name=model_name)
    return source_of(spec).preprocessing(spec, torch_home=torch_home, hf_home=hf_home)


def build_transform(
    spec: Mapping[str, Any] | ModelSpec,
    *,
    model_name: str = "model",
    torch_home: str | os.PathLike | None = None,
    hf_home: str | os.PathLike | None = None,
) -> tuple[ReferenceTransform, dict[str, Any]]:
    """The spec's per-image preprocessing and a plain-dict description of it.

    Returns
    -------
    transform : ReferenceTransform
        PIL image or uint8 (3, H, W) tensor -> float32 (3, crop, crop).
    description : dict
        :meth:`Preprocessing.describe` (written to meta.json; its pixel fields are in the cache identity).
    """
    resolved = preprocessing(spec, model_name=model_name, torch_home=torch_home, hf_home=hf_home)
    return resolved.transform(), resolved.describe()


def build_extractor(spec: Mapping[str, Any] | ModelSpec, model: nn.Module, *, model_name: str = "model") -> nn.Module:
    """A module mapping (b, 3, H, W) float inputs to (b, dim) float32 embeddings at the spec's layer.

    Raises
    ------
    ConfigError
        For a layer the model does not have.
    """
    spec = parse_model_spec(spec, model_name=model_name)
    return source_of(spec).extractor(model, spec)


def imagenet_metadata(spec: Mapping[str, Any] | ModelSpec, *, model_name: str = "model") -> dict[str, Any]:
    """ImageNet-1k facts of a spec, without downloading anything.

    Returns
    -------
    dict
        ``{acc1, acc5, num_params, gflops}`` from the source (torchvision: the enum's
        ``weights.meta``; random init and checkpoints: parameters counted, the rest None), with
        the values given in the spec's ``imagenet:`` overriding them.
    """
    spec = parse_model_spec(spec, model_name=model_name)
    values = source_of(spec).imagenet(spec)
    values.update(spec.imagenet)
    return {key: values.get(key) for key in IMAGENET_KEYS}


def imagenet_acc1_kind(spec: Mapping[str, Any] | ModelSpec, *, model_name: str = "model") -> str:
    """What the ImageNet top-1 of :func:`imagenet_metadata` is.

    Returns
    -------
    str
        ``"config"`` (given in the spec's ``imagenet:``), ``"supervised"`` (torchvision weights
        meta, timm's results table), ``"zero-shot"`` (open_clip's zero-shot table), or ``""``
        (no accuracy known).
    """
    spec = parse_model_spec(spec, model_name=model_name)
    if spec.imagenet.get("acc1") is not None:
        return "config"
    values = source_of(spec).imagenet(spec)
    return str(values.get("acc1_kind") or "") if values.get("acc1") is not None else ""

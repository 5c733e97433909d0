"""A model spec, parsed once: the config's ``models:`` entry as a typed :class:`ModelSpec`.

A *model spec* is one entry of the config ``models:`` mapping (name -> dict)::

    {source: "torchvision",                  # default; or "timm", "open_clip", "huggingface"
     arch: "resnet50",                       # the source's model name
     weights: ...,                           # the source's weights reference, or null (random init)
     layer: ...,                             # default: the source's default layer
     transforms: {resize_size, crop_size, mean, std, interpolation},  # optional overrides
     imagenet: {acc1, acc5, num_params, gflops}}                   # optional, for checkpoints

This module is pure data: the types, the key lists and the checks of plain values. It imports
no source, so every source module can use it; :func:`corrembed.models.parse.parse_model_spec`,
above both this module and the source registry, turns a mapping into a :class:`ModelSpec`.
Everything downstream (weights step, check step, embed stage, cache identity, summary) takes
the parsed :class:`ModelSpec`, never the raw mapping.
``source: python`` names its model by ``factory:`` (weights optional) and ``source: precomputed``
by ``embeddings:`` (no weights): a source's ``arch_key`` / ``weights_required`` say so.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: Keys every source understands.
SPEC_KEYS = ("source", "arch", "weights", "layer", "transforms", "imagenet")
#: Keys of a config model entry that concern the embed job, not the model itself.
RUN_KEYS = ("precision", "decoder")
#: Keys of a config model entry read by the diagnostics (the layer sweep), not by the embed job.
DIAGNOSTIC_KEYS = ("layers",)
IMAGENET_KEYS = ("acc1", "acc5", "num_params", "gflops")
DEFAULT_SOURCE = "torchvision"
#: Spec keys only one source understands (its ``extra_keys``), by source name.
SOURCE_OPTION_KEYS: dict[str, tuple[str, ...]] = {
    "torchvision": (),
    "timm": (),
    "open_clip": (),
    "huggingface": ("trust_remote_code",),
    "python": ("factory", "kwargs"),
    "precomputed": ("embeddings", "ids", "key", "on_missing"),
}
#: Keys of a config model entry that change its embeddings (beside the run keys precision and
#: decoder, which the embed rule passes on their own): what an embed job sees as its spec.
#: ``workflow/rules/common.smk`` holds the same tuple; tests/test_spec_keys.py checks both, and
#: every key list here, against the config schema (the source of truth).
EMBEDDING_KEYS = tuple(key for key in SPEC_KEYS if key != "imagenet") + tuple(
    key for keys in SOURCE_OPTION_KEYS.values() for key in keys
)


@dataclass(frozen=True)
class ResolvedWeights:
    """What ``weights:`` in a model spec refers to.

    Attributes
    ----------
    kind : str
        ``"torchvision"`` (a torchvision weights enum member), ``"pretrained"`` (a hub tag of
        another source), ``"checkpoint"`` (a local file or folder) or ``"random"`` (seeded init).
    configured : str or None
        The value as written in the config (``None`` for random init).
    enum : torchvision WeightsEnum member or None
        The resolved enum member (``DEFAULT`` resolved) for ``kind == "torchvision"``.
    path : Path or None
        The checkpoint file or folder (absolute) for ``kind == "checkpoint"``.
    tag : str or None
        The hub reference for ``kind == "pretrained"`` (timm ``name.tag``, an open_clip tag,
        ``hf-hub:org/repo``, a Hugging Face model id).
    """

    kind: str
    configured: str | None
    enum: Any = None
    path: Path | None = None
    tag: str | None = None

    @property
    def resolved(self) -> str | None:
        """``"ResNet50_Weights.IMAGENET1K_V2"``, the hub tag, the checkpoint path, or ``None``."""
        if self.enum is not None:
            return f"{type(self.enum).__name__}.{self.enum.name}"
        if self.tag is not None:
            return self.tag
        if self.path is not None:
            return str(self.path)
        return None


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec (see the module docstring).

    Attributes
    ----------
    name : str
        The config key naming the model (used in every message).
    arch : str
        The source's model name (``resnet50``, ``tf_efficientnet_lite0``, ``ViT-B-32``, ...).
    weights : ResolvedWeights
        What the weights are.
    layer : str
        Where embeddings are taken (source-specific names; see each source module). The
        default when a config gives none is the source's ``default_layer`` (set by the parser).
    transform_overrides : dict
        The config's validated ``transforms:`` overrides.
    imagenet : dict
        The config's validated ``imagenet:`` figures.
    source : str
        ``"torchvision"`` (default), ``"timm"``, ``"open_clip"`` or ``"huggingface"``.
    options : dict
        Source-specific extra keys (e.g. ``trust_remote_code`` for Hugging Face).

    Examples
    --------
    >>> from corrembed.models import parse_model_spec
    >>> spec = parse_model_spec({"arch": "resnet18", "weights": None}, model_name="r18")
    >>> spec.name, spec.source, spec.layer, spec.weights.kind
    ('r18', 'torchvision', 'penultimate', 'random')
    """

    name: str
    arch: str
    weights: ResolvedWeights
    layer: str
    transform_overrides: dict[str, Any] = field(default_factory=dict)
    imagenet: dict[str, Any] = field(default_factory=dict)
    source: str = DEFAULT_SOURCE
    options: dict[str, Any] = field(default_factory=dict)


def reject_unknown_keys(mapping: Mapping, allowed: tuple[str, ...], where: str) -> None:
    """Raise ConfigError for the first key of ``mapping`` not in ``allowed`` (closest key suggested).

    Parameters
    ----------
    mapping : Mapping
        The config section checked.
    allowed : tuple of str
        Its valid keys.
    where : str
        The section's name in the message (``"model 'r50'"``).
    """
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}")


def validate_imagenet(values: Any, model_name: str) -> dict[str, Any]:
    """Validate a spec's ``imagenet:`` mapping: numbers only, ``num_params`` as an int.

    Returns
    -------
    dict
        ``{key: float or int}`` for the keys given (None values dropped).
    """
    where = f"model {model_name!r} imagenet"
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(IMAGENET_KEYS)}, got {values!r}")
    reject_unknown_keys(values, IMAGENET_KEYS, where)
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        clean[key] = int(value) if key == "num_params" else float(value)
    return clean

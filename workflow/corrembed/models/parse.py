"""Parsing a config model entry into a :class:`~corrembed.models.spec.ModelSpec`.

The layering follows timm's (``_pretrained`` <- ``_registry`` <- ``_builder``): the pure-data
spec types (:mod:`.spec`) and the preprocessing record (:mod:`.preprocess`) import no source;
the source registry (:mod:`.source`) loads the source modules, which use those types; this
module sits above all of them and is the one place a raw mapping becomes a ``ModelSpec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .preprocess import validate_transform_overrides
from .source import get_source
from .spec import (
    DEFAULT_SOURCE,
    DIAGNOSTIC_KEYS,
    RUN_KEYS,
    SPEC_KEYS,
    ModelSpec,
    reject_unknown_keys,
    validate_imagenet,
)

__all__ = ["parse_model_spec"]


def parse_model_spec(spec: Mapping[str, Any] | ModelSpec, *, model_name: str, check_files: bool = True) -> ModelSpec:
    """Validate a config model spec and resolve it through its source.

    Parameters
    ----------
    spec : mapping or ModelSpec
        The config entry; an already parsed :class:`ModelSpec` is returned unchanged.
    model_name : str
        The config key of the model, named in every error.
    check_files : bool
        Whether a checkpoint path must exist (it is not read here).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ConfigError
        For an unknown key or source, an unknown arch, weights or layer (close matches
        listed), bad transform overrides or ImageNet figures, a missing ``weights:`` key (random
        init must be asked for with ``weights: null``), a missing checkpoint (``check_files``),
        or a source whose package is not installed (the ``pip install`` command is given).

    Examples
    --------
    >>> spec = parse_model_spec({"arch": "resnet50", "weights": "DEFAULT"}, model_name="r50")
    >>> spec.weights.resolved, spec.layer
    ('ResNet50_Weights.IMAGENET1K_V2', 'penultimate')
    >>> parse_model_spec(spec, model_name="r50") is spec
    True
    >>> try:
    ...     parse_model_spec({"arch": "resnet5", "weights": None}, model_name="m")
    ... except ConfigError as exc:
    ...     print(str(exc).split(";")[0])
    model 'm': unknown arch 'resnet5'
    """
    if isinstance(spec, ModelSpec):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"model {model_name!r}: expected a mapping with keys {', '.join(SPEC_KEYS)}, got {type(spec).__name__}"
        )
    source_name = spec.get("source") or DEFAULT_SOURCE
    source = get_source(source_name, model_name=model_name)
    reject_unknown_keys(
        spec, SPEC_KEYS + RUN_KEYS + DIAGNOSTIC_KEYS + source.extra_keys, f"model {model_name!r} (source {source_name})"
    )
    # A source may name its model by another key (python: factory) and make weights optional.
    if source.arch_key not in spec:
        raise ConfigError(f"model {model_name!r}: missing {source.arch_key!r} ({source.arch_help})")
    if "weights" not in spec and source.weights_required:
        raise ConfigError(
            f"model {model_name!r}: missing 'weights'. {source.weights_help} Or write 'weights: null' for a "
            "random initialisation (never chosen silently)."
        )
    arch = source.resolve_arch(spec[source.arch_key], model_name=model_name)
    weights = source.resolve_weights(arch, spec.get("weights"), model_name=model_name, check_files=check_files)
    layer = spec.get("layer")
    if layer is None:
        layer = source.default_layer
    if not isinstance(layer, str) or not layer:
        raise ConfigError(
            f"model {model_name!r}: 'layer' must be a non-empty string ({source.layer_help}), got {layer!r}"
        )
    layer = source.resolve_layer(layer, model_name=model_name)
    overrides = validate_transform_overrides(spec.get("transforms") or {}, model_name)
    imagenet = validate_imagenet(spec.get("imagenet") or {}, model_name)
    options = source.resolve_options(spec, model_name=model_name)
    return ModelSpec(model_name, arch, weights, layer, overrides, imagenet, source.name, options)

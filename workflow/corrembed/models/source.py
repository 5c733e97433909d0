"""The model-source interface and its registry.

A *source* is one library models come from. Each lives in one module
(``torchvision_source.py``, ``timm_source.py``, ...) exposing a ``SOURCE`` object that satisfies
:class:`ModelSource`; adding a source is adding such a module and one line to :data:`SOURCES`.
The package a source needs is imported only when a spec uses it: a missing one stops at
start-up with the exact ``pip install`` command (:func:`get_source`).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from .preprocess import Preprocessing
    from .spec import ModelSpec, ResolvedWeights


class MissingExtraError(ConfigError):
    """A spec uses a source whose optional package is not installed."""


class ModelSource(Protocol):
    """What a model source provides (one object per source module, named ``SOURCE``).

    Attributes
    ----------
    name : str
        The ``source:`` value.
    package : str or None
        The import name of the library the source needs beyond the core dependencies.
    extra : str or None
        The package extra that installs it (``pip install 'corrembed[EXTRA]'``).
    default_layer : str
        The ``layer:`` used when the spec gives none.
    extra_keys : tuple of str
        Spec keys only this source understands.
    arch_key : str
        The spec key that names the model (``arch``; ``factory`` for python, ``embeddings`` for
        precomputed).
    weights_required : bool
        Whether the spec must say ``weights:`` (random init is never chosen silently).
    arch_help, weights_help, layer_help : str
        One-line explanations used in error messages.
    """

    name: str
    package: str | None
    extra: str | None
    default_layer: str
    extra_keys: tuple[str, ...]
    arch_key: str
    weights_required: bool
    arch_help: str
    weights_help: str
    layer_help: str

    def resolve_arch(self, arch: Any, *, model_name: str) -> str:
        """The canonical model name, or ConfigError listing close matches."""

    def resolve_weights(self, arch: str, weights: Any, *, model_name: str, check_files: bool) -> ResolvedWeights:
        """What ``weights:`` refers to, or ConfigError listing the valid values."""

    def resolve_layer(self, layer: str, *, model_name: str) -> str:
        """The layer name (checks what can be checked without building the model)."""

    def resolve_options(self, spec: Any, *, model_name: str) -> dict[str, Any]:
        """The source's extra keys, validated."""

    def build(
        self, spec: ModelSpec, *, torch_home: str | os.PathLike | None, hf_home: str | os.PathLike | None = None
    ) -> nn.Module:
        """The network on the CPU, eval mode, weights loaded from the caches; never downloads."""

    def fetch(
        self,
        spec: ModelSpec,
        *,
        torch_home: str | os.PathLike | None,
        hf_home: str | os.PathLike | None = None,
        allow_download: bool = True,
        timeout: float = 10,
        check_hash: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """The weights step (:func:`corrembed.models.weights.ensure_weights`) for weights of the
        source's own kind (torchvision enums, hub tags): into the caches, downloading when allowed.
        Returns what it learnt for the weights record (``{path, bytes, sha256}``, ``{resolved}``, ...);
        raises WeightsUnavailableError naming the file and how to fill the cache. Hub sources
        use :func:`corrembed.models.hub.hub_fetch`."""

    def preprocessing(
        self, spec: ModelSpec, *, torch_home: str | os.PathLike | None = None, hf_home: str | os.PathLike | None = None
    ) -> Preprocessing:
        """The model's own eval preprocessing with the spec's overrides applied (hub configs read
        from the caches; WeightsUnavailableError before the weights step fetched them)."""

    def extractor(self, model: nn.Module, spec: ModelSpec) -> nn.Module:
        """A module mapping (b, 3, H, W) float inputs to (b, dim) float32 embeddings at ``spec.layer``."""

    def weights_identity(self, spec: ModelSpec) -> dict[str, Any]:
        """What identifies the weights' values (JSON-able), for the embedding cache identity."""

    def imagenet(self, spec: ModelSpec) -> dict[str, Any]:
        """ImageNet figures ``{acc1, acc5, num_params, gflops, acc1_kind}`` without downloading."""

    def check(self, spec: ModelSpec) -> dict[str, Any]:
        """Cheap start-up check (no weights download); returns what was checked."""


#: Source name -> module (relative to this package) holding its ``SOURCE`` object.
SOURCES = {
    "torchvision": ".torchvision_source",
    "timm": ".timm_source",
    "open_clip": ".open_clip_source",
    "huggingface": ".huggingface_source",
    "python": ".python_source",
    "precomputed": ".precomputed_source",
}
#: Source name -> (import name, extra) of the optional package it needs.
SOURCE_PACKAGES: dict[str, tuple[str, str]] = {
    "timm": ("timm", "timm"),
    "open_clip": ("open_clip", "open_clip"),
    "huggingface": ("transformers", "huggingface"),
}


def install_command(extra: str) -> str:
    """The exact command that installs an optional extra of this package."""
    return f"pip install 'corrembed[{extra}]'"


def get_source(name: Any, *, model_name: str = "model") -> ModelSource:
    """The :class:`ModelSource` registered as ``name``.

    Raises
    ------
    ConfigError
        For an unknown source name (the valid ones listed).
    MissingExtraError
        When the source's package is not installed (the ``pip install`` command given).
    """
    if not isinstance(name, str) or name not in SOURCES:
        close = difflib.get_close_matches(str(name), list(SOURCES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"model {model_name!r}: unknown source {name!r}{hint}; 'source' must be one of {', '.join(SOURCES)}"
        )
    if name in SOURCE_PACKAGES:
        package, extra = SOURCE_PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise MissingExtraError(
                f"model {model_name!r}: source {name!r} needs the Python package {package!r}, which is not "
                f"installed in this environment. Install it with: {install_command(extra)}"
            )
    return importlib.import_module(SOURCES[name], __package__).SOURCE


def source_of(spec: ModelSpec) -> ModelSource:
    """The :class:`ModelSource` of a parsed spec.

    Parameters
    ----------
    spec : ModelSpec
        A parsed spec (:func:`corrembed.models.parse_model_spec`).

    Returns
    -------
    ModelSource
        The object of the spec's ``source`` module.

    Examples
    --------
    >>> from corrembed.models import parse_model_spec
    >>> source_of(parse_model_spec({"arch": "resnet18", "weights": None}, model_name="r18")).name
    'torchvision'
    """
    return get_source(spec.source, model_name=spec.name)

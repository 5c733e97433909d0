"""Cheap start-of-run checks of a model spec: everything that can be wrong with it except the
weights download, found before any image is embedded.

The embed stage would find these problems only after ingest and while building each model; the
workflow's ``check_model`` rule runs :func:`check_model_spec` first (local, with priority) so a
typo stops the run at once: unknown source, arch (close matches listed) or weights (valid ones
listed), a missing optional package (install command given), bad transform overrides, a layer
the model does not have, a checkpoint file that is missing, unreadable or does not fit the
architecture (first mismatching keys listed). Each source checks its own way without reading
hub weights (torchvision: the network on PyTorch's ``meta`` device, no memory allocated).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import WeightsUnavailableError
from .build import preprocessing
from .layer_sweep import sweep_plan
from .parse import parse_model_spec
from .source import source_of
from .spec import ModelSpec


def check_model_spec(
    spec: Mapping[str, Any] | ModelSpec,
    *,
    model_name: str,
    torch_home: str | os.PathLike | None = None,
    hf_home: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Validate a model spec without embedding anything.

    Parameters
    ----------
    spec : ModelSpec or mapping
        The model (a mapping is parsed here, with checkpoint files required to exist).
    model_name : str
        The config key of the model, named in every error.
    torch_home, hf_home : path or None
        The weights caches: hub models whose configs are cached already are checked fully;
        the others are checked by the weights step (``transforms`` is then None here).

    Returns
    -------
    dict
        ``{model, source, arch, weights, kind, layer, transforms}``: what was checked.

    Raises
    ------
    ConfigError
        Naming the model and the key that is wrong.
    """
    spec = parse_model_spec(spec, model_name=model_name, check_files=True)
    source_of(spec).check(spec)
    try:
        transforms = preprocessing(spec, torch_home=torch_home, hf_home=hf_home).describe()
    except WeightsUnavailableError:
        transforms = None  # a hub model's preprocessing config arrives with the weights step
    return {
        "model": spec.name,
        "source": spec.source,
        "arch": spec.arch,
        "weights": spec.weights.configured,
        "kind": spec.weights.kind,
        "layer": spec.layer,
        "transforms": transforms,
    }


def check_layer_sweep(spec: Mapping[str, Any] | ModelSpec, layers: list, *, model_name: str) -> dict[str, Any]:
    """Validate a model's ``layers:`` list on its shape-only network (nothing embedded or downloaded).

    Returns
    -------
    dict
        ``{model, entries, layers, relative_depth}``: each entry resolved to its layer name.

    Raises
    ------
    ConfigError
        Naming the model and the entry that is wrong (see
        :func:`corrembed.models.layer_sweep.sweep_plan`).
    """
    spec = parse_model_spec(spec, model_name=model_name, check_files=False)
    plan = sweep_plan(spec, layers)
    return {
        "model": spec.name,
        "entries": list(plan.entries),
        "layers": list(plan.layers),
        "relative_depth": [round(d, 4) for d in plan.depth],
    }

"""Cheap start-of-run checks of a model spec: everything that can be wrong with it except the
weights download, found before any image is embedded.

The embed stage would find these problems only after ingest and while building each model; the
workflow's ``check_model`` rule runs :func:`check_model_spec` first (local, with priority) so a
typo stops the run at once: unknown arch (close matches listed), unknown weights enum (valid ones
listed), bad transform overrides, a layer that is not a graph node (the nodes near the
classifier listed), a checkpoint file that is missing, unreadable or does not fit the
architecture (first mismatching keys listed). The network is built on PyTorch's ``meta`` device
where the builder allows it, so no memory is allocated and no weights are read except a
checkpoint's.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from .models import (
    FeatureExtractor,
    ModelSpec,
    _shape_only_model,
    build_transform,
    load_checkpoint_state_dict,
    load_state_dict_checked,
    parse_model_spec,
)


def check_model_spec(spec: Mapping[str, Any] | ModelSpec, *, model_name: str) -> dict[str, Any]:
    """Validate a model spec without embedding anything; raise ConfigError naming the problem.

    Returns a record ``{model, arch, weights, kind, layer, transforms}`` of what was checked.
    """
    spec = parse_model_spec(spec, model_name=model_name, check_files=True)
    _, transforms = build_transform(spec)
    model = _shape_only_model(spec.arch).eval()
    if spec.weights.kind == "checkpoint":
        state_dict = load_checkpoint_state_dict(spec.weights.path, model_name=spec.name)
        with warnings.catch_warnings():
            # Copying into meta tensors is a no-op by design: only the keys and shapes matter.
            warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter.*")
            load_state_dict_checked(
                model, state_dict, model_name=spec.name, source=spec.weights.path, arch=spec.arch
            )
    FeatureExtractor(model, spec.layer, model_name=spec.name)  # raises for unknown layers
    return {
        "model": spec.name,
        "arch": spec.arch,
        "weights": spec.weights.configured,
        "kind": spec.weights.kind,
        "layer": spec.layer,
        "transforms": transforms,
    }

"""Models from several libraries behind one small interface.

A config model entry is parsed once into a :class:`ModelSpec` (:func:`parse_model_spec`); its
``source`` (``torchvision`` by default) builds the network, gives its preprocessing, its
embedding extractor, the identity of its weights and its ImageNet figures. Layered: each
module imports only modules listed before it (a source may use another source's helpers):

- :mod:`.spec` the pure-data spec types and key lists; :mod:`.preprocess` the one
  preprocessing record (:class:`Preprocessing`) and its per-image and per-batch application;
- :mod:`.features`, :mod:`.checkpoints`, :mod:`.hub` (caches, offline mode, the one hub fetch),
  :mod:`.download`, :mod:`.accuracy_tables`: what the sources share;
- ``*_source.py``: one module per source; :mod:`.source` the protocol and the registry;
- :mod:`.parse` :func:`parse_model_spec`; :mod:`.build` the front below (parsed specs only);
- :mod:`.layer_sweep` several layers in one pass; :mod:`.weights` the weights step;
  :mod:`.checks` the start-up checks.

Example
-------
>>> spec = parse_model_spec({"arch": "resnet18", "weights": None}, model_name="r18")
>>> model = build_model(spec)                       # random init, seeded, eval mode
>>> transform, description = build_transform(spec)  # PIL -> (3, 224, 224) float32
>>> embed = build_extractor(spec, model)            # (b, 3, 224, 224) -> (b, 512) float32
"""

from __future__ import annotations

from .build import (
    build_extractor,
    build_model,
    build_transform,
    imagenet_acc1_kind,
    imagenet_metadata,
    preprocessing,
)
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

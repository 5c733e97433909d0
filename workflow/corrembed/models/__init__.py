"""Models from several libraries behind one small interface.

A config model entry is parsed once into a :class:`ModelSpec` (:mod:`.spec`); its ``source``
(:mod:`.source`: ``torchvision`` by default) builds the network, gives its preprocessing
(:mod:`.preprocess`), its embedding extractor (:mod:`.features`), the identity of its weights
and its ImageNet figures. The functions below are the front the rest of the package uses; each
takes the parsed spec (:mod:`.build`): a raw config mapping is parsed once, where it enters.

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

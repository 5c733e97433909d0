"""Torchvision classification models: weights, transforms, embedding layers, ImageNet metadata.

A *model spec* is one entry of the config ``models:`` mapping (name -> dict)::

    {arch: "resnet50",                       # torchvision.models.list_models(module=torchvision.models)
     weights: "DEFAULT" | "IMAGENET1K_V2"    # an enum member of the arch's weights (DEFAULT resolves)
              | "/path/ckpt.pth"             # a local state dict (path separator or .pt/.pth/.bin)
              | null,                        # random init, explicitly requested, seeded
     layer: "penultimate" | "output" | <graph node name>,         # default "penultimate"
     transforms: {resize_size, crop_size, mean, std, interpolation},  # optional overrides
     imagenet: {acc1, acc5, num_params, gflops}}                   # optional, for checkpoints

Everything follows torchvision's own handling: weights enums via ``get_model_weights`` /
``get_weight``, preprocessing via ``weights.transforms()``, intermediate layers via
``torchvision.models.feature_extraction``. Nothing here downloads; pretrained enum weights are
read from the torch.hub cache that :mod:`corrembed.weights` fills.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models import SwinTransformer, get_model, get_model_weights, list_models
from torchvision.models._api import WeightsEnum
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from .errors import ConfigError, WeightsUnavailableError

#: Seed of the random initialisation (``weights: null``), so random-init embeddings reproduce.
RANDOM_INIT_SEED = 0

#: Preprocessing for checkpoints and random init: torchvision's classic ImageNet recipe.
DEFAULT_RESIZE_SIZE = 256
DEFAULT_CROP_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SPEC_KEYS = ("arch", "weights", "layer", "transforms", "imagenet")
# Keys of a config model entry that concern the embed job, not the model itself.
RUN_KEYS = ("precision", "decoder")
TRANSFORM_KEYS = ("resize_size", "crop_size", "mean", "std", "interpolation")
IMAGENET_KEYS = ("acc1", "acc5", "num_params", "gflops")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin")
SPECIAL_LAYERS = ("penultimate", "output")

WeightsKind = Literal["torchvision", "checkpoint", "random"]


# --------------------------------------------------------------------------- spec resolution


@dataclass(frozen=True)
class ResolvedWeights:
    """What ``weights:`` in a model spec refers to.

    kind: "torchvision" (an enum member), "checkpoint" (a local file) or "random" (seeded init).
    configured: the value as written in the config (``None`` for random init).
    enum: the resolved torchvision enum member (``DEFAULT`` resolved), else ``None``.
    path: the checkpoint file (absolute), else ``None``.
    """

    kind: WeightsKind
    configured: str | None
    enum: WeightsEnum | None = None
    path: Path | None = None

    @property
    def resolved(self) -> str | None:
        """``"ResNet50_Weights.IMAGENET1K_V2"``, the checkpoint path, or ``None`` (random)."""
        if self.enum is not None:
            return f"{type(self.enum).__name__}.{self.enum.name}"
        if self.path is not None:
            return str(self.path)
        return None


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec (see the module docstring).

    name: the config key naming the model; arch: torchvision builder name; layer: where
    embeddings are taken; transform_overrides / imagenet: the config's optional mappings.
    """

    name: str
    arch: str
    weights: ResolvedWeights
    layer: str = "penultimate"
    transform_overrides: dict[str, Any] = field(default_factory=dict)
    imagenet: dict[str, Any] = field(default_factory=dict)


def available_archs() -> list[str]:
    """Names of torchvision's classification models (``list_models(module=torchvision.models)``)."""
    return list_models(module=torchvision.models)


def parse_model_spec(spec: Mapping[str, Any] | ModelSpec, *, model_name: str,
                     check_files: bool = True) -> ModelSpec:
    """Validate a config model spec and resolve its arch and weights.

    Raises :class:`ConfigError` for an unknown key, arch, weights enum or transform override,
    for a missing ``weights:`` key (random init must be asked for with ``weights: null``), and,
    with ``check_files``, for a checkpoint file that does not exist (it is not read here).
    """
    if isinstance(spec, ModelSpec):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"model {model_name!r}: expected a mapping with keys {', '.join(SPEC_KEYS)}, "
            f"got {type(spec).__name__}"
        )
    _reject_unknown_keys(spec, SPEC_KEYS + RUN_KEYS, f"model {model_name!r}")
    if "arch" not in spec:
        raise ConfigError(f"model {model_name!r}: missing 'arch' (a torchvision model name such as resnet50)")
    if "weights" not in spec:
        raise ConfigError(
            f"model {model_name!r}: missing 'weights'. Write e.g. 'weights: DEFAULT' for the "
            "recommended pretrained weights, a weights enum name (IMAGENET1K_V2, ...), a checkpoint "
            "path, or 'weights: null' for a random initialisation (never chosen silently)."
        )
    arch = resolve_arch(spec["arch"], model_name=model_name)
    weights = resolve_weights(arch, spec["weights"], model_name=model_name, check_files=check_files)
    layer = spec.get("layer", "penultimate")
    if layer is None:
        layer = "penultimate"
    if not isinstance(layer, str) or not layer:
        raise ConfigError(
            f"model {model_name!r}: 'layer' must be 'penultimate', 'output' or a graph node name "
            f"(string), got {layer!r}"
        )
    overrides = _validate_transform_overrides(spec.get("transforms") or {}, model_name)
    imagenet = _validate_imagenet(spec.get("imagenet") or {}, model_name)
    return ModelSpec(model_name, arch, weights, layer, overrides, imagenet)


def resolve_arch(arch: Any, *, model_name: str) -> str:
    """Return ``arch`` if torchvision has a classification model of that name, else ConfigError."""
    names = available_archs()
    if isinstance(arch, str) and arch in names:
        return arch
    if isinstance(arch, str) and arch.lower() in names:
        return arch.lower()
    close = difflib.get_close_matches(str(arch).lower(), names, n=6, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"model {model_name!r}: unknown arch {arch!r}; torchvision {torchvision.__version__} has no "
        f"classification model of that name.{hint} All names: "
        "torchvision.models.list_models(module=torchvision.models)."
    )


def is_checkpoint_path(value: str) -> bool:
    """True if a ``weights:`` string names a local file rather than a weights enum member."""
    return ("/" in value or os.sep in value or "\\" in value
            or value.lower().endswith(CHECKPOINT_SUFFIXES))


def resolve_weights(arch: str, weights: Any, *, model_name: str, check_files: bool = True) -> ResolvedWeights:
    """Resolve a ``weights:`` value for ``arch`` (see :class:`ResolvedWeights`).

    Enum names may be given bare (``IMAGENET1K_V2``, ``DEFAULT``; case-insensitive) or in full
    (``ResNet50_Weights.IMAGENET1K_V2``). Unknown names raise ConfigError listing the valid ones;
    with ``check_files``, a checkpoint path that does not exist raises ConfigError.
    """
    if weights is None:
        return ResolvedWeights("random", None)
    if not isinstance(weights, str | os.PathLike) or not str(weights):
        raise ConfigError(
            f"model {model_name!r}: 'weights' must be a weights enum name, a checkpoint path or "
            f"null, got {weights!r}"
        )
    value = str(weights)
    if isinstance(weights, os.PathLike) or is_checkpoint_path(value):
        path = Path(value).expanduser().resolve()
        if check_files and not path.is_file():
            raise ConfigError(
                f"model {model_name!r}: checkpoint file {path} (weights: {value!r}) does not exist. "
                "Give the path of a torch.save()d state dict of torchvision "
                f"{arch}(), relative to the working directory or absolute."
            )
        return ResolvedWeights("checkpoint", value, path=path)

    enum_cls = get_model_weights(arch)
    members = enum_cls.__members__  # includes the DEFAULT alias
    name = value
    prefix = f"{enum_cls.__name__}."
    if name.startswith(prefix):
        name = name[len(prefix):]
    by_upper = {k.upper(): k for k in members}
    if name.upper() in by_upper:
        return ResolvedWeights("torchvision", value, enum=members[by_upper[name.upper()]])
    valid = list(members)
    close = difflib.get_close_matches(name.upper(), valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"model {model_name!r}: {arch} has no weights {value!r}.{hint} Valid weights for {arch}: "
        f"{', '.join(valid)} (enum {enum_cls.__name__}); or a checkpoint path, or null for random init."
    )


def _reject_unknown_keys(mapping: Mapping, allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}")


def _validate_transform_overrides(overrides: Any, model_name: str) -> dict[str, Any]:
    where = f"model {model_name!r} transforms"
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(TRANSFORM_KEYS)}, got {overrides!r}")
    _reject_unknown_keys(overrides, TRANSFORM_KEYS, where)
    clean: dict[str, Any] = {}
    for key in ("resize_size", "crop_size"):
        if key in overrides:
            value = overrides[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{where}: {key} must be a positive integer (pixels), got {value!r}")
            clean[key] = int(value)
    for key in ("mean", "std"):
        if key in overrides:
            clean[key] = _three_floats(overrides[key], f"{where}: {key}", positive=key == "std")
    if "interpolation" in overrides:
        clean["interpolation"] = _interpolation(overrides["interpolation"], where).value
    return clean


def _three_floats(value: Any, where: str, *, positive: bool) -> list[float]:
    values = [value] * 3 if isinstance(value, int | float) and not isinstance(value, bool) else value
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        floats = []
    if len(floats) != 3 or (positive and min(floats) <= 0):
        need = "positive numbers" if positive else "numbers"
        raise ConfigError(f"{where} must be one or three (R, G, B) {need}, got {value!r}")
    return floats


def _interpolation(name: Any, where: str) -> InterpolationMode:
    modes = {m.value: m for m in InterpolationMode}
    key = str(name).lower().replace("_", "-")
    if key not in modes:
        raise ConfigError(f"{where}: unknown interpolation {name!r}; use one of {', '.join(modes)}")
    return modes[key]


def _validate_imagenet(values: Any, model_name: str) -> dict[str, Any]:
    where = f"model {model_name!r} imagenet"
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(IMAGENET_KEYS)}, got {values!r}")
    _reject_unknown_keys(values, IMAGENET_KEYS, where)
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        clean[key] = int(value) if key == "num_params" else float(value)
    return clean


# --------------------------------------------------------------------------- building models


def torchvision_cache_file(weights: WeightsEnum, torch_home: str | os.PathLike) -> Path:
    """Where torch.hub keeps an enum's file: ``{torch_home}/hub/checkpoints/{basename(url)}``."""
    return Path(torch_home).expanduser() / "hub" / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def weights_unavailable_message(spec: ModelSpec, path: Path, reason: str) -> str:
    """The message of a :class:`WeightsUnavailableError` for enum weights expected at ``path``:
    names the model, the enum, the file, its URL, the folder, and how to work offline."""
    url = spec.weights.enum.url
    return (
        f"model {spec.name!r}: pretrained weights {spec.weights.resolved} for {spec.arch} are not in "
        f"the cache and cannot be fetched ({reason}).\n"
        f"  needed file: {path.name}\n"
        f"  from URL:    {url}\n"
        f"  put it in:   {path.parent.resolve()}\n"
        "To run offline, either: download it on a machine with internet (e.g. "
        f"`curl -L -o {path.name} {url}`) and copy it into {path.parent.resolve()}; or point "
        "`torch_home` at an existing, pre-filled torch cache (its hub/checkpoints/ folder holds "
        "the file); or set this model's `weights:` to a local checkpoint path."
    )


@contextlib.contextmanager
def _torch_hub_dir(hub_dir: Path) -> Iterator[None]:
    # torchvision's builders read pretrained files through torch.hub's global cache dir; point it
    # at our cache for the duration of the build only, then restore whatever was set before.
    previous = torch.hub._hub_dir
    torch.hub.set_dir(str(hub_dir))
    try:
        yield
    finally:
        torch.hub._hub_dir = previous


def build_model(spec: Mapping[str, Any] | ModelSpec, *, model_name: str = "model",
                torch_home: str | os.PathLike | None = None) -> nn.Module:
    """Build the spec's model on the CPU, in eval mode, with its weights loaded.

    - torchvision enum weights: built by torchvision's own builder (which also sets weight-
      dependent arguments such as ViT's image size) from the file already in
      ``{torch_home}/hub/checkpoints``; never downloads (:class:`WeightsUnavailableError` if the
      file is missing: run the weights stage first).
    - checkpoint: ``get_model(arch)`` then a strict ``load_state_dict``; a state dict that does
      not fit raises :class:`ConfigError` naming the first mismatching keys.
    - random: ``get_model(arch)`` initialised under ``torch.manual_seed(RANDOM_INIT_SEED)``
      (the global RNG state is left untouched).
    """
    spec = parse_model_spec(spec, model_name=model_name)
    weights = spec.weights
    if weights.kind == "torchvision":
        if torch_home is None:
            raise ValueError("build_model: torch_home is required for torchvision enum weights")
        path = torchvision_cache_file(weights.enum, torch_home)
        if not (path.is_file() and path.stat().st_size > 0):
            raise WeightsUnavailableError(weights_unavailable_message(
                spec, path, "embedding never downloads; run the weights stage first"))
        with _torch_hub_dir(Path(torch_home).expanduser() / "hub"):
            model = get_model(spec.arch, weights=weights.enum, progress=False)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = get_model(spec.arch, weights=None)
        if weights.kind == "checkpoint":
            state_dict = load_checkpoint_state_dict(weights.path, model_name=spec.name)
            load_state_dict_checked(model, state_dict, model_name=spec.name, source=weights.path, arch=spec.arch)
    return model.eval()


def load_checkpoint_state_dict(path: str | os.PathLike, *, model_name: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a state dict (tensors on the CPU).

    Accepts a plain state dict, or a dict holding one under ``"state_dict"`` or ``"model"``.
    A ``module.`` / ``_orig_mod.`` prefix on every key (DataParallel, torch.compile) is removed.
    Raises :class:`ConfigError` when the file is not a readable tensor dict.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the same user error
        raise ConfigError(
            f"model {model_name!r}: cannot read checkpoint {path}: {type(exc).__name__}: {exc}. "
            "Expected a file written by torch.save(model.state_dict(), path)."
        ) from exc
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(
            f"model {model_name!r}: checkpoint {path} is not a state dict (a mapping of parameter "
            "names to tensors, possibly under a 'state_dict' or 'model' key). Save it with "
            "torch.save(model.state_dict(), path)."
        )
    state_dict = dict(obj)
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                            model_name: str, source: Any, arch: str) -> None:
    """``model.load_state_dict(state_dict, strict=True)``, with a ConfigError that names the
    first missing, unexpected and shape-mismatched keys instead of torch's RuntimeError."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                more = f" ... (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:5])}{more}")
        raise ConfigError(
            f"model {model_name!r}: checkpoint {source} does not fit torchvision {arch}() "
            f"(1000 classes): {'; '.join(parts)}. Check 'arch' matches the network the checkpoint "
            "was saved from."
        )
    model.load_state_dict(state_dict, strict=True)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (what torchvision's ``meta["num_params"]`` counts)."""
    return int(sum(p.numel() for p in model.parameters()))


# --------------------------------------------------------------------------- transforms


def build_transform(spec: Mapping[str, Any] | ModelSpec, *, model_name: str = "model"
                    ) -> tuple[ImageClassification, dict[str, Any]]:
    """The spec's preprocessing and a plain-dict description of it (for meta.json, cache keys).

    Base: the enum weight's own ``weights.transforms()``; for checkpoints and random init
    torchvision's ``ImageClassification(crop_size=224, resize_size=256)`` with ImageNet mean/std.
    The config's ``transforms:`` overrides replace individual fields. The transform maps a PIL
    image to a (3, crop, crop) float32 tensor.
    """
    spec = parse_model_spec(spec, model_name=model_name)
    if spec.weights.kind == "torchvision":
        base = spec.weights.enum.transforms()
        base_name = f"{spec.weights.resolved}.transforms()"
        if not isinstance(base, ImageClassification):
            raise ConfigError(
                f"model {spec.name!r}: {base_name} is {type(base).__name__}, not ImageClassification; "
                "only image-classification weights are supported"
            )
    else:
        base = ImageClassification(crop_size=DEFAULT_CROP_SIZE, resize_size=DEFAULT_RESIZE_SIZE,
                                   mean=IMAGENET_MEAN, std=IMAGENET_STD)
        base_name = "ImageNet default (resize 256, center crop 224, ImageNet mean/std)"
    fields = {
        "resize_size": _single(base.resize_size),
        "crop_size": _single(base.crop_size),
        "mean": [float(v) for v in base.mean],
        "std": [float(v) for v in base.std],
        "interpolation": base.interpolation.value,
    }
    fields.update(spec.transform_overrides)
    transform = ImageClassification(
        crop_size=fields["crop_size"], resize_size=fields["resize_size"], mean=tuple(fields["mean"]),
        std=tuple(fields["std"]), interpolation=InterpolationMode(fields["interpolation"]),
        antialias=base.antialias,
    )
    description = {
        "class": "torchvision.transforms._presets.ImageClassification",
        "base": base_name,
        **fields,
        "antialias": base.antialias,
        "overrides": dict(spec.transform_overrides),
    }
    return transform, description


def _single(size: list[int] | int) -> int:
    return int(size[0]) if isinstance(size, list | tuple) else int(size)


# --------------------------------------------------------------------------- layers


def final_classifier(model: nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of the final classifier: the model's last ``nn.Linear`` in module order;
    without any Linear (SqueezeNet) the last ``nn.Conv2d`` in ``model.classifier``."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Module):
        convs = [(f"classifier.{n}", m) for n, m in classifier.named_modules() if isinstance(m, nn.Conv2d)]
        if convs:
            return convs[-1]
    raise ConfigError(f"{type(model).__name__} has no nn.Linear and no Conv2d in .classifier; "
                      "use layer: output or a graph node name")


def pool_features(features: torch.Tensor, *, channels_last: bool = False) -> torch.Tensor:
    """(b, ...) tensor -> (b, dim) float32: 4-d spatial maps are global-average-pooled over H, W
    ((b, C, H, W), or (b, H, W, C) when ``channels_last``); other shapes are flattened."""
    if features.ndim == 4:
        features = features.mean(dim=(1, 2) if channels_last else (2, 3))
    elif features.ndim != 2:
        features = features.flatten(1)
    return features.float()


class FeatureExtractor(nn.Module):
    """Embeddings of a model at one layer: ``forward(x: (b, 3, H, W) float) -> (b, dim) float32``.

    layer:
    - ``"penultimate"``: the input of the final classifier (:func:`final_classifier`), caught by
      a forward pre-hook while the whole model runs;
    - ``"output"``: the logits ``model(x)``;
    - a node name from ``get_graph_node_names(model)`` (eval graph), through
      ``create_feature_extractor``; a module name such as ``"layer3"`` selects that module's
      last node (create_feature_extractor's prefix rule); unknown names raise ConfigError.
    4-d outputs are global-average-pooled (Swin's channels-last maps before its ``permute``
    node are pooled over their H, W axes), any other shape is flattened.
    """

    def __init__(self, model: nn.Module, layer: str = "penultimate", *, model_name: str = "model"):
        super().__init__()
        self.layer = layer
        self.channels_last = False
        self._captured: list[torch.Tensor] = []
        if layer == "penultimate":
            self.classifier_name, classifier = final_classifier(model)
            self._hook = classifier.register_forward_pre_hook(self._capture)
            self.model = model
        elif layer == "output":
            self.model = model
        else:
            was_training = model.training
            model.eval()
            train_nodes, eval_nodes = get_graph_node_names(model)
            # A module name ("layer3") selects its last node, as in create_feature_extractor.
            matching = [i for i, n in enumerate(eval_nodes) if n == layer or n.startswith(layer + ".")]
            if not matching:
                close = difflib.get_close_matches(layer, eval_nodes, n=5, cutoff=0.6)
                hint = f" Close matches: {', '.join(close)}." if close else ""
                raise ConfigError(
                    f"model {model_name!r}: layer {layer!r} is not a graph node of "
                    f"{type(model).__name__}.{hint} The last nodes before the output are: "
                    f"{', '.join(eval_nodes[-15:])}. Use 'penultimate', 'output', or any name from "
                    "torchvision.models.feature_extraction.get_graph_node_names(model)[1]."
                )
            # Swin keeps (b, H, W, C) maps until its "permute" node.
            self.channels_last = (isinstance(model, SwinTransformer) and "permute" in eval_nodes
                                  and matching[-1] < eval_nodes.index("permute"))
            # Only the eval graph is used; the train graph (which can differ, e.g. GoogLeNet's
            # auxiliary heads) gets the same node where it has one.
            in_train = any(n == layer or n.startswith(layer + ".") for n in train_nodes)
            train_node = layer if in_train else train_nodes[-1]
            self.model = create_feature_extractor(
                model, train_return_nodes={train_node: "features"}, eval_return_nodes={layer: "features"}
            )
            self.model.train(was_training)

    def _capture(self, module: nn.Module, args: tuple) -> None:
        self._captured.append(args[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer == "penultimate":
            self._captured.clear()
            self.model(x)
            if not self._captured:
                raise RuntimeError(f"the classifier {self.classifier_name} was not called")
            features = self._captured[-1]
            self._captured.clear()
        elif self.layer == "output":
            features = self.model(x)
        else:
            if self.model.training:
                raise RuntimeError("FeatureExtractor at a graph node must be used in eval mode")
            features = self.model(x)["features"]
        if not isinstance(features, torch.Tensor):
            raise ConfigError(f"layer {self.layer!r} gives a {type(features).__name__}, not a tensor")
        return pool_features(features, channels_last=self.channels_last)


# --------------------------------------------------------------------------- ImageNet metadata


def _shape_only_model(arch: str) -> nn.Module:
    """``get_model(arch)`` on the meta device (no memory, no init time) when the builder allows
    it; builders that compute with tensors (RegNet's widths) need real ones."""
    try:
        with torch.device("meta"):
            return get_model(arch, weights=None)
    except (NotImplementedError, RuntimeError):
        with torch.random.fork_rng(devices=[]):
            return get_model(arch, weights=None)


def imagenet_metadata(spec: Mapping[str, Any] | ModelSpec, *, model_name: str = "model") -> dict[str, Any]:
    """ImageNet-1k facts of a spec, without downloading anything.

    Returns ``{acc1, acc5, num_params, gflops}``: for enum weights from ``weights.meta``
    (``_metrics["ImageNet-1K"]["acc@1"/"acc@5"]``, ``num_params``, ``_ops``); for random init
    accuracies and GFLOPS are None and num_params is counted; for checkpoints num_params is
    counted and the rest come from the spec's ``imagenet:`` (None when absent). Values given in
    ``imagenet:`` override the others for every kind.
    """
    spec = parse_model_spec(spec, model_name=model_name)
    values: dict[str, Any] = dict.fromkeys(IMAGENET_KEYS)
    if spec.weights.kind == "torchvision":
        meta = spec.weights.enum.meta
        metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
        values.update(acc1=metrics.get("acc@1"), acc5=metrics.get("acc@5"),
                      num_params=meta.get("num_params"), gflops=meta.get("_ops"))
    else:
        values["num_params"] = count_parameters(_shape_only_model(spec.arch))
    values.update(spec.imagenet)
    return values

"""The ``torchvision`` source: torchvision's classification models (the default source).

Spec keys::

    arch: "resnet50"              # torchvision.models.list_models(module=torchvision.models)
    weights: "DEFAULT" | "IMAGENET1K_V2" | "ResNet50_Weights.IMAGENET1K_V2"   # an enum member
           | "/path/ckpt.pth"     # a local state dict (path separator or .pt/.pth/.bin/.safetensors)
           | null                 # random init, seeded
    layer: "penultimate" (default) | "output" | <graph node name>

Everything follows torchvision's public API: weights enums via ``get_model_weights`` /
``get_weight``, preprocessing from the public attributes of ``weights.transforms()``,
intermediate layers via ``torchvision.models.feature_extraction``. Nothing here downloads;
pretrained enum weights are read from the torch.hub cache that :mod:`corrembed.models.weights` fills.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import urllib.error
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum, get_model, get_model_weights, list_models

from ..errors import ConfigError, WeightsUnavailableError
from ..storage import file_sha256
from .checkpoints import load_checkpoint_state_dict, load_state_dict_checked
from .download import download_file, expected_hash_prefix
from .features import FeatureExtractor
from .preprocess import Preprocessing, imagenet_default, single_size
from .spec import IMAGENET_KEYS, SOURCE_OPTION_KEYS, ModelSpec, ResolvedWeights

#: Seed of the random initialisation (``weights: null``), so random-init embeddings reproduce.
RANDOM_INIT_SEED = 0
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
SPECIAL_LAYERS = ("penultimate", "output")


def available_archs() -> list[str]:
    """Names of torchvision's classification models (``list_models(module=torchvision.models)``)."""
    return list_models(module=torchvision.models)


def is_checkpoint_path(value: str) -> bool:
    """True if a ``weights:`` string names a local file rather than a hub tag or enum member."""
    return "/" in value or os.sep in value or "\\" in value or value.lower().endswith(CHECKPOINT_SUFFIXES)


def checkpoint_weights(value: str | os.PathLike, *, model_name: str, check_files: bool, what: str) -> ResolvedWeights:
    """A ``checkpoint`` :class:`ResolvedWeights` for a local path (any source).

    Parameters
    ----------
    value : str or PathLike
        The configured path (``~`` expanded, relative to the working directory).
    check_files : bool
        Whether a missing file raises ConfigError now.
    what : str
        What the file must hold, for the message.
    """
    path = Path(value).expanduser().resolve()
    if check_files and not path.exists():
        raise ConfigError(
            f"model {model_name!r}: checkpoint file {path} (weights: {str(value)!r}) does not exist. "
            f"Give the path of {what}, relative to the working directory or absolute."
        )
    return ResolvedWeights("checkpoint", str(value), path=path)


def torchvision_cache_file(weights: WeightsEnum, torch_home: str | os.PathLike) -> Path:
    """Where torch.hub keeps an enum's file: ``{torch_home}/hub/checkpoints/{basename(url)}``."""
    return Path(torch_home).expanduser() / "hub" / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def weights_unavailable_message(spec: ModelSpec, path: Path, reason: str) -> str:
    """The message of a :class:`WeightsUnavailableError` for enum weights expected at ``path``.

    Names the model, the enum, the file, its URL, the folder, and how to work offline.
    """
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


def checked_sha256(spec: ModelSpec, path: Path) -> str:
    """The sha256 of a cached weights file, checked against the prefix torch.hub puts in its name.

    Raises
    ------
    WeightsUnavailableError
        When they differ (the file is corrupt: delete it and run again).
    """
    digest = file_sha256(path)
    prefix = expected_hash_prefix(path.name)
    if prefix and not digest.startswith(prefix):
        reason = (
            f"the cached file is corrupt (sha256 {digest[:12]}..., its name says {prefix}...); delete it and run again"
        )
        raise WeightsUnavailableError(weights_unavailable_message(spec, path, reason))
    return digest


@contextlib.contextmanager
def torch_hub_dir(hub_dir: Path) -> Iterator[None]:
    """Point torch.hub's cache folder at ``hub_dir`` for the block, then restore the previous setting.

    torchvision's builders read pretrained files through torch.hub's global cache dir; the
    previous value is restored exactly (including "unset", which follows ``TORCH_HOME``).
    """
    previous = torch.hub._hub_dir  # torch's own state; None means "derive from TORCH_HOME"
    torch.hub.set_dir(str(hub_dir))
    try:
        yield
    finally:
        torch.hub._hub_dir = previous


def shape_only_model(arch: str) -> nn.Module:
    """``get_model(arch)`` on the meta device (no memory, no init time) when the builder allows
    it; builders that compute with tensors (RegNet's widths) need real ones."""
    try:
        with torch.device("meta"):
            return get_model(arch, weights=None)
    except (NotImplementedError, RuntimeError):
        with torch.random.fork_rng(devices=[]):
            return get_model(arch, weights=None)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (what torchvision's ``meta["num_params"]`` counts)."""
    return int(sum(p.numel() for p in model.parameters()))


class TorchvisionSource:
    """torchvision classification models (see the module docstring)."""

    name = "torchvision"
    package = None
    extra = None
    default_layer = "penultimate"
    arch_key = "arch"
    weights_required = True
    extra_keys: tuple[str, ...] = SOURCE_OPTION_KEYS["torchvision"]
    arch_help = "a torchvision model name such as resnet50"
    weights_help = (
        "Write e.g. 'weights: DEFAULT' for the recommended pretrained weights, a weights enum name "
        "(IMAGENET1K_V2, ...), a checkpoint path,"
    )
    layer_help = "'penultimate', 'output' or a graph node name"

    def resolve_arch(self, arch: Any, *, model_name: str) -> str:
        """``arch`` if torchvision has a classification model of that name (case-insensitive).

        Raises
        ------
        ConfigError
            Listing close matches.
        """
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

    def resolve_weights(self, arch: str, weights: Any, *, model_name: str, check_files: bool = True) -> ResolvedWeights:
        """Resolve ``weights:`` for ``arch``.

        Enum names may be given bare (``IMAGENET1K_V2``, ``DEFAULT``; case-insensitive) or in full
        (``ResNet50_Weights.IMAGENET1K_V2``). Unknown names raise ConfigError listing the valid
        ones; with ``check_files``, a checkpoint path that does not exist raises ConfigError.
        """
        if weights is None:
            return ResolvedWeights("random", None)
        if not isinstance(weights, str | os.PathLike) or not str(weights):
            raise ConfigError(
                f"model {model_name!r}: 'weights' must be a weights enum name, a checkpoint path or null, "
                f"got {weights!r}"
            )
        value = str(weights)
        if isinstance(weights, os.PathLike) or is_checkpoint_path(value):
            return checkpoint_weights(
                value,
                model_name=model_name,
                check_files=check_files,
                what=f"a torch.save()d state dict of torchvision {arch}()",
            )
        enum_cls = get_model_weights(arch)
        members = enum_cls.__members__  # includes the DEFAULT alias
        name = value
        prefix = f"{enum_cls.__name__}."
        if name.startswith(prefix):
            name = name[len(prefix) :]
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

    def resolve_layer(self, layer: str, *, model_name: str) -> str:
        """Any string: graph node names are checked against the built graph (:meth:`check`)."""
        return layer

    def resolve_options(self, spec: Any, *, model_name: str) -> dict[str, Any]:
        """torchvision has no extra keys."""
        return {}

    def build(
        self, spec: ModelSpec, *, torch_home: str | os.PathLike | None = None, hf_home: str | os.PathLike | None = None
    ) -> nn.Module:
        """Build the spec's model on the CPU, in eval mode, with its weights loaded.

        - enum weights: torchvision's own builder (which also sets weight-dependent arguments
          such as ViT's image size) from the file already in ``{torch_home}/hub/checkpoints``;
          never downloads (:class:`WeightsUnavailableError` if missing: run the weights step).
        - checkpoint: ``get_model(arch)`` then a checked strict ``load_state_dict``.
        - random: ``get_model(arch)`` under ``torch.manual_seed(RANDOM_INIT_SEED)`` (the global
          RNG state is left untouched).
        """
        weights = spec.weights
        if weights.kind == "torchvision":
            if torch_home is None:
                raise ValueError("build_model: torch_home is required for torchvision enum weights")
            path = torchvision_cache_file(weights.enum, torch_home)
            if not (path.is_file() and path.stat().st_size > 0):
                raise WeightsUnavailableError(
                    weights_unavailable_message(spec, path, "embedding never downloads; run the weights stage first")
                )
            with torch_hub_dir(Path(torch_home).expanduser() / "hub"):
                model = get_model(spec.arch, weights=weights.enum, progress=False)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                model = get_model(spec.arch, weights=None)
            if weights.kind == "checkpoint":
                state_dict = load_checkpoint_state_dict(weights.path, model_name=spec.name)
                load_state_dict_checked(model, state_dict, model_name=spec.name, source=weights.path, arch=spec.arch)
        return model.eval()

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
        """The weights step for an enum: the torch.hub cache file, downloaded when missing.

        Parameters
        ----------
        spec : ModelSpec
            A spec whose ``weights.kind`` is ``"torchvision"``.
        torch_home : path
            The cache root (file at :func:`torchvision_cache_file`).
        hf_home : path or None
            Unused (torchvision weights are not on the Hugging Face Hub).
        allow_download : bool
            False: a missing file is an error.
        timeout : float
            Seconds per network operation.
        check_hash : bool
            Also check a cached file's sha256 against the prefix in its name.
        progress : callable or None
            Receives download progress lines (default: stderr).

        Returns
        -------
        dict
            ``{path, bytes, sha256}`` (``sha256`` None for a cached file without ``check_hash``).

        Raises
        ------
        WeightsUnavailableError
            Offline, blocked, downloads disabled or a bad hash: names the model, the enum, the
            file, the URL and the folder, and how to work offline.
        """
        path = torchvision_cache_file(spec.weights.enum, torch_home)
        if path.is_file() and path.stat().st_size > 0:
            record = {"path": str(path), "bytes": path.stat().st_size, "sha256": None}
            if check_hash:
                record["sha256"] = checked_sha256(spec, path)
            return record
        if not allow_download:
            raise WeightsUnavailableError(weights_unavailable_message(spec, path, "downloads are disabled"))
        try:
            digest = download_file(spec.weights.enum.url, path, timeout=timeout, progress=progress)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise WeightsUnavailableError(
                weights_unavailable_message(spec, path, f"download failed: {type(exc).__name__}: {exc}")
            ) from exc
        return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest}

    def preprocessing(self, spec: ModelSpec, *, torch_home=None, hf_home=None) -> Preprocessing:
        """The enum weight's own ``weights.transforms()`` (read through its public attributes);
        for checkpoints and random init torchvision's classic ImageNet recipe; then the spec's
        ``transforms:`` overrides.

        Raises
        ------
        ConfigError
            For weights whose transform is not an image-classification preset.
        """
        if spec.weights.kind == "torchvision":
            base = spec.weights.enum.transforms()
            base_name = f"{spec.weights.resolved}.transforms()"
            fields = ("resize_size", "crop_size", "mean", "std", "interpolation", "antialias")
            if not all(hasattr(base, f) for f in fields):
                raise ConfigError(
                    f"model {spec.name!r}: {base_name} is {type(base).__name__}, not an image-classification "
                    "preset (resize_size, crop_size, mean, std); only image-classification weights are supported"
                )
            preprocessing = Preprocessing(
                single_size(base.resize_size),
                single_size(base.crop_size),
                tuple(float(v) for v in base.mean),
                tuple(float(v) for v in base.std),
                base.interpolation.value,
                base.antialias,
                base_name,
            )
        else:
            preprocessing = imagenet_default()
        return preprocessing.with_overrides(spec.transform_overrides)

    def extractor(self, model: nn.Module, spec: ModelSpec) -> nn.Module:
        """:class:`FeatureExtractor` at ``spec.layer``."""
        return FeatureExtractor(model, spec.layer, model_name=spec.name)

    def weights_identity(self, spec: ModelSpec) -> dict[str, Any]:
        """The enum and its file (whose name carries a hash prefix), a checkpoint's content hash
        (not its path: a moved file stays cached), or the random-init seed with the library
        versions that define the initialisation. Frozen: these dicts are in existing cache keys."""
        weights = spec.weights
        if weights.kind == "torchvision":
            return {"kind": "torchvision", "enum": weights.resolved, "file": os.path.basename(weights.enum.url)}
        if weights.kind == "checkpoint":
            return {"kind": "checkpoint", "sha256": file_sha256(weights.path)}
        return {
            "kind": "random",
            "seed": RANDOM_INIT_SEED,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        }

    def imagenet(self, spec: ModelSpec) -> dict[str, Any]:
        """ImageNet-1k facts without downloading.

        For enum weights from ``weights.meta`` (``_metrics["ImageNet-1K"]["acc@1"/"acc@5"]``,
        ``num_params``, ``_ops``; ``acc1_kind`` "supervised"); otherwise num_params is counted and
        the rest come from the spec's ``imagenet:`` (None when absent; ``acc1_kind`` "config"
        when it gives acc1). Values given in ``imagenet:`` override the others.
        """
        values: dict[str, Any] = dict.fromkeys(IMAGENET_KEYS)
        if spec.weights.kind == "torchvision":
            meta = spec.weights.enum.meta
            metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
            values.update(
                acc1_kind="supervised",
                acc1=metrics.get("acc@1"),
                acc5=metrics.get("acc@5"),
                num_params=meta.get("num_params"),
                gflops=meta.get("_ops"),
            )
        else:
            values["num_params"] = count_parameters(shape_only_model(spec.arch))
        return values

    def check(self, spec: ModelSpec) -> None:
        """Build the network on the meta device, fit a checkpoint's keys and shapes, find the layer.

        Raises
        ------
        ConfigError
            For a checkpoint that does not fit or a layer that is not a graph node.
        """
        model = shape_only_model(spec.arch).eval()
        if spec.weights.kind == "checkpoint":
            state_dict = load_checkpoint_state_dict(spec.weights.path, model_name=spec.name)
            with warnings.catch_warnings():
                # Copying into meta tensors is a no-op by design: only the keys and shapes matter.
                warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter.*")
                load_state_dict_checked(
                    model, state_dict, model_name=spec.name, source=spec.weights.path, arch=spec.arch
                )
        FeatureExtractor(model, spec.layer, model_name=spec.name)  # raises for unknown layers


SOURCE = TorchvisionSource()

"""The ``python`` source: any callable that returns a ``torch.nn.Module`` (the user's own code).

Spec keys::

    source: python
    factory: "mypackage.models:build_encoder"   # module:callable (dotted attributes allowed,
                                                # e.g. efficientnet_lite_pytorch:EfficientNet.from_name)
           | "path/to/file.py:build"            # a plain Python file (relative to the working directory)
    kwargs: {width: 0.5}                        # keyword arguments of the factory (default {})
    weights: "/models/encoder.pth"              # a state dict, loaded strictly into the module
           | {package: NAME, path: RELATIVE}    # a file inside an installed package (importlib.resources)
           | null                               # the factory's own weights (or its seeded random init)
    layer: output (default)                     # the module's forward
         | "pool"                               # a submodule's output (global-average-pooled if spatial)
         | "_fc:input"                          # a submodule's input (the penultimate layer of a classifier)
    transforms: {resize_size, crop_size, interpolation, mean, std}   # required in full, never guessed

The embedding identity (:meth:`PythonSource.weights_identity`) is the factory's import path (with
the file's content hash for a file factory), its arguments, the version of the distribution that
provides the factory's module, and the weights' content hash. The factory is called under a fixed
seed, so a factory that initialises randomly gives the same module every time.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..storage import file_sha256
from .checkpoints import load_checkpoint_state_dict, state_dict_mismatch
from .features import pool_features
from .preprocess import TRANSFORM_KEYS, Preprocessing
from .spec import ModelSpec, ResolvedWeights
from .torchvision_source import RANDOM_INIT_SEED, count_parameters

INPUT_SUFFIX = ":input"


def pip_name(module: str) -> str:
    """The PyPI name a top-level import name usually has (``efficientnet_lite_pytorch`` ->
    ``efficientnet-lite-pytorch``), for install hints."""
    return module.split(".")[0].replace("_", "-")


def missing_package_error(model_name: str, key: str, module: str, exc: Exception) -> ConfigError:
    """The error for a factory or weights package that is not installed: names the model, the
    key and the install command."""
    top = module.split(".")[0]
    return ConfigError(
        f"model {model_name!r}: {key}: cannot import {module!r} ({type(exc).__name__}: {exc}). The package "
        f"is not installed in this environment. Install it with: pip install {pip_name(top)} (if that is its "
        "PyPI name; the models of the default config.yaml come with `pip install -e .` / `make install`)."
    )


def split_factory(factory: Any, *, model_name: str) -> tuple[str, str]:
    """``"pkg.mod:Cls.build"`` -> ``("pkg.mod", "Cls.build")``; ConfigError for another form."""
    if not isinstance(factory, str) or factory.count(":") != 1 or not all(factory.split(":")):
        raise ConfigError(
            f"model {model_name!r}: 'factory' must be 'module:callable' or 'path/to/file.py:callable', got {factory!r}"
        )
    target, attribute = factory.split(":")
    return target, attribute


def is_file_factory(target: str) -> bool:
    """Whether a factory's module part names a Python file rather than an importable module."""
    return target.endswith(".py")


def import_target(target: str, *, model_name: str) -> Any:
    """The module a factory's first part names: an importable module or a ``.py`` file.

    Raises
    ------
    ConfigError
        For a missing file or an uninstalled module (the install command given).
    """
    if is_file_factory(target):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(
                f"model {model_name!r}: factory file {path} does not exist (factory: {target!r}); give its "
                "path relative to the working directory, or absolute."
            )
        # One module name per file content: two files of the same name never share a module.
        name = f"corrembed_factory_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise missing_package_error(model_name, "factory", target, exc) from exc


def resolve_factory(factory: str, *, model_name: str) -> Any:
    """The callable a ``factory:`` string names.

    Raises
    ------
    ConfigError
        For an unknown module, file or attribute (close matches listed) or a non-callable.
    """
    target, attribute = split_factory(factory, model_name=model_name)
    obj = import_target(target, model_name=model_name)
    for part in attribute.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("__")]
            close = difflib.get_close_matches(part, names, n=5, cutoff=0.5)
            hint = f" Close matches: {', '.join(close)}." if close else ""
            raise ConfigError(f"model {model_name!r}: factory {factory!r}: {target} has no attribute {part!r}.{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"model {model_name!r}: factory {factory!r} is a {type(obj).__name__}, not a callable")
    return obj


def package_weights_path(package: str, relative: str, *, model_name: str) -> Path:
    """The file ``relative`` inside the installed package ``package`` (importlib.resources).

    Raises
    ------
    ConfigError
        When the package is not installed (the install command given) or lacks the file.
    """
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise missing_package_error(model_name, "weights.package", package, exc) from exc
    path = Path(str(root.joinpath(relative)))
    if not path.is_file():
        raise ConfigError(
            f"model {model_name!r}: weights: package {package!r} (at {root}) has no file {relative!r}; check "
            "weights.path (relative to the package's folder)."
        )
    return path


def distribution_version(module: str) -> dict[str, str] | None:
    """``{distribution: version}`` of the installed distribution providing a top-level module, or None."""
    top = module.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top) or []
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions or None


def split_layer(layer: str) -> tuple[str, bool]:
    """``"_fc:input"`` -> ``("_fc", True)``; ``"pool"`` -> ``("pool", False)``."""
    if layer.endswith(INPUT_SUFFIX):
        return layer[: -len(INPUT_SUFFIX)], True
    return layer, False


class HookExtractor(nn.Module):
    """Embeddings at a submodule of a model: its output (forward hook) or its input (pre-hook).

    ``forward(x (b, 3, H, W) float) -> (b, dim) float32`` runs the whole model and returns the
    captured tensor through :func:`~corrembed.models.features.pool_features` (spatial maps
    global-average-pooled).

    Parameters
    ----------
    model : nn.Module
        The network.
    layer : str
        ``"output"``, a name from ``model.named_modules()``, or ``NAME:input``.
    model_name : str
        Named in errors.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    >>> HookExtractor(net, "1", model_name="m")(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 4])
    >>> HookExtractor(net, "3:input", model_name="m")(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 144])
    """

    def __init__(self, model: nn.Module, layer: str, *, model_name: str):
        """See the class docstring."""
        super().__init__()
        self.model = model
        self.layer = layer
        self._captured: list[Any] = []
        if layer != "output":
            name, of_input = split_layer(layer)
            module = find_submodule(model, name, model_name=model_name, layer=layer)
            if of_input:
                module.register_forward_pre_hook(lambda m, args: self._captured.append(args[0] if args else None))
            else:
                module.register_forward_hook(lambda m, args, output: self._captured.append(output))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) float -> (b, dim) float32 (see the class docstring)."""
        self._captured.clear()
        output = self.model(x)
        if self.layer == "output":
            features = output
        else:
            if not self._captured:
                raise ConfigError(f"layer {self.layer!r} was not called by the model's forward")
            features = self._captured[0]  # the first call: a module reused later keeps its first use
            self._captured.clear()
        if not isinstance(features, torch.Tensor):
            raise ConfigError(f"layer {self.layer!r} gives a {type(features).__name__}, not a tensor")
        return pool_features(features)


def find_submodule(model: nn.Module, name: str, *, model_name: str, layer: str) -> nn.Module:
    """``model``'s submodule ``name``; ConfigError naming the model, the key and close matches."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    top = [n for n in names if "." not in n]
    raise ConfigError(
        f"model {model_name!r}: layer {layer!r}: {type(model).__name__} has no submodule {name!r}.{hint} "
        f"Its top-level submodules: {', '.join(top[:20])}. Use 'output', a name from model.named_modules(), "
        "or NAME:input."
    )


class PythonSource:
    """Models built by the user's own factory (see the module docstring)."""

    name = "python"
    package = None
    extra = None
    default_layer = "output"
    arch_key = "factory"
    weights_required = False
    extra_keys: tuple[str, ...] = ("factory", "kwargs")
    arch_help = "'module:callable' or 'path/to/file.py:callable' returning a torch.nn.Module"
    weights_help = "Give a state-dict file, {package: NAME, path: RELATIVE}, or null for the factory's own weights."
    layer_help = "'output', a submodule name from model.named_modules(), or NAME:input"

    def resolve_arch(self, arch: Any, *, model_name: str) -> str:
        """The factory string, once its module and attribute resolve to a callable."""
        resolve_factory(arch, model_name=model_name)
        return arch

    def resolve_weights(self, arch: str, weights: Any, *, model_name: str, check_files: bool = True) -> ResolvedWeights:
        """A state-dict path or ``{package, path}`` (kind ``checkpoint``), or null (kind ``random``:
        whatever the factory builds, under the fixed seed)."""
        if weights is None:
            return ResolvedWeights("random", None)
        if isinstance(weights, Mapping):
            if set(weights) != {"package", "path"} or not all(isinstance(v, str) and v for v in weights.values()):
                raise ConfigError(
                    f"model {model_name!r}: weights must be a path, {{package: NAME, path: RELATIVE}} or null, "
                    f"got {dict(weights)!r}"
                )
            path = package_weights_path(weights["package"], weights["path"], model_name=model_name)
            return ResolvedWeights("checkpoint", f"{weights['package']}:{weights['path']}", path=path)
        if not isinstance(weights, str | os.PathLike) or not str(weights):
            raise ConfigError(
                f"model {model_name!r}: weights must be a path, {{package, path}} or null, got {weights!r}"
            )
        path = Path(weights).expanduser().resolve()
        if check_files and not path.is_file():
            raise ConfigError(
                f"model {model_name!r}: weights file {path} (weights: {str(weights)!r}) does not exist; give the "
                "path of a state dict (torch.save(model.state_dict(), path)), relative to the working directory."
            )
        return ResolvedWeights("checkpoint", str(weights), path=path)

    def resolve_layer(self, layer: str, *, model_name: str) -> str:
        """``output``, ``NAME`` or ``NAME:input`` (the name is checked against the built module by :meth:`check`)."""
        name, _ = split_layer(layer)
        if not name:
            raise ConfigError(f"model {model_name!r}: layer {layer!r} names no submodule; use {self.layer_help}")
        return layer

    def resolve_options(self, spec: Any, *, model_name: str) -> dict[str, Any]:
        """``kwargs`` (a JSON-able mapping); ``transforms`` must give every key; no ``arch``."""
        if "arch" in spec:
            raise ConfigError(f"model {model_name!r}: source python takes 'factory', not 'arch'")
        kwargs = spec.get("kwargs") or {}
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise ConfigError(f"model {model_name!r}: 'kwargs' must be a mapping of argument names, got {kwargs!r}")
        try:
            json.dumps(dict(kwargs), sort_keys=True)
        except TypeError as exc:
            raise ConfigError(
                f"model {model_name!r}: 'kwargs' must hold plain values (numbers, strings, lists)"
            ) from exc
        given = spec.get("transforms") or {}
        missing = [key for key in TRANSFORM_KEYS if key not in given]
        if missing:
            raise ConfigError(
                f"model {model_name!r}: source python needs 'transforms' in full (never guessed); missing "
                f"{', '.join(missing)}. Give resize_size, crop_size, interpolation, mean and std as the model was "
                "trained with (see its documentation)."
            )
        return {"kwargs": dict(kwargs)}

    def module(self, spec: ModelSpec) -> nn.Module:
        """The factory's module, built under the fixed seed, without the spec's weights.

        Raises
        ------
        ConfigError
            When the factory fails or returns something other than an ``nn.Module``.
        """
        factory = resolve_factory(spec.arch, model_name=spec.name)
        kwargs = spec.options.get("kwargs", {})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            try:
                model = factory(**kwargs)
            except Exception as exc:  # noqa: BLE001 -- the user's code: report it against the config
                raise ConfigError(
                    f"model {spec.name!r}: factory {spec.arch!r}(**{kwargs!r}) failed: {type(exc).__name__}: {exc}"
                ) from exc
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"model {spec.name!r}: factory {spec.arch!r} returned a {type(model).__name__}, not a torch.nn.Module"
            )
        return model

    def _state_dict(self, spec: ModelSpec, model: nn.Module) -> dict[str, torch.Tensor]:
        """The checkpoint's state dict, checked to fit ``model`` exactly (ConfigError naming the keys)."""
        state_dict = load_checkpoint_state_dict(spec.weights.path, model_name=spec.name)
        parts = state_dict_mismatch(model.state_dict(), state_dict)
        if parts:
            raise ConfigError(
                f"model {spec.name!r}: weights {spec.weights.path} do not fit the module of factory "
                f"{spec.arch!r} (kwargs {spec.options.get('kwargs')}): {'; '.join(parts)}."
            )
        return state_dict

    def fetch(
        self,
        spec: ModelSpec,
        *,
        torch_home=None,
        hf_home=None,
        allow_download: bool = True,
        timeout: float = 10,
        check_hash: bool = False,
        progress=None,
    ) -> dict[str, Any]:
        """Nothing to fetch: a python model's weights are a local state dict, a file inside an
        installed package, or whatever the factory loads itself (the weights step records the file's
        hash, :func:`corrembed.models.weights.checkpoint_record`). Returns ``{}``."""
        return {}

    def build(self, spec: ModelSpec, *, torch_home=None, hf_home=None) -> nn.Module:
        """The factory's module on the CPU, eval mode, with the spec's weights loaded strictly."""
        model = self.module(spec)
        if spec.weights.kind == "checkpoint":
            model.load_state_dict(self._state_dict(spec, model), strict=True)
        return model.cpu().eval()

    def preprocessing(self, spec: ModelSpec, *, torch_home=None, hf_home=None) -> Preprocessing:
        """The config's ``transforms:`` (all five keys, checked by :meth:`resolve_options`)."""
        t = spec.transform_overrides
        return Preprocessing(
            t["resize_size"],
            t["crop_size"],
            tuple(t["mean"]),
            tuple(t["std"]),
            t["interpolation"],
            True,
            "config transforms (source python)",
        )

    def extractor(self, model: nn.Module, spec: ModelSpec) -> nn.Module:
        """:class:`HookExtractor` at ``spec.layer``."""
        return HookExtractor(model, spec.layer, model_name=spec.name)

    def weights_identity(self, spec: ModelSpec) -> dict[str, Any]:
        """Factory path (+ file hash), kwargs, the providing distribution's version, weights hash."""
        target, _ = split_factory(spec.arch, model_name=spec.name)
        identity: dict[str, Any] = {"factory": spec.arch, "kwargs": spec.options.get("kwargs", {})}
        if is_file_factory(target):
            identity["factory_sha256"] = file_sha256(Path(target).expanduser().resolve())
        else:
            identity["package"] = distribution_version(target)
        if spec.weights.kind == "checkpoint":
            identity.update(kind="checkpoint", sha256=file_sha256(spec.weights.path))
        else:
            identity.update(kind="factory", seed=RANDOM_INIT_SEED, torch=torch.__version__)
        return identity

    def imagenet(self, spec: ModelSpec) -> dict[str, Any]:
        """Parameters counted on the factory's module; accuracy only from the spec's ``imagenet:``."""
        return {"num_params": count_parameters(self.module(spec))}

    def check(self, spec: ModelSpec) -> None:
        """The factory builds an ``nn.Module``, the layer is one of its submodules, the weights fit."""
        model = self.module(spec)
        if spec.layer != "output":
            name, _ = split_layer(spec.layer)
            find_submodule(model, name, model_name=spec.name, layer=spec.layer)
        if spec.weights.kind == "checkpoint":
            self._state_dict(spec, model)


SOURCE = PythonSource()

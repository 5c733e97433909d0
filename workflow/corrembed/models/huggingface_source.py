"""The ``huggingface`` source: vision and CLIP-style models of transformers (extra ``corrembed[huggingface]``).

Spec keys::

    source: huggingface
    arch: "patrickjohncyh/fashion-clip"   # a hub id, or a local folder written by save_pretrained()
    weights: pretrained                   # the weights of arch (hub ids: fetched by the weights step)
           | null                         # random init from arch's config, seeded
    layer: embedding (default)            # get_image_features(pixel_values) (CLIP, SigLIP, ...)
         | pooled                         # the vision tower's pooler output
         | cls                            # the vision tower's first (CLS) token
         | mean_tokens                    # mean of the vision tower's patch tokens (CLS excluded)
    trust_remote_code: false              # only true runs code shipped with the model

Preprocessing comes from the model's image processor (``AutoImageProcessor``: size, crop,
resample, rescale, mean/std), read field by field; the embed stage's ``pil`` decoder then gives
the processor's ``backend="pil"`` output bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, WeightsUnavailableError
from .checkpoints import path_sha256
from .features import FunctionExtractor
from .hub import hub_caches, hub_fetch, not_cached_error
from .preprocess import Preprocessing
from .spec import IMAGENET_KEYS, SOURCE_OPTION_KEYS, ModelSpec, ResolvedWeights
from .torchvision_source import RANDOM_INIT_SEED, count_parameters

LAYERS = ("embedding", "pooled", "cls", "mean_tokens")
#: PIL resample codes used by image processors -> torchvision interpolation names.
RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def _transformers():
    """The transformers module (imported on first use: it is an optional extra)."""
    import transformers

    return transformers


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence transformers' advisory warnings and progress bars while loading."""
    transformers = _transformers()
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)


def is_local(spec: ModelSpec) -> bool:
    """Whether ``arch`` is a local folder (then its content hash identifies the model)."""
    return spec.weights.path is not None


def model_location(spec: ModelSpec) -> str:
    """What ``from_pretrained`` takes: the local folder or the hub id."""
    return str(spec.weights.path) if is_local(spec) else spec.arch


def _remote_code_error(spec: ModelSpec, exc: Exception) -> ConfigError:
    """ConfigError explaining that the model needs its own code and how to allow it."""
    return ConfigError(
        f"model {spec.name!r}: {spec.arch} needs code shipped with the model (transformers: {exc}). CorrEmbed "
        "never runs remote code unless the config says so: add 'trust_remote_code: true' to this model if you "
        "trust its repository."
    )


class HuggingFaceSource:
    """transformers models (see the module docstring)."""

    name = "huggingface"
    package = "transformers"
    extra = "huggingface"
    default_layer = "embedding"
    arch_key = "arch"
    weights_required = True
    extra_keys: tuple[str, ...] = SOURCE_OPTION_KEYS["huggingface"]
    arch_help = "a Hugging Face hub id such as patrickjohncyh/fashion-clip, or a local save_pretrained() folder"
    weights_help = "Write 'weights: pretrained' for the weights of arch,"
    layer_help = "'embedding' (get_image_features), 'pooled', 'cls' or 'mean_tokens'"

    def resolve_arch(self, arch: Any, *, model_name: str) -> str:
        """A hub id (``org/name``) or an existing local folder."""
        if not isinstance(arch, str) or not arch:
            raise ConfigError(f"model {model_name!r}: 'arch' must be a Hugging Face hub id or a folder, got {arch!r}")
        if not Path(arch).expanduser().is_dir() and arch.count("/") != 1:
            raise ConfigError(
                f"model {model_name!r}: arch {arch!r} is neither a local folder nor a hub id of the form org/name"
            )
        return arch

    def resolve_weights(self, arch: str, weights: Any, *, model_name: str, check_files: bool = True) -> ResolvedWeights:
        """``pretrained`` (hub id: kind pretrained; folder: kind checkpoint) or null (random init)."""
        folder = Path(arch).expanduser()
        if weights is None:
            return ResolvedWeights("random", None, path=folder.resolve() if folder.is_dir() else None, tag=None)
        if weights != "pretrained":
            raise ConfigError(
                f"model {model_name!r}: huggingface weights must be 'pretrained' (the weights of arch) or null, "
                f"got {weights!r}; put a local model's folder in 'arch'"
            )
        if folder.is_dir():
            return ResolvedWeights("checkpoint", "pretrained", path=folder.resolve())
        return ResolvedWeights("pretrained", "pretrained", tag=arch)

    def resolve_layer(self, layer: str, *, model_name: str) -> str:
        """One of :data:`LAYERS`; ConfigError otherwise."""
        if layer in LAYERS:
            return layer
        raise ConfigError(
            f"model {model_name!r}: layer {layer!r} is not available for source huggingface; use {self.layer_help}"
        )

    def resolve_options(self, spec: Any, *, model_name: str) -> dict[str, Any]:
        """``trust_remote_code``: a boolean, default False."""
        value = spec.get("trust_remote_code", False)
        if not isinstance(value, bool):
            raise ConfigError(f"model {model_name!r}: 'trust_remote_code' must be true or false, got {value!r}")
        return {"trust_remote_code": value}

    # ------------------------------------------------------------------ loading

    def _load(self, spec: ModelSpec, *, offline: bool, hf: Path | None, what: str) -> Any:
        """Load the config, the model (``what == "model"``) or the image processor (``"processor"``)."""
        transformers = _transformers()
        kwargs = {
            "trust_remote_code": spec.options.get("trust_remote_code", False),
            "local_files_only": offline,
        }
        if hf is not None and not is_local(spec):
            kwargs["cache_dir"] = str(hf / "hub")
        location = model_location(spec)
        with _quiet():
            try:
                if what == "processor":
                    return transformers.AutoImageProcessor.from_pretrained(location, backend="pil", **kwargs)
                config = transformers.AutoConfig.from_pretrained(location, **kwargs)
                if what == "config":
                    return config
                if spec.weights.kind == "random":
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(RANDOM_INIT_SEED)
                        return transformers.AutoModel.from_config(config, trust_remote_code=kwargs["trust_remote_code"])
                return transformers.AutoModel.from_pretrained(location, **kwargs)
            except ValueError as exc:
                if "trust_remote_code" in str(exc):
                    raise _remote_code_error(spec, exc) from exc
                raise

    def _offline(self, spec: ModelSpec, what: str, torch_home, hf_home) -> Any:
        """:meth:`_load` from the caches with the hub offline; WeightsUnavailableError when missing."""
        with hub_caches(torch_home, hf_home, offline=True) as hf:
            try:
                return self._load(spec, offline=True, hf=hf, what=what)
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 -- not in the cache (or unreadable)
                if is_local(spec):
                    raise ConfigError(
                        f"model {spec.name!r}: cannot load the {what} of folder {spec.weights.path}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                raise WeightsUnavailableError(
                    not_cached_error(spec.name, f"the {what} of Hugging Face model {spec.arch}", exc, hf, torch_home)
                ) from exc

    def build(
        self, spec: ModelSpec, *, torch_home: str | os.PathLike | None = None, hf_home: str | os.PathLike | None = None
    ) -> nn.Module:
        """``AutoModel.from_pretrained`` (or ``from_config`` for random init) from the caches, eval mode."""
        return self._offline(spec, "model", torch_home, hf_home).eval()

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
        """The weights step for a hub id: config, image processor and weights into ``hf_home``.

        ``check_hash`` and ``progress`` are unused: the hub client verifies and reports its own
        downloads (see :func:`corrembed.models.hub.hub_fetch`).

        Raises
        ------
        WeightsUnavailableError
            Within about ``timeout`` seconds when not cached and the hub is unreachable or
            downloads are disabled (model id, caches and how to fill them named).
        """

        def download(hf: Path | None) -> None:
            for what in ("processor", "model"):
                self._load(spec, offline=False, hf=hf, what=what)

        hub_fetch(
            spec.name,
            f"Hugging Face model {spec.arch}",
            cached=lambda: [self._offline(spec, what, torch_home, hf_home) for what in ("processor", "model")],
            download=download,
            torch_home=torch_home,
            hf_home=hf_home,
            allow_download=allow_download,
            timeout=timeout,
        )
        return {"resolved": spec.arch}

    # ------------------------------------------------------------------ preprocessing and layers

    def preprocessing(self, spec: ModelSpec, *, torch_home=None, hf_home=None) -> Preprocessing:
        """The image processor's resize / centre crop / rescale / normalise, read field by field.

        Raises
        ------
        ConfigError
            For processors the embed stage cannot reproduce exactly (no rescale by 1/255, an
            unsupported resample, a non-square crop).
        """
        processor = self._offline(spec, "processor", torch_home, hf_home)
        get = lambda key, default=None: getattr(processor, key, default)  # noqa: E731
        size, crop = dict(get("size") or {}), dict(get("crop_size") or {})
        interpolation = RESAMPLE.get(int(get("resample", 3)))
        rescale = float(get("rescale_factor", 1 / 255)) if get("do_rescale", True) else None
        problem = None
        if interpolation is None:
            problem = f"resample {get('resample')!r}"
        elif rescale is None or abs(rescale - 1 / 255) > 1e-12:
            problem = f"rescale {rescale!r} (only 1/255)"
        if "shortest_edge" in size and get("do_center_crop", False) and crop.get("height") == crop.get("width"):
            resize, crop_size, mode = int(size["shortest_edge"]), int(crop["height"]), "shortest"
        elif size.get("height") is not None and size.get("height") == size.get("width") and not get("do_center_crop"):
            resize = crop_size = int(size["height"])
            mode = "squash"
        else:
            problem = problem or f"size {size} with crop {crop if get('do_center_crop') else 'none'}"
        if problem:
            raise ConfigError(
                f"model {spec.name!r}: the image processor of {spec.arch} ({type(processor).__name__}) uses {problem}, "
                "which the embed stage cannot reproduce; set transforms: to choose a supported preprocessing"
            )
        mean = tuple(float(v) for v in get("image_mean")) if get("do_normalize", True) else (0.0, 0.0, 0.0)
        std = tuple(float(v) for v in get("image_std")) if get("do_normalize", True) else (1.0, 1.0, 1.0)
        preprocessing = Preprocessing(
            resize,
            crop_size,
            mean,
            std,
            interpolation,
            True,
            f"{type(processor).__name__} of {spec.arch}",
            resize_mode=mode,
        )
        return preprocessing.with_overrides(spec.transform_overrides)

    def extractor(self, model: nn.Module, spec: ModelSpec) -> nn.Module:
        """A :class:`FunctionExtractor` for ``spec.layer`` (see the module docstring).

        Raises
        ------
        ConfigError
            When the model has no such layer (no ``get_image_features``, no pooler, no CLS token).
        """
        vision = getattr(model, "vision_model", model)
        if spec.layer == "embedding":
            if not hasattr(model, "get_image_features"):
                raise ConfigError(
                    f"model {spec.name!r}: {type(model).__name__} has no get_image_features (not a CLIP-style "
                    "model); use layer: pooled, cls or mean_tokens"
                )
            return FunctionExtractor(model, _image_features, spec.layer)
        embeddings = getattr(vision, "embeddings", None)
        has_cls = any(hasattr(embeddings, name) for name in ("class_embedding", "cls_token"))
        if spec.layer == "cls" and not has_cls:
            raise ConfigError(
                f"model {spec.name!r}: {type(vision).__name__} has no CLS token; use pooled or mean_tokens"
            )
        skip = 1 if has_cls else 0

        def hidden(m: nn.Module, x: torch.Tensor) -> Any:
            """The vision tower's output (``last_hidden_state`` (b, tokens, width), ``pooler_output``)."""
            tower = getattr(m, "vision_model", m)
            return tower(pixel_values=x)

        if spec.layer == "pooled":
            return FunctionExtractor(model, lambda m, x: _pooled(hidden(m, x), spec), spec.layer)
        if spec.layer == "cls":
            return FunctionExtractor(model, lambda m, x: hidden(m, x).last_hidden_state[:, 0], spec.layer)
        return FunctionExtractor(model, lambda m, x: hidden(m, x).last_hidden_state[:, skip:].mean(dim=1), spec.layer)

    def weights_identity(self, spec: ModelSpec) -> dict[str, Any]:
        """Hub id, a local folder's content hash, or the seed (+ the folder/config); with the
        transformers version (its model code defines the numerics)."""
        weights = spec.weights
        if weights.kind == "pretrained":
            identity: dict[str, Any] = {"kind": "pretrained", "tag": spec.arch}
        elif weights.kind == "checkpoint":
            identity = {"kind": "checkpoint", "sha256": path_sha256(weights.path)}
        else:
            config = path_sha256(weights.path) if weights.path is not None else spec.arch
            identity = {"kind": "random", "seed": RANDOM_INIT_SEED, "torch": torch.__version__, "config": config}
        return {
            **identity,
            "trust_remote_code": spec.options.get("trust_remote_code", False),
            "transformers": _transformers().__version__,
        }

    def imagenet(self, spec: ModelSpec) -> dict[str, Any]:
        """No published table: figures come from the spec's ``imagenet:`` (num_params counted when loadable)."""
        values: dict[str, Any] = dict.fromkeys(IMAGENET_KEYS)
        with contextlib.suppress(Exception):
            config = self._offline(spec, "config", None, None)
            with torch.device("meta"), _quiet():
                values["num_params"] = count_parameters(
                    _transformers().AutoModel.from_config(
                        config, trust_remote_code=spec.options.get("trust_remote_code", False)
                    )
                )
        return values

    def check(self, spec: ModelSpec) -> None:
        """For a local folder (or a hub model already cached): the model builds on the meta
        device and has the layer. Hub models not yet cached are checked by the weights step."""
        try:
            config = self._offline(spec, "config", None, None)
        except WeightsUnavailableError:
            return
        with torch.device("meta"), _quiet():
            model = _transformers().AutoModel.from_config(
                config, trust_remote_code=spec.options.get("trust_remote_code", False)
            )
        self.extractor(model, spec)


def _image_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``get_image_features``: a tensor (transformers 4) or an output whose ``pooler_output`` it is (5)."""
    out = model.get_image_features(pixel_values=x)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _pooled(output: Any, spec: ModelSpec) -> torch.Tensor:
    """The ``pooler_output`` of a vision tower's output (ConfigError when it has none)."""
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise ConfigError(f"model {spec.name!r}: {spec.arch} has no pooler output; use cls or mean_tokens")
    return pooled


SOURCE = HuggingFaceSource()

"""The ``timm`` source: PyTorch Image Models (optional extra ``corrembed[timm]``).

Spec keys::

    source: timm
    arch: "convnext_tiny.fb_in22k_ft_in1k"   # a timm.list_models() name, optional .pretrained_tag
    weights: pretrained                      # the tag's hub weights (fetched by the weights step)
           | "/path/model.safetensors"       # a local checkpoint, loaded strictly by timm's checkpoint_path
           | null                            # random init, seeded
    layer: penultimate (default)             # forward_head(forward_features(x), pre_logits=True)
         | output                            # logits
         | "block:N"                         # forward_intermediates index N, global-average-pooled

Preprocessing is timm's own eval transform of the model's ``pretrained_cfg``
(``timm.data.resolve_model_data_config`` + ``timm.data.create_transform``), read back from the
transform it builds, with the spec's ``transforms:`` overrides applied.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, WeightsUnavailableError
from ..storage import file_sha256
from .accuracy_tables import timm_accuracy
from .checkpoints import state_dict_mismatch
from .features import FunctionExtractor
from .hub import fill_cache_instructions, hf_cache_root, hub_caches, hub_fetch, not_cached_error
from .preprocess import Preprocessing, single_size
from .spec import IMAGENET_KEYS, SOURCE_OPTION_KEYS, ModelSpec, ResolvedWeights
from .torchvision_source import RANDOM_INIT_SEED, checkpoint_weights, count_parameters, is_checkpoint_path

BLOCK_LAYER = re.compile(r"^block:(-?\d+)$")


def _timm():
    """The timm module (imported on first use: it is an optional extra)."""
    import timm

    return timm


def split_name_tag(arch: str) -> tuple[str, str]:
    """``"convnext_tiny.fb_in1k"`` -> ``("convnext_tiny", "fb_in1k")``; no tag -> ``(arch, "")``."""
    return _timm().models.split_model_name_tag(arch)


def default_tag(name: str) -> str | None:
    """The pretrained tag timm uses for a bare architecture name (its first registered one), or None."""
    cfg = _timm().models.get_pretrained_cfg(name)
    return getattr(cfg, "tag", None) if cfg is not None else None


def meta_model(spec: ModelSpec) -> nn.Module:
    """The network on the meta device (no memory, no weights): for shapes, configs and checks."""
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _timm().create_model(spec.arch, pretrained=False)


class TimmSource:
    """timm models (see the module docstring)."""

    name = "timm"
    package = "timm"
    extra = "timm"
    default_layer = "penultimate"
    arch_key = "arch"
    weights_required = True
    extra_keys: tuple[str, ...] = SOURCE_OPTION_KEYS["timm"]
    arch_help = "a timm.list_models() name, optionally with a pretrained tag: convnext_tiny.fb_in22k_ft_in1k"
    weights_help = "Write 'weights: pretrained' for the tag's hub weights, a local .safetensors/.pth checkpoint path,"
    layer_help = "'penultimate', 'output' or 'block:N' (a forward_intermediates index)"

    def resolve_arch(self, arch: Any, *, model_name: str) -> str:
        """``arch`` if timm knows the architecture and (when given) its pretrained tag.

        Raises
        ------
        ConfigError
            Unknown architecture (close matches listed) or unknown tag (the valid tags listed).
        """
        timm = _timm()
        if not isinstance(arch, str) or not arch:
            raise ConfigError(f"model {model_name!r}: 'arch' must be a timm model name, got {arch!r}")
        name, tag = split_name_tag(arch)
        names = timm.list_models()
        if name not in names:
            close = difflib.get_close_matches(name, names, n=6, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"model {model_name!r}: unknown timm arch {name!r} (arch: {arch!r}); timm {timm.__version__} has no "
                f"model of that name.{hint} All names: timm.list_models()."
            )
        if tag:
            tags = [split_name_tag(n)[1] for n in timm.list_pretrained(f"{name}.*")]
            if tag not in tags:
                raise ConfigError(
                    f"model {model_name!r}: timm arch {name!r} has no pretrained tag {tag!r} (arch: {arch!r}). "
                    f"Valid tags: {', '.join(tags) if tags else 'none (no pretrained weights)'}."
                )
        return arch

    def resolve_weights(self, arch: str, weights: Any, *, model_name: str, check_files: bool = True) -> ResolvedWeights:
        """``pretrained`` (the arch's tag, or timm's default tag), a local checkpoint, or null."""
        if weights is None:
            return ResolvedWeights("random", None)
        if not isinstance(weights, str | os.PathLike) or not str(weights):
            raise ConfigError(
                f"model {model_name!r}: 'weights' must be 'pretrained', a checkpoint path or null, got {weights!r}"
            )
        value = str(weights)
        if value == "pretrained":
            name, tag = split_name_tag(arch)
            tag = tag or default_tag(name)
            if not tag:
                raise ConfigError(
                    f"model {model_name!r}: timm arch {name!r} has no pretrained weights; give a checkpoint "
                    "path or 'weights: null'."
                )
            return ResolvedWeights("pretrained", value, tag=f"{name}.{tag}")
        if isinstance(weights, os.PathLike) or is_checkpoint_path(value):
            return checkpoint_weights(
                value,
                model_name=model_name,
                check_files=check_files,
                what=f"a timm {arch} checkpoint (.safetensors or .pth state dict)",
            )
        raise ConfigError(
            f"model {model_name!r}: timm weights {value!r} is neither 'pretrained' nor a checkpoint path "
            "(a path with '/' or ending .safetensors/.pth/.pt/.bin); write the pretrained tag in 'arch' "
            "(e.g. arch: convnext_tiny.fb_in1k) with 'weights: pretrained'."
        )

    def resolve_layer(self, layer: str, *, model_name: str) -> str:
        """``penultimate``, ``output`` or ``block:N``; ConfigError otherwise."""
        if layer in ("penultimate", "output") or BLOCK_LAYER.match(layer):
            return layer
        raise ConfigError(
            f"model {model_name!r}: layer {layer!r} is not available for source timm; use {self.layer_help}"
        )

    def resolve_options(self, spec: Any, *, model_name: str) -> dict[str, Any]:
        """timm has no extra keys."""
        return {}

    def build(
        self, spec: ModelSpec, *, torch_home: str | os.PathLike | None = None, hf_home: str | os.PathLike | None = None
    ) -> nn.Module:
        """The network on the CPU, eval mode.

        pretrained: ``create_model(arch, pretrained=True)`` from the caches with the hub offline
        (:class:`WeightsUnavailableError` naming the model and how to fill the cache when the
        files are missing); checkpoint: ``create_model(arch, checkpoint_path=FILE)`` (timm's own
        strict loading; a mismatch is a ConfigError naming the keys); random: seeded init.
        """
        timm = _timm()
        weights = spec.weights
        if weights.kind == "pretrained":
            with hub_caches(torch_home, hf_home, offline=True) as hf:
                try:
                    model = timm.create_model(spec.arch, pretrained=True)
                except Exception as exc:  # noqa: BLE001 -- every hub failure means the cache lacks the files
                    raise WeightsUnavailableError(
                        f"model {spec.name!r}: timm weights {weights.tag} are not in the cache ({type(exc).__name__}: "
                        f"{exc}). " + fill_cache_instructions(spec.name, hf, torch_home)
                    ) from exc
            return model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            if weights.kind == "checkpoint":
                self._check_checkpoint(spec)
                model = timm.create_model(spec.arch, pretrained=False, checkpoint_path=str(weights.path))
            else:
                model = timm.create_model(spec.arch, pretrained=False)
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
        """The weights step for ``weights: pretrained``: load (downloading if allowed) into the caches.

        ``check_hash`` and ``progress`` are unused: the hub client verifies and reports its own
        downloads (see :func:`corrembed.models.hub.hub_fetch`).

        Returns
        -------
        dict
            ``{resolved: name.tag, hf_hub_id, hf_home}``.

        Raises
        ------
        WeightsUnavailableError
            Within about ``timeout`` seconds when the files are not cached and the hub is
            unreachable or downloads are disabled: names the model, the tag and hub id, the
            caches, and how to fill them.
        """
        timm = _timm()
        hub_id = getattr(timm.models.get_pretrained_cfg(spec.weights.tag), "hf_hub_id", None)
        what = f"timm weights {spec.weights.tag} (hub id {hub_id})"

        def cached() -> None:
            with hub_caches(torch_home, hf_home, offline=True, timeout=timeout) as hf:
                try:
                    timm.create_model(spec.arch, pretrained=True)
                except Exception as exc:  # noqa: BLE001 -- not cached (or unreadable): try the hub
                    raise WeightsUnavailableError(not_cached_error(spec.name, what, exc, hf, torch_home)) from exc

        hub_fetch(
            spec.name,
            what,
            cached=cached,
            download=lambda hf: timm.create_model(spec.arch, pretrained=True),
            torch_home=torch_home,
            hf_home=hf_home,
            allow_download=allow_download,
            timeout=timeout,
        )
        return {"resolved": spec.weights.tag, "hf_hub_id": hub_id, "hf_home": str(hf_cache_root(torch_home, hf_home))}

    def _check_checkpoint(self, spec: ModelSpec) -> None:
        """ConfigError naming missing/unexpected/mismatched keys when the checkpoint does not fit (timm's reader)."""
        timm = _timm()
        try:
            state_dict = timm.models.load_state_dict(str(spec.weights.path))
        except Exception as exc:  # noqa: BLE001 -- any unreadable file is the same user error
            raise ConfigError(
                f"model {spec.name!r}: cannot read checkpoint {spec.weights.path}: {type(exc).__name__}: {exc}"
            ) from exc
        parts = state_dict_mismatch(meta_model(spec).state_dict(), state_dict)
        if parts:
            raise ConfigError(
                f"model {spec.name!r}: checkpoint {spec.weights.path} does not fit timm {spec.arch}: "
                f"{'; '.join(parts)}. Check 'arch' matches the network the checkpoint was saved from."
            )

    def preprocessing(self, spec: ModelSpec, *, torch_home=None, hf_home=None) -> Preprocessing:
        """timm's eval transform for the model's ``pretrained_cfg``, read back field by field.

        Raises
        ------
        ConfigError
            When timm's transform is not resize-shorter-side / centre-crop / normalise (e.g.
            ``crop_mode: squash``), which the embed stage cannot reproduce exactly.
        """
        timm = _timm()
        config = timm.data.resolve_model_data_config(meta_model(spec))
        transform = timm.data.create_transform(**config, is_training=False)
        steps = list(getattr(transform, "transforms", [transform]))
        kinds = [type(t).__name__ for t in steps]
        if kinds[:2] != ["Resize", "CenterCrop"] or kinds[-1] != "Normalize" or not isinstance(steps[0].size, int):
            raise ConfigError(
                f"model {spec.name!r}: timm's eval transform for {spec.arch} is {kinds} "
                f"(crop_mode {config.get('crop_mode')!r}); only resize-shorter-side + centre crop is supported. "
                "Set transforms: {resize_size, crop_size} to choose one."
            )
        resize, crop, normalize = steps[0], steps[1], steps[-1]
        preprocessing = Preprocessing(
            int(resize.size),
            single_size(crop.size),
            tuple(float(v) for v in normalize.mean),
            tuple(float(v) for v in normalize.std),
            resize.interpolation.value,
            resize.antialias,
            f"timm {spec.arch} pretrained_cfg (resolve_model_data_config + create_transform)",
        )
        return preprocessing.with_overrides(spec.transform_overrides)

    def extractor(self, model: nn.Module, spec: ModelSpec) -> nn.Module:
        """penultimate: ``forward_head(forward_features(x), pre_logits=True)``; output: ``model(x)``;
        ``block:N``: ``forward_intermediates(x, indices=[N], intermediates_only=True)[0]`` (NCHW, pooled)."""
        if spec.layer == "penultimate":
            return FunctionExtractor(
                model, lambda m, x: m.forward_head(m.forward_features(x), pre_logits=True), spec.layer
            )
        if spec.layer == "output":
            return FunctionExtractor(model, lambda m, x: m(x), spec.layer)
        index = int(BLOCK_LAYER.match(spec.layer).group(1))
        return FunctionExtractor(
            model, lambda m, x: m.forward_intermediates(x, indices=[index], intermediates_only=True)[0], spec.layer
        )

    def weights_identity(self, spec: ModelSpec) -> dict[str, Any]:
        """pretrained: ``name.tag`` and the hub id; checkpoint: content sha256; random: seed + torch.
        Always the timm version (its layer code defines the numerics)."""
        timm = _timm()
        weights = spec.weights
        if weights.kind == "pretrained":
            cfg = timm.models.get_pretrained_cfg(weights.tag)
            identity = {"kind": "pretrained", "tag": weights.tag, "hf_hub_id": getattr(cfg, "hf_hub_id", None)}
        elif weights.kind == "checkpoint":
            identity = {"kind": "checkpoint", "sha256": file_sha256(weights.path)}
        else:
            identity = {"kind": "random", "seed": RANDOM_INIT_SEED, "torch": torch.__version__}
        return {**identity, "timm": timm.__version__}

    def imagenet(self, spec: ModelSpec) -> dict[str, Any]:
        """pretrained: timm's published results for ``name.tag`` at the model's input size
        (``acc1_kind`` supervised); otherwise num_params counted, the rest from the spec's ``imagenet:``."""
        values: dict[str, Any] = dict.fromkeys(IMAGENET_KEYS)
        model = meta_model(spec)
        values["num_params"] = count_parameters(model)
        if spec.weights.kind == "pretrained":
            size = single_size(model.pretrained_cfg.get("input_size", [None]))
            published = timm_accuracy(spec.weights.tag, size)
            if published:
                values.update(acc1=published["acc1"], acc5=published["acc5"], acc1_kind="supervised")
        return values

    def check(self, spec: ModelSpec) -> None:
        """A checkpoint's keys and shapes fit; a ``block:N`` index exists (the meta-device network)."""
        if spec.weights.kind == "checkpoint":
            self._check_checkpoint(spec)
        match = BLOCK_LAYER.match(spec.layer)
        if match:
            model = meta_model(spec)
            count = len(getattr(model, "feature_info", []) or []) or len(getattr(model, "blocks", []) or [])
            index = int(match.group(1))
            if not -count <= index < count:
                raise ConfigError(
                    f"model {spec.name!r}: layer {spec.layer!r}: timm {spec.arch} has {count} intermediate "
                    f"outputs (block:0 ... block:{count - 1}, or negative from the end)"
                )


SOURCE = TimmSource()

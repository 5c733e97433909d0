"""The ``open_clip`` source: CLIP-style models of open_clip (optional extra ``corrembed[open_clip]``).

Spec keys::

    source: open_clip
    arch: "ViT-B-32"                    # an open_clip.list_models() name (with hf-hub:/local-dir:
                                        # weights the model's own config is used; arch then only names it)
    weights: "openai" | "laion2b_s34b_b79k"   # a pretrained tag of arch (fetched by the weights step)
           | "hf-hub:org/repo"          # a Hugging Face repository with open_clip_config.json
           | "/path/model.safetensors"  # a local checkpoint of arch
           | "local-dir:/path"          # a folder with open_clip_config.json + weights
           | null                       # random init, seeded
    layer: embedding (default)          # encode_image(x): the projected image embedding
         | pre_projection               # the pooled image features before the projection

Preprocessing is the model's own eval transform (``open_clip.image_transform_v2`` of its
preprocess config: the tag's or the repository's mean/std/interpolation/resize mode, the
vision tower's image size), read back field by field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, WeightsUnavailableError
from .accuracy_tables import open_clip_accuracy
from .checkpoints import path_sha256
from .features import FunctionExtractor
from .hub import hub_caches, hub_fetch, not_cached_error
from .preprocess import Preprocessing, single_size
from .spec import IMAGENET_KEYS, SOURCE_OPTION_KEYS, ModelSpec, ResolvedWeights
from .torchvision_source import RANDOM_INIT_SEED, checkpoint_weights, count_parameters, is_checkpoint_path

HF_HUB = "hf-hub:"
LOCAL_DIR = "local-dir:"
LAYERS = ("embedding", "pre_projection")
CONFIG_NAME = "open_clip_config.json"


def _open_clip():
    """The open_clip module (imported on first use: it is an optional extra)."""
    import open_clip

    return open_clip


def model_id(spec: ModelSpec) -> str:
    """The ``model_name`` open_clip's factory takes: ``hf-hub:org/repo``, ``local-dir:PATH`` or the arch."""
    weights = spec.weights
    if weights.kind == "pretrained" and weights.tag.startswith(HF_HUB):
        return weights.tag
    if weights.kind == "checkpoint" and weights.path.is_dir():
        return f"{LOCAL_DIR}{weights.path}"
    return spec.arch


def pretrained_arg(spec: ModelSpec) -> str | None:
    """The ``pretrained`` argument of open_clip's factory: a tag, a checkpoint file, or None."""
    weights = spec.weights
    if weights.kind == "pretrained" and not weights.tag.startswith(HF_HUB):
        return weights.tag
    if weights.kind == "checkpoint" and weights.path.is_file():
        return str(weights.path)
    return None


def repository_config(spec: ModelSpec, *, torch_home=None, hf_home=None) -> dict[str, Any]:
    """``open_clip_config.json`` of a ``local-dir:`` folder or (from the cache) an ``hf-hub:`` repository.

    Raises
    ------
    WeightsUnavailableError
        For an ``hf-hub:`` repository not in the cache yet (run the weights step).
    ConfigError
        For a folder without a readable config.
    """
    if spec.weights.kind == "checkpoint":
        path = spec.weights.path / CONFIG_NAME
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"model {spec.name!r}: {path} cannot be read ({exc}); a local-dir: folder holds open_clip_config.json "
                "and the weights (open_clip_model.safetensors or open_clip_pytorch_model.bin)"
            ) from exc
    from huggingface_hub import hf_hub_download

    repo = spec.weights.tag[len(HF_HUB) :]
    try:
        with hub_caches(torch_home, hf_home, offline=True):
            return json.loads(Path(hf_hub_download(repo, CONFIG_NAME)).read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 -- not cached yet
        raise WeightsUnavailableError(
            f"model {spec.name!r}: {CONFIG_NAME} of {spec.weights.tag} is not in the Hugging Face cache yet "
            "(the weights step fetches it)"
        ) from exc


def preprocess_config(spec: ModelSpec, *, torch_home=None, hf_home=None) -> dict[str, Any]:
    """The model's eval preprocess config as open_clip's factory resolves it, without building the model.

    Built-in names: open_clip's defaults merged with the pretrained tag's values and the vision
    tower's ``image_size``; ``local-dir:`` / ``hf-hub:``: the repository config's ``preprocess_cfg``.
    """
    open_clip = _open_clip()
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    config = dataclasses.asdict(PreprocessCfg())
    if model_id(spec) != spec.arch:
        repo = repository_config(spec, torch_home=torch_home, hf_home=hf_home)
        model_cfg = repo["model_cfg"]
        config = merge_preprocess_dict(config, repo.get("preprocess_cfg", {}))
    else:
        model_cfg = open_clip.get_model_config(spec.arch)
        if spec.weights.kind == "pretrained":
            config = merge_preprocess_dict(config, open_clip.get_pretrained_cfg(spec.arch, spec.weights.tag))
    config["size"] = model_cfg["vision_cfg"].get("image_size", config["size"])
    return config


class OpenClipSource:
    """open_clip models (see the module docstring)."""

    name = "open_clip"
    package = "open_clip"
    extra = "open_clip"
    default_layer = "embedding"
    arch_key = "arch"
    weights_required = True
    extra_keys: tuple[str, ...] = SOURCE_OPTION_KEYS["open_clip"]
    arch_help = "an open_clip model name such as ViT-B-32 (open_clip.list_models())"
    weights_help = (
        "Write a pretrained tag (openai, laion2b_s34b_b79k; open_clip.list_pretrained_tags_by_model(arch)), "
        "'hf-hub:org/repo', a checkpoint path, 'local-dir:PATH',"
    )
    layer_help = "'embedding' (encode_image) or 'pre_projection'"

    def resolve_arch(self, arch: Any, *, model_name: str) -> str:
        """Any non-empty string here: the name is checked against open_clip's built-in models in
        :meth:`resolve_weights` unless the weights bring their own config (hf-hub:, local-dir:)."""
        if not isinstance(arch, str) or not arch:
            raise ConfigError(f"model {model_name!r}: 'arch' must be an open_clip model name, got {arch!r}")
        return arch

    def _check_builtin(self, arch: str, *, model_name: str) -> None:
        """ConfigError listing close matches when ``arch`` is not a built-in open_clip model."""
        open_clip = _open_clip()
        names = open_clip.list_models()
        if arch not in names:
            close = difflib.get_close_matches(arch, names, n=6, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"model {model_name!r}: unknown open_clip arch {arch!r}.{hint} All names: open_clip.list_models(); "
                "or give weights 'hf-hub:org/repo' / 'local-dir:PATH' for a model with its own config."
            )

    def resolve_weights(self, arch: str, weights: Any, *, model_name: str, check_files: bool = True) -> ResolvedWeights:
        """A pretrained tag of ``arch`` (valid tags listed otherwise), ``hf-hub:``, a file, ``local-dir:``, or null."""
        if weights is not None and (not isinstance(weights, str | os.PathLike) or not str(weights)):
            raise ConfigError(
                f"model {model_name!r}: 'weights' must be a pretrained tag, 'hf-hub:org/repo', a checkpoint "
                f"path, 'local-dir:PATH' or null, got {weights!r}"
            )
        value = None if weights is None else str(weights)
        if value is not None and value.startswith(HF_HUB):
            if "/" not in value[len(HF_HUB) :]:
                raise ConfigError(f"model {model_name!r}: weights {value!r} must name a repository: hf-hub:org/repo")
            return ResolvedWeights("pretrained", value, tag=value)
        if value is not None and value.startswith(LOCAL_DIR):
            folder = checkpoint_weights(
                value[len(LOCAL_DIR) :],
                model_name=model_name,
                check_files=check_files,
                what="a folder holding open_clip_config.json and the model weights",
            )
            return dataclasses.replace(folder, configured=value)
        self._check_builtin(arch, model_name=model_name)
        if value is None:
            return ResolvedWeights("random", None)
        if isinstance(weights, os.PathLike) or is_checkpoint_path(value):
            return checkpoint_weights(
                value, model_name=model_name, check_files=check_files, what=f"an open_clip {arch} checkpoint"
            )
        tags = _open_clip().list_pretrained_tags_by_model(arch)
        if value not in tags:
            close = difflib.get_close_matches(value, tags, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"model {model_name!r}: open_clip {arch} has no pretrained tag {value!r}.{hint} Valid tags for "
                f"{arch}: {', '.join(tags) if tags else 'none'}; or 'hf-hub:org/repo', a checkpoint path, "
                "'local-dir:PATH', or null for random init."
            )
        return ResolvedWeights("pretrained", value, tag=value)

    def resolve_layer(self, layer: str, *, model_name: str) -> str:
        """``embedding`` or ``pre_projection``; ConfigError otherwise."""
        if layer in LAYERS:
            return layer
        raise ConfigError(
            f"model {model_name!r}: layer {layer!r} is not available for source open_clip; use {self.layer_help}"
        )

    def resolve_options(self, spec: Any, *, model_name: str) -> dict[str, Any]:
        """open_clip has no extra keys."""
        return {}

    def _create(
        self, spec: ModelSpec, *, cache_dir: Path | None, load_weights: bool = True, device: str = "cpu"
    ) -> nn.Module:
        """``open_clip.create_model`` for the spec (random init seeded), eval mode.

        ``device="meta"``: built on PyTorch's meta device without weights (shapes only, no memory).
        """
        if device == "meta":
            with torch.device("meta"):
                return self._create(spec, cache_dir=cache_dir, load_weights=False, device="meta-inner")
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            torch.manual_seed(RANDOM_INIT_SEED)
            warnings.simplefilter("ignore")
            model = _open_clip().create_model(
                model_id(spec),
                pretrained=pretrained_arg(spec) if load_weights else None,
                load_weights=load_weights,
                cache_dir=str(cache_dir) if cache_dir is not None else None,
                device="meta" if device == "meta-inner" else device,
            )
        return model.eval()

    def build(
        self, spec: ModelSpec, *, torch_home: str | os.PathLike | None = None, hf_home: str | os.PathLike | None = None
    ) -> nn.Module:
        """The CLIP model on the CPU, eval mode, with the hub offline (hub weights from the caches)."""
        if spec.weights.kind != "pretrained":
            return self._create(spec, cache_dir=None)
        with hub_caches(torch_home, hf_home, offline=True) as hf:
            try:
                return self._create(spec, cache_dir=hf / "hub" if hf is not None else None)
            except Exception as exc:  # noqa: BLE001 -- every hub failure means the cache lacks the files
                raise WeightsUnavailableError(
                    not_cached_error(
                        spec.name, f"open_clip weights {spec.arch} {spec.weights.tag}", exc, hf, torch_home
                    )
                ) from exc

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
        """The weights step for a tag or ``hf-hub:``: load from the cache, else download into it.

        ``check_hash`` and ``progress`` are unused: the hub client verifies and reports its own
        downloads (see :func:`corrembed.models.hub.hub_fetch`).

        Raises
        ------
        WeightsUnavailableError
            Within about ``timeout`` seconds when not cached and the hub is unreachable or
            downloads are disabled (model, tag, caches and how to fill them named).
        """
        hub_fetch(
            spec.name,
            f"open_clip weights {spec.arch} {spec.weights.tag}",
            cached=lambda: self.build(spec, torch_home=torch_home, hf_home=hf_home),
            download=lambda hf: self._create(spec, cache_dir=hf / "hub" if hf is not None else None),
            torch_home=torch_home,
            hf_home=hf_home,
            allow_download=allow_download,
            timeout=timeout,
        )
        return {"resolved": spec.weights.tag}

    def preprocessing(self, spec: ModelSpec, *, torch_home=None, hf_home=None) -> Preprocessing:
        """open_clip's own eval transform (``image_transform_v2`` of the model's preprocess config).

        Raises
        ------
        ConfigError
            For a resize mode the embed stage cannot reproduce exactly (``longest``).
        """
        _open_clip()
        from open_clip.transform import PreprocessCfg, image_transform_v2

        config = preprocess_config(spec, torch_home=torch_home, hf_home=hf_home)
        transform = image_transform_v2(PreprocessCfg(**config), is_train=False)
        steps = list(transform.transforms)
        kinds = [type(t).__name__ for t in steps]
        resize, normalize = steps[0], steps[-1]
        mode = config.get("resize_mode", "shortest")
        if kinds[0] != "Resize" or kinds[-1] != "Normalize" or mode not in ("shortest", "squash"):
            raise ConfigError(
                f"model {spec.name!r}: open_clip's eval transform for {spec.arch} is {kinds} (resize_mode {mode!r}); "
                "only resize (shortest side or squash) + centre crop + normalise is supported"
            )
        size = single_size(config["size"])
        preprocessing = Preprocessing(
            single_size(resize.size),
            size,
            tuple(float(v) for v in normalize.mean),
            tuple(float(v) for v in normalize.std),
            resize.interpolation.value,
            resize.antialias,
            f"open_clip {spec.arch} {spec.weights.configured} eval transform (image_transform_v2)",
            resize_mode=mode,
        )
        return preprocessing.with_overrides(spec.transform_overrides)

    def extractor(self, model: nn.Module, spec: ModelSpec) -> nn.Module:
        """embedding: ``model.encode_image(x)``; pre_projection: the vision tower's pooled output
        before its projection (ViT: with ``proj`` switched off for the call; timm towers: the trunk)."""
        if spec.layer == "embedding":
            return FunctionExtractor(model, lambda m, x: m.encode_image(x), spec.layer)
        visual = model.visual
        if hasattr(visual, "trunk") and hasattr(visual, "head"):
            return FunctionExtractor(model, lambda m, x: m.visual.trunk(x), spec.layer)
        if isinstance(getattr(visual, "proj", None), nn.Parameter):
            return FunctionExtractor(model, _without_projection, spec.layer)
        raise ConfigError(
            f"model {spec.name!r}: layer 'pre_projection' is not available for {spec.arch} "
            f"({type(visual).__name__} projects inside its pooling); use layer: embedding"
        )

    def weights_identity(self, spec: ModelSpec) -> dict[str, Any]:
        """Tag or hf-hub id, a checkpoint's (or folder's) content hash, or the seed; with the
        model id and the open_clip version (its model code defines the numerics)."""
        open_clip = _open_clip()
        weights = spec.weights
        if weights.kind == "pretrained":
            identity: dict[str, Any] = {"kind": "pretrained", "tag": weights.tag}
        elif weights.kind == "checkpoint":
            identity = {"kind": "checkpoint", "sha256": path_sha256(weights.path)}
        else:
            identity = {"kind": "random", "seed": RANDOM_INIT_SEED, "torch": torch.__version__}
        return {
            **identity,
            "model_id": model_id(spec) if weights.kind != "checkpoint" else spec.arch,
            "open_clip": open_clip.__version__,
        }

    def imagenet(self, spec: ModelSpec) -> dict[str, Any]:
        """Zero-shot ImageNet-1k top-1 from open_clip's published table for (arch, tag)
        (``acc1_kind`` zero-shot), with its parameter count and GFLOPs; otherwise empty."""
        values: dict[str, Any] = dict.fromkeys(IMAGENET_KEYS)
        if spec.weights.kind == "pretrained":
            published = open_clip_accuracy(spec.arch, spec.weights.tag)
            if published:
                values.update(published, acc1_kind="zero-shot")
        if values["num_params"] is None and model_id(spec) == spec.arch:
            values["num_params"] = count_parameters(self._create(spec, cache_dir=None, device="meta").visual)
        return values

    def check(self, spec: ModelSpec) -> None:
        """The layer exists for this vision tower (the model built on the meta device, no weights)."""
        if model_id(spec) != spec.arch and spec.weights.kind == "pretrained":
            return  # hf-hub: the config arrives with the weights step
        self.extractor(self._create(spec, cache_dir=None, device="meta"), spec)


def _without_projection(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The ViT vision tower's output with its ``proj`` switched off for this call (restored after)."""
    visual = model.visual
    projection = visual.proj
    visual.proj = None
    try:
        return visual(x)
    finally:
        visual.proj = projection


SOURCE = OpenClipSource()

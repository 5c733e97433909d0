"""The weights cache: fetch pretrained weights before any embedding job, or explain how to.

Cluster compute nodes often have no internet, so the workflow's "weights" stage runs as a
local rule: :func:`ensure_weights` has each model's source ``fetch`` its weights into the cache
(torchvision: torch.hub's layout, ``{torch_home}/hub/checkpoints/{basename(url)}``, downloaded
by :func:`corrembed.models.download.download_file`) and embedding jobs then
read it with :func:`load_state_dict_offline` / :func:`corrembed.models.build_model`, which never
download. When a download is impossible, :class:`WeightsUnavailableError` names the exact file,
its URL and the folder to put it in.

Hub weights of the other sources (timm, open_clip, Hugging Face) go through the source's
``fetch`` into ``torch_home`` and ``hf_home`` (:mod:`corrembed.models.hub`); embedding jobs read
them with the hub offline.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..errors import WeightsUnavailableError
from ..storage import file_sha256
from .checkpoints import path_sha256
from .parse import parse_model_spec
from .source import source_of
from .spec import ModelSpec
from .torchvision_source import torchvision_cache_file, weights_unavailable_message


def ensure_weights(
    spec: Mapping[str, Any] | ModelSpec,
    torch_home: str | os.PathLike,
    *,
    model_name: str,
    allow_download: bool = True,
    timeout: float = 10,
    check_hash: bool = False,
    progress: Callable[[str], None] | None = None,
    hf_home: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Make sure the spec's weights are available locally; return a record of them.

    This is the only place that downloads (the workflow's ``weights`` step, on the login node).
    Weights of a source's own kind (torchvision enums, hub tags) go through the source's
    ``fetch`` (see :mod:`corrembed.models.hub`): cached files are used, missing ones downloaded
    (``timeout`` seconds per network operation, hashes checked, written atomically), or
    :class:`WeightsUnavailableError` names the model, the file and how to work offline. A
    checkpoint must exist and its sha256 is recorded; random init needs nothing.

    Parameters
    ----------
    spec : ModelSpec or mapping
        The model (a mapping is parsed here: a missing checkpoint is unavailable weights).
    torch_home : path
        The weights cache root.
    model_name : str
        The config key of the model, named in every message.
    allow_download : bool
        False: anything not cached is an error (nothing contacted).
    timeout : float
        Seconds per network operation (and for the hub probe).
    check_hash : bool
        Check a cached torchvision file's sha256 against the prefix in its name.
    progress : callable or None
        Receives download progress lines (default: stderr).
    hf_home : path or None
        The Hugging Face cache (default ``{torch_home}/huggingface``).

    Returns
    -------
    dict
        ``{model, arch, weights, resolved, kind, path, bytes, sha256}`` (``path``/``bytes``
        /``sha256`` None where they do not apply; ``sha256`` is computed for checkpoints, and
        for enum files only with ``check_hash``), plus what the source's ``fetch`` adds.

    Raises
    ------
    WeightsUnavailableError
        The weights cannot be made available (offline, disabled, bad hash, missing file).
    """
    # A missing checkpoint is reported below as unavailable weights, not as a config typo.
    spec = parse_model_spec(spec, model_name=model_name, check_files=False)
    weights = spec.weights
    record: dict[str, Any] = {
        "model": spec.name,
        "arch": spec.arch,
        "weights": weights.configured,
        "resolved": weights.resolved,
        "kind": weights.kind,
        "path": None,
        "bytes": None,
        "sha256": None,
    }
    if weights.kind == "random":
        return record
    if weights.kind == "checkpoint":
        record.update(checkpoint_record(spec))
        return record
    fetched = source_of(spec).fetch(
        spec,
        torch_home=torch_home,
        hf_home=hf_home,
        allow_download=allow_download,
        timeout=timeout,
        check_hash=check_hash,
        progress=progress,
    )
    record.update(fetched)
    return record


def checkpoint_record(spec: ModelSpec) -> dict[str, Any]:
    """``{path, bytes, sha256}`` of a checkpoint file or folder (a folder's hash: over its files).

    Raises
    ------
    WeightsUnavailableError
        When the file does not exist (the model and the configured path named).
    """
    weights = spec.weights
    path = weights.path
    if path.is_dir():
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return {"path": str(path), "bytes": size, "sha256": path_sha256(path)}
    if not path.is_file():
        raise WeightsUnavailableError(
            f"model {spec.name!r}: checkpoint file {path} (weights: {weights.configured!r}) does "
            "not exist. Copy it there, or change 'weights:' to its actual path."
        )
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def load_state_dict_offline(
    spec: Mapping[str, Any] | ModelSpec, torch_home: str | os.PathLike, *, model_name: str
) -> dict[str, torch.Tensor]:
    """The state dict of the spec's enum weights from the cache; never downloads.

    To build a ready model use :func:`corrembed.models.build_model`, which also applies
    torchvision's weight-dependent builder arguments.

    Parameters
    ----------
    spec : ModelSpec or mapping
        A model with torchvision enum weights (a mapping is parsed here).
    torch_home : path
        The weights cache root.
    model_name : str
        The config key of the model.

    Returns
    -------
    dict of str to torch.Tensor
        The state dict, on the CPU.

    Raises
    ------
    WeightsUnavailableError
        When the file is not there (same message as :func:`ensure_weights`).
    ValueError
        When the weights are not a torchvision enum.
    """
    spec = parse_model_spec(spec, model_name=model_name)
    if spec.weights.kind != "torchvision":
        raise ValueError(f"model {spec.name!r}: weights {spec.weights.configured!r} are not a torchvision enum")
    path = torchvision_cache_file(spec.weights.enum, torch_home)
    if not (path.is_file() and path.stat().st_size > 0):
        raise WeightsUnavailableError(
            weights_unavailable_message(spec, path, "embedding jobs never download; run the weights stage first")
        )
    return torch.load(path, map_location="cpu", weights_only=True)

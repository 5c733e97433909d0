"""Checked state-dict loading for local checkpoints (any source that loads a ``torch.nn.Module``).

A checkpoint that does not fit the architecture is a user error: instead of torch's long
``RuntimeError`` the user gets a :class:`ConfigError` naming the model, the file and the first
missing, unexpected and shape-mismatched keys.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..storage import file_sha256

#: Wrapping keys under which training scripts commonly store the state dict.
WRAPPER_KEYS = ("state_dict", "model")
#: Key prefixes added by DataParallel and torch.compile, removed when every key has one.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def load_checkpoint_state_dict(path: str | os.PathLike, *, model_name: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a state dict (tensors on the CPU).

    Parameters
    ----------
    path : path
        A ``torch.save``d state dict, or a dict holding one under ``"state_dict"`` or ``"model"``;
        ``.safetensors`` files are read with ``safetensors.torch.load_file``.
    model_name : str
        The model, named in errors.

    Returns
    -------
    dict of str to Tensor
        The state dict, with a ``module.`` / ``_orig_mod.`` prefix on every key removed.

    Raises
    ------
    ConfigError
        When the file is not a readable tensor dict.
    """
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the same user error
        raise ConfigError(
            f"model {model_name!r}: cannot read checkpoint {path}: {type(exc).__name__}: {exc}. "
            "Expected a file written by torch.save(model.state_dict(), path)."
        ) from exc
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
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
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> list[str]:
    """Describe how ``given`` fails to fit ``expected`` (empty list: it fits exactly).

    Returns
    -------
    list of str
        One part per problem kind, e.g. ``"2 missing: a.weight, a.bias"``, at most 5 keys each.
    """
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        f"{k} (checkpoint {tuple(given[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in given and given[k].shape != expected[k].shape
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            more = f" ... (+{len(keys) - 5} more)" if len(keys) > 5 else ""
            parts.append(f"{len(keys)} {label}: {', '.join(keys[:5])}{more}")
    return parts


def load_state_dict_checked(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    model_name: str,
    source: Any,
    arch: str,
    library: str = "torchvision",
) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with a readable error.

    Parameters
    ----------
    model : nn.Module
        The freshly built network (may live on the meta device: only keys and shapes matter).
    state_dict : mapping
        What the checkpoint holds.
    model_name, source, arch, library : str
        Named in the error (the model, the checkpoint file, the architecture and its library).

    Raises
    ------
    ConfigError
        Naming the first missing, unexpected and shape-mismatched keys.
    """
    parts = state_dict_mismatch(model.state_dict(), state_dict)
    if parts:
        raise ConfigError(
            f"model {model_name!r}: checkpoint {source} does not fit {library} {arch}() "
            f"(1000 classes): {'; '.join(parts)}. Check 'arch' matches the network the checkpoint "
            "was saved from."
        )
    model.load_state_dict(state_dict, strict=True)


def path_sha256(path: str | os.PathLike) -> str:
    """Content hash of a checkpoint file, or of a folder (sha256 over its files' relative names and hashes).

    A folder (open_clip ``local-dir:``, a Hugging Face ``save_pretrained`` folder) is hashed so
    that renaming or moving it keeps its embeddings cached, while changing any file re-embeds.
    """
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()

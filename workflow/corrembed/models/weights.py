"""The weights cache: fetch pretrained weights before any embedding job, or explain how to.

Cluster compute nodes often have no internet, so the workflow's "weights" stage runs as a
local rule: :func:`ensure_weights` puts each model's torchvision weights file into the cache
(torch.hub's layout, ``{torch_home}/hub/checkpoints/{basename(url)}``) and embedding jobs then
read it with :func:`load_state_dict_offline` / :func:`corrembed.models.build_model`, which never
download. When a download is impossible, :class:`WeightsUnavailableError` names the exact file,
its URL and the folder to put it in.

Hub weights of the other sources (timm, open_clip, Hugging Face) go through the source's
``fetch`` into ``torch_home`` and ``hf_home`` (:mod:`corrembed.models.hub`); embedding jobs read
them with the hub offline.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.hub import HASH_REGEX

from ..errors import WeightsUnavailableError
from ..storage import atomic_path, file_sha256
from .checkpoints import path_sha256
from .parse import parse_model_spec
from .source import source_of
from .spec import ModelSpec
from .torchvision_source import torchvision_cache_file, weights_unavailable_message

_CHUNK = 1 << 20

# Indirection so tests can simulate offline machines or serve bytes without a network.
urlopen = urllib.request.urlopen


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

    - torchvision enum: the cache file must be present (size > 0; with ``check_hash`` also the
      sha256 prefix in its name, torch.hub's check) or is downloaded (``timeout`` seconds per
      network operation, hash prefix verified, written atomically). Failure (offline, blocked,
      ``allow_download=False``, bad hash) raises :class:`WeightsUnavailableError` naming the
      model, the enum, the file, the URL and the folder, and how to work offline.
    - hub weights of the other sources (``weights: pretrained``, an open_clip tag or
      ``hf-hub:``, a Hugging Face id): the source's ``fetch`` loads them from ``torch_home`` /
      ``hf_home`` (default ``{torch_home}/huggingface``) or downloads them there; when the hub
      is unreachable it stops within about ``timeout`` seconds naming the model, what is
      missing and how to fill the cache.
    - checkpoint: the file (or folder) must exist (WeightsUnavailableError otherwise); its
      sha256 is recorded (a folder's: over its files' names and hashes).
    - random init: nothing to fetch.

    Returns ``{model, arch, weights, resolved, kind, path, bytes, sha256}`` (``path``/``bytes``
    /``sha256`` None where they do not apply; ``sha256`` is computed for checkpoints, and for
    enum files only with ``check_hash``).
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
    if weights.kind == "pretrained":
        record.update(
            source_of(spec).fetch(
                spec, torch_home=torch_home, hf_home=hf_home, allow_download=allow_download, timeout=timeout
            )
        )
        return record
    if weights.kind == "checkpoint":
        path = weights.path
        if path.is_dir():
            record.update(path=str(path), bytes=sum(f.stat().st_size for f in path.rglob("*") if f.is_file()))
            record["sha256"] = path_sha256(path)
            return record
        if not path.is_file():
            raise WeightsUnavailableError(
                f"model {spec.name!r}: checkpoint file {path} (weights: {weights.configured!r}) does "
                "not exist. Copy it there, or change 'weights:' to its actual path."
            )
        record.update(path=str(path), bytes=path.stat().st_size, sha256=file_sha256(path))
        return record

    enum = weights.enum
    path = torchvision_cache_file(enum, torch_home)
    if path.is_file() and path.stat().st_size > 0:
        if check_hash:
            digest = file_sha256(path)
            prefix = expected_hash_prefix(path.name)
            if prefix and not digest.startswith(prefix):
                raise WeightsUnavailableError(
                    weights_unavailable_message(
                        spec,
                        path,
                        f"the cached file is corrupt (sha256 {digest[:12]}..., its name "
                        f"says {prefix}...); delete it and run again",
                    )
                )
            record["sha256"] = digest
        record.update(path=str(path), bytes=path.stat().st_size)
        return record
    if not allow_download:
        raise WeightsUnavailableError(weights_unavailable_message(spec, path, "downloads are disabled"))
    try:
        digest = download_file(enum.url, path, timeout=timeout, progress=progress)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WeightsUnavailableError(
            weights_unavailable_message(spec, path, f"download failed: {type(exc).__name__}: {exc}")
        ) from exc
    record.update(path=str(path), bytes=path.stat().st_size, sha256=digest)
    return record


def expected_hash_prefix(file_name: str) -> str | None:
    """The sha256 prefix torch.hub encodes in a weights file name (``resnet50-11ad3fa6.pth``)."""
    match = HASH_REGEX.search(file_name)
    return match.group(1) if match and match.group(1) else None


def download_file(
    url: str, path: str | os.PathLike, *, timeout: float = 10, progress: Callable[[str], None] | None = None
) -> str:
    """Download ``url`` to ``path`` atomically; return the hex sha256 of the bytes.

    ``timeout`` bounds each network operation (unlike torch.hub's downloader, which can hang on a
    black-holed network). If the file name carries a sha256 prefix (torch.hub's convention) the
    bytes must match it, else ValueError and nothing is left behind. ``progress`` receives a
    line every ~5 s (default: stderr).
    """
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    target = Path(path)
    prefix = expected_hash_prefix(target.name)
    digest = hashlib.sha256()
    say(f"downloading {url} -> {target}")
    started = last = time.monotonic()
    with urlopen(url, timeout=timeout) as response, atomic_path(target) as tmp:
        total = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
        done = 0
        with open(tmp, "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                now = time.monotonic()
                if now - last > 5:
                    last = now
                    share = f" of {int(total) / 1e6:.1f}" if total else ""
                    say(f"  {done / 1e6:.1f}{share} MB, {done / 1e6 / (now - started):.1f} MB/s")
        hex_digest = digest.hexdigest()
        if prefix and not hex_digest.startswith(prefix):
            raise ValueError(
                f"sha256 {hex_digest[:12]}... of the downloaded bytes does not start with "
                f"{prefix} (from the file name); the download is corrupt"
            )
    return hex_digest


def load_state_dict_offline(
    spec: Mapping[str, Any] | ModelSpec, torch_home: str | os.PathLike, *, model_name: str
) -> dict[str, torch.Tensor]:
    """The state dict of the spec's enum weights from the cache; never downloads.

    Raises :class:`WeightsUnavailableError` (same message as :func:`ensure_weights`) when the
    file is not there. To build a ready model use :func:`corrembed.models.build_model`, which
    also applies torchvision's weight-dependent builder arguments.
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

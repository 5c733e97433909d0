"""Model hubs (Hugging Face Hub, torch.hub) for the sources that download: caches and offline mode.

The weights step (on the login node) downloads into caches under the config's control:
``torch_home`` (torch.hub files, ``{torch_home}/hub/checkpoints``) and ``hf_home`` (Hugging
Face Hub files, ``{hf_home}/hub``; default ``{torch_home}/huggingface``). Embed jobs then run
with the hub *offline*: :func:`hub_caches` sets ``HF_HUB_OFFLINE=1`` (the Hugging Face Hub's
documented switch), so a missing file fails at once instead of a compute node trying the network.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..errors import ConfigError, WeightsUnavailableError

#: Environment variables the Hugging Face Hub reads; restored after :func:`hub_caches`.
HF_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")


def default_hf_home(torch_home: str | os.PathLike | None) -> Path | None:
    """``{torch_home}/huggingface``: where Hugging Face files go when config ``hf_home`` is not set."""
    return None if torch_home is None else Path(torch_home).expanduser() / "huggingface"


def hf_cache_root(torch_home: str | os.PathLike | None, hf_home: str | os.PathLike | None) -> Path | None:
    """The Hugging Face cache root in use: ``hf_home`` (user-expanded), else :func:`default_hf_home`.

    Examples
    --------
    >>> hf_cache_root("/cache/torch", None).as_posix()
    '/cache/torch/huggingface'
    >>> hf_cache_root("/cache/torch", "/cache/hf").as_posix()
    '/cache/hf'
    """
    return Path(hf_home).expanduser() if hf_home is not None else default_hf_home(torch_home)


def _set_hub_constants(hf_home: Path, offline: bool, timeout: float) -> dict[str, object]:
    """Point an already imported ``huggingface_hub`` at ``hf_home`` (it reads its environment once,
    at import); return the previous values."""
    module = sys.modules.get("huggingface_hub.constants")
    if module is None:
        return {}
    values = {
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(hf_home / "hub"),
        "HF_HUB_OFFLINE": offline,
        "HF_HUB_ETAG_TIMEOUT": int(timeout),
        "HF_HUB_DOWNLOAD_TIMEOUT": int(timeout),
    }
    previous = {name: getattr(module, name) for name in values if hasattr(module, name)}
    for name, value in values.items():
        if name in previous:
            setattr(module, name, value)
    return previous


@contextlib.contextmanager
def hub_caches(
    torch_home: str | os.PathLike | None,
    hf_home: str | os.PathLike | None = None,
    *,
    offline: bool = True,
    timeout: float = 10,
) -> Iterator[Path | None]:
    """Run the block with the hubs' caches and offline mode set, then restore everything.

    Parameters
    ----------
    torch_home : path or None
        torch.hub's cache root (``torch.hub.set_dir({torch_home}/hub)``); None: left as it is.
    hf_home : path or None
        Hugging Face cache root (``HF_HOME``; files in ``{hf_home}/hub``); None:
        :func:`default_hf_home`.
    offline : bool
        ``HF_HUB_OFFLINE=1``: the hub is never contacted (embed jobs). The weights step passes False.
    timeout : float
        Seconds for each hub request (``HF_HUB_ETAG_TIMEOUT``, ``HF_HUB_DOWNLOAD_TIMEOUT``), so an
        unreachable hub fails within seconds.

    Yields
    ------
    Path or None
        The Hugging Face cache root in use.
    """
    hf = hf_cache_root(torch_home, hf_home)
    saved_env = {name: os.environ.get(name) for name in HF_VARIABLES}
    previous_hub_dir = torch.hub._hub_dir  # torch's own state; None means "derive from TORCH_HOME"
    previous_constants: dict[str, object] = {}
    try:
        if torch_home is not None:
            torch.hub.set_dir(str(Path(torch_home).expanduser() / "hub"))
        if hf is not None:
            os.environ.update(HF_HOME=str(hf), HF_HUB_CACHE=str(hf / "hub"))
            os.environ["HF_HUB_OFFLINE"] = "1" if offline else "0"
            os.environ["HF_HUB_ETAG_TIMEOUT"] = os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] = str(int(timeout))
            previous_constants = _set_hub_constants(hf, offline, timeout)
        yield hf
    finally:
        torch.hub._hub_dir = previous_hub_dir
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        module = sys.modules.get("huggingface_hub.constants")
        for name, value in previous_constants.items():
            setattr(module, name, value)


def fill_cache_instructions(model_name: str, hf_home: Path | None, torch_home: str | os.PathLike | None) -> str:
    """How to fill the caches on a connected machine (the end of every "weights unavailable" message)."""
    hf = hf_home if hf_home is not None else default_hf_home(torch_home)
    return (
        "To fill the cache, run the weights step where the internet is reachable (e.g. the login node: "
        f"`snakemake results/weights/{model_name}.json`), or on any connected machine run the same step "
        f"and copy the folders torch_home ({torch_home}) and hf_home ({hf}) over. Embed jobs always run "
        "with HF_HUB_OFFLINE=1 (they never download)."
    )


def hub_endpoint() -> str:
    """The Hugging Face Hub URL in use (``HF_ENDPOINT``, default ``https://huggingface.co``)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_unreachable(timeout: float = 10) -> str | None:
    """Why the Hugging Face Hub cannot be reached (name lookup or TCP connect within ``timeout``
    seconds), or None when it can. Checked once before a download, because the hub client
    retries an unreachable host for about a minute before giving up."""
    url = urlparse(hub_endpoint())
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({type(exc).__name__}: {exc})"


def not_cached_error(model_name: str, what: str, exc: Exception, hf: Path | None, torch_home) -> str:
    """:func:`hub_fetch_error` for a load from the caches with the hub offline (an embed job) that
    failed with ``exc``: embed jobs never download, so the weights step has not filled the cache."""
    return hub_fetch_error(model_name, what, f"embed jobs never download: {type(exc).__name__}: {exc}", hf, torch_home)


def hub_fetch_error(model_name: str, what: str, reason: str, hf: Path | None, torch_home) -> str:
    """The message of a failed hub fetch: the model, what is missing, why, and how to fill the cache."""
    return (
        f"model {model_name!r}: {what} is not in the cache and cannot be downloaded ({reason}).\n"
        f"  Hugging Face cache (hf_home): {hf}\n"
        f"  torch cache (torch_home):     {torch_home}\n" + fill_cache_instructions(model_name, hf, torch_home)
    )


def hub_fetch(
    model_name: str,
    what: str,
    *,
    cached: Callable[[], object],
    download: Callable[[Path | None], object],
    torch_home: str | os.PathLike | None,
    hf_home: str | os.PathLike | None = None,
    allow_download: bool = True,
    timeout: float = 10,
) -> None:
    """The weights step of a hub source: cached -> probe the hub -> download -> clear error.

    Every source that downloads from a hub (timm, open_clip, Hugging Face) fetches this way; its
    ``fetch`` passes two loaders and builds its record.

    Parameters
    ----------
    model_name : str
        The config key of the model, named in the error.
    what : str
        What is fetched, for the error (``"timm weights resnet18.a1_in1k (hub id ...)"``).
    cached : callable
        ``cached()`` loads from the caches with the hub offline; it raises
        :class:`WeightsUnavailableError` when the files are not there.
    download : callable
        ``download(hf)`` loads with the hub online, ``hf`` the Hugging Face cache root in use
        (files land in the caches). A :class:`ConfigError` it raises propagates as it is.
    torch_home, hf_home : path or None
        The caches (see :func:`hub_caches`).
    allow_download : bool
        False: a file not cached is an error (no network contacted).
    timeout : float
        Seconds for the reachability probe and each hub request.

    Raises
    ------
    WeightsUnavailableError
        Within about ``timeout`` seconds when the files are not cached and the hub is unreachable,
        downloads are disabled or the download fails: names the model, ``what``, the reason, the
        caches and how to fill them (:func:`hub_fetch_error`).

    Examples
    --------
    >>> def missing():
    ...     raise WeightsUnavailableError("not cached")
    >>> try:
    ...     hub_fetch("m", "weights x", cached=missing, download=print, torch_home=None, allow_download=False)
    ... except WeightsUnavailableError as exc:
    ...     print("downloads are disabled" in str(exc), "hf_home" in str(exc))
    True True
    """
    try:
        cached()
        return
    except WeightsUnavailableError as exc:
        cached_error = exc
    reason = "downloads are disabled" if not allow_download else hub_unreachable(timeout)
    with hub_caches(torch_home, hf_home, offline=False, timeout=timeout) as hf:
        if reason is None:
            try:
                download(hf)
                return
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 -- report any hub failure the same way
                reason = f"download failed: {type(exc).__name__}: {exc}"
    # the cause of the cache miss (the loader's own exception), when it kept one
    lookup = type(cached_error.__cause__ or cached_error).__name__
    raise WeightsUnavailableError(
        hub_fetch_error(model_name, what, f"{reason}; cache lookup: {lookup}", hf, torch_home)
    ) from cached_error

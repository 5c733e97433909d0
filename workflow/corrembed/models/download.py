"""Downloading one weights file: atomic, with a per-operation timeout and torch.hub's hash check.

torch.hub's own downloader can hang on a black-holed network and leaves partial files behind;
:func:`download_file` bounds every network operation, writes through
:func:`corrembed.storage.atomic_path` and checks the sha256 prefix torch.hub encodes in a weights
file's name. Used by the torchvision source's ``fetch`` (the weights step).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from torch.hub import HASH_REGEX

from ..storage import atomic_path

_CHUNK = 1 << 20

# Indirection so tests can simulate offline machines or serve bytes without a network.
urlopen = urllib.request.urlopen


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

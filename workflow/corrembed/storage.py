"""Atomic file writing, and the one file hash every stage uses.

Snakemake trusts any output file that exists after a job. Writing to a temporary file in the
same directory and renaming it over the target (atomic on POSIX) means an interrupted job
leaves either the previous file or nothing, never a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .machine_errors import mark_writing


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk_size`` blocks.

    What ingest stores in ``images.parquet``'s ``sha256``, what identifies a checkpoint, and what
    the weights step checks a download against.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "empty.bin"
    >>> _ = path.write_bytes(b"")
    >>> file_sha256(path)[:12]
    'e3b0c44298fc'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file is removed if the block raises. Parent directories are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates the file private (0600); give it the mode any new file gets under the
        # user's umask, so that results on a shared cluster are as readable as `touch`ed ones.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            mark_writing(exc, target)  # a failed write() often names no file: say which one
        raise


def _umask() -> int:
    """The process umask.

    Read from ``/proc/self/status`` where Linux offers it: setting and restoring the umask (the
    only portable way to read it) briefly changes it for every thread of the process, and the
    embed stage writes files from several threads.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (NaN written as null)."""
    write_text(path, json.dumps(nan_to_none(obj), indent=2, sort_keys=False) + "\n")


def write_figure(path: str | os.PathLike, figure, **savefig: Any) -> None:
    """Save a matplotlib figure to ``path`` atomically; format from the suffix (PNG without one).

    ``savefig``: further ``Figure.savefig`` arguments (dpi, bbox_inches, ...). The figure is not closed.
    """
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", **savefig)


def write_table(path: str | os.PathLike, table) -> None:
    """Write a polars DataFrame to ``path`` atomically; format from the suffix (.csv/.parquet)."""
    suffix = Path(path).suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            table.write_csv(tmp)
        elif suffix == ".parquet":
            table.write_parquet(tmp)
        else:
            raise ValueError(f"write_table: unsupported suffix {suffix!r} for {path}")


def nan_to_none(obj: Any) -> Any:
    """``obj`` with every float NaN (in nested dicts, lists and tuples) replaced by None: JSON's null.

    Examples
    --------
    >>> nan_to_none({"r": float("nan"), "ci": (0.1, float("nan"))})
    {'r': None, 'ci': [0.1, None]}
    """
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    return obj

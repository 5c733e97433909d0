"""Failures of the machine, not of the input, as CorrEmbed messages.

A full disk, a permission denied, a file that vanished, a read-only cache or memory running out
are not bugs of the workflow and not mistakes in the catalogue: the user needs the path, what the
job was doing and what to do, not a traceback. :func:`machine_error` turns such an exception into
a :class:`MachineError`; :func:`corrembed.joblog.job_logging` (the entry point of every rule
script) applies it, so every stage reports these failures the same way.

:func:`corrembed.storage.atomic_path` marks an exception raised while it writes with the target
(:data:`WRITING_ATTRIBUTE`), because a failed ``write()`` often carries no file name.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import CorrEmbedError

#: Attribute set on an OSError raised inside :func:`corrembed.storage.atomic_path`: the file written.
WRITING_ATTRIBUTE = "corrembed_writing"

#: What to lower when a stage runs out of memory, by the rule's name (the job name's prefix).
MEMORY_ADVICE = {
    "embed": "lower embed.batch_size (and embed.num_workers, each worker holds decoded batches)",
    "layer": "lower embed.batch_size (a layer sweep holds every swept layer's batch)",
    "score": "lower scoring.memory_budget_mb (the similarity blocks' memory)",
    "diagnostics": "lower scoring.memory_budget_mb, or set diagnostics.enabled: false",
    "ingest": "lower ingest.threads (each thread decodes one image)",
}

_TEXT_ERRNOS = (
    ("No space left on device", errno.ENOSPC),
    ("Disk quota exceeded", errno.EDQUOT),
    ("Read-only file system", errno.EROFS),
    ("Permission denied", errno.EACCES),
)


class MachineError(CorrEmbedError):
    """The machine stopped a job: no space, no permission, a vanished file, a read-only folder,
    or no memory. The message names the path, what was being done and what to do."""


def error_number(exc: BaseException) -> int | None:
    """The errno of an OSError, also of those (pyarrow's) that carry it only in their text."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    text = str(exc)
    return next((number for phrase, number in _TEXT_ERRNOS if phrase in text), None)


def machine_error(exc: BaseException, job: str) -> MachineError | None:
    """The :class:`MachineError` for ``exc`` raised in ``job`` (a rule's job name), or None when
    ``exc`` is not a failure of the machine (then the traceback is what helps).

    Examples
    --------
    >>> import errno
    >>> error = machine_error(OSError(errno.ENOSPC, "No space left on device", "/r/x.parquet"), "embed[a]")
    >>> print(str(error).splitlines()[0])
    embed[a]: no space left on device while writing /r/x.parquet.
    >>> machine_error(ValueError("bad value"), "embed[a]") is None
    True
    """
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch.cuda's too
        stage = job.split("[", 1)[0]
        advice = next((text for prefix, text in MEMORY_ADVICE.items() if stage.startswith(prefix)), None)
        device = "GPU" if type(exc).__name__ == "OutOfMemoryError" else "machine"
        return MachineError(
            f"{job}: the {device} ran out of memory ({type(exc).__name__}: {exc}).\n"
            f"What to do: {advice + ', or ' if advice else ''}give the job more memory (on a cluster its mem_mb: "
            "config ingest.resources / embed.resources, other rules `--set-resources RULE:mem_mb=...`), "
            "then rerun the same command."
        )
    number = error_number(exc)
    if number is None:
        return None
    path = getattr(exc, WRITING_ATTRIBUTE, None) or getattr(exc, "filename", None)
    where = f" {path}" if path else " (the file is not named by the error: see the rule's outputs above)"
    folder = Path(path).parent if path else Path(".")
    rerun = "then rerun the same command: finished files and cache segments are kept, nothing half-written is used"
    if number in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on device" if number == errno.ENOSPC else "disk quota exceeded"
        advice = (
            f"free space on that file system (`df -h {folder}`; the embedding cache, config embed.cache, and "
            "results/ are the large folders) or point embed.cache / the working directory at a larger disk, " + rerun
        )
        return MachineError(f"{job}: {what} while writing{where}.\nWhat to do: {advice}.")
    if number in (errno.EACCES, errno.EPERM):
        advice = (
            f"check who owns it (`ls -ld {folder}`), make it writable for you (chmod u+w) or, for a shared "
            "embedding cache, set embed.cache to a folder of your own, " + rerun
        )
        return MachineError(f"{job}: permission denied on{where}.\nWhat to do: {advice}.")
    if number == errno.EROFS:
        advice = (
            "that file system is mounted read-only: remount it read-write, or set embed.cache (and run "
            "from) a writable folder; a read-only embedding cache is still read, " + rerun
        )
        return MachineError(f"{job}: read-only file system at{where}.\nWhat to do: {advice}.")
    if number == errno.ENOENT:
        advice = (
            "if it is an input, check its path in the config; if it existed when the job started, it vanished "
            "while the job ran (deleted by another run, a cleanup job, or a disk that went away): make sure "
            "nothing else deletes files in results/ or the cache, then rerun with `snakemake --rerun-incomplete`"
        )
        return MachineError(f"{job}: no such file or folder:{where}.\nWhat to do: {advice}.")
    return None


def mark_writing(exc: OSError, path: str | os.PathLike) -> None:
    """Record on ``exc`` the file being written when it was raised (unless it names one already)."""
    if getattr(exc, WRITING_ATTRIBUTE, None) is None:
        try:
            setattr(exc, WRITING_ATTRIBUTE, str(path))
        except AttributeError:  # an exception type with __slots__: the message then lacks the path
            pass

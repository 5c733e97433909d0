"""Logging for workflow jobs.

Each rule has a ``log:`` file; :func:`job_logging` sends Python logging, warnings and anything
printed to stderr there, so ``tail -f logs/...`` shows a job's progress and its error message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import traceback
from collections.abc import Iterator

from .errors import CorrEmbedError
from .machine_errors import machine_error


@contextlib.contextmanager
def job_logging(path: str | os.PathLike, name: str) -> Iterator[logging.Logger]:
    """Log to ``path`` for the duration of a job; yields the job's logger.

    A :class:`CorrEmbedError` is logged and printed as its message alone (it already says what
    to do) and the job exits with status 1, and so is a failure of the machine (no space, permission
    denied, a vanished file, a read-only folder, out of memory: :mod:`corrembed.machine_errors`); any
    other exception is logged with its traceback and propagates. Either way the job fails.
    """
    stream = open(path, "a", buffering=1, encoding="utf-8")  # line-buffered: readable when tailed
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    saved_stderr, sys.stderr = sys.stderr, stream
    logger = logging.getLogger(f"corrembed.{name}")
    # Where the job ran: on a cluster, the scheduler's job id ties this log to sacct's record.
    logger.info(
        "job %s on host %s (pid %d, Slurm job %s)",
        name,
        socket.gethostname(),
        os.getpid(),
        os.environ.get("SLURM_JOB_ID", "none"),
    )
    try:
        yield logger
    except CorrEmbedError as error:
        # The message already says what is wrong and what to do: no traceback to wade through.
        logger.error("%s", error)
        print(f"\nCorrEmbed error in {name}:\n{error}\n", file=saved_stderr)
        raise SystemExit(1) from None
    except BaseException as exc:
        machine = machine_error(exc, name)  # no space, permission, vanished file, read-only, memory
        if machine is None:
            logger.error("unexpected failure:\n%s", traceback.format_exc())
            raise
        logger.error("%s\n(details: %s: %s)", machine, type(exc).__name__, exc)
        print(f"\nCorrEmbed error in {name}:\n{machine}\n", file=saved_stderr)
        raise SystemExit(1) from None
    finally:
        sys.stderr = saved_stderr
        root.removeHandler(handler)
        stream.close()

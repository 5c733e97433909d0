"""Failures of the machine read as CorrEmbed messages naming the path and what to do.

The disk-full case is real: the cache lives on a small tmpfs filled by a ballast file (skipped
with the reason where mounting is not permitted); after the ballast is deleted the same run
completes and equals a clean run.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from corrembed.embed.store import read_embeddings
from corrembed.joblog import job_logging
from corrembed.machine_errors import MachineError, machine_error
from corrembed.storage import atomic_path
from test_cache_integrity import _tmpfs
from test_embed_incremental import _make_images, _run


@pytest.mark.parametrize(
    ("number", "phrase", "advice"),
    [
        (errno.ENOSPC, "no space left on device while writing", "df -h"),
        (errno.EDQUOT, "disk quota exceeded while writing", "larger disk"),
        (errno.EACCES, "permission denied on", "ls -ld"),
        (errno.EPERM, "permission denied on", "chmod u+w"),
        (errno.EROFS, "read-only file system at", "remount it read-write"),
        (errno.ENOENT, "no such file or folder", "--rerun-incomplete"),
    ],
)
def test_each_machine_error_names_the_path_and_what_to_do(number, phrase, advice):
    error = machine_error(OSError(number, os.strerror(number), "/data/results/x.parquet"), "score[m, binary]")
    assert isinstance(error, MachineError)
    text = str(error)
    assert text.startswith(f"score[m, binary]: {phrase}") and "/data/results/x.parquet" in text
    assert "What to do:" in text and advice in text


def test_errors_of_the_input_or_code_keep_their_traceback():
    assert machine_error(ValueError("x"), "embed[m]") is None
    assert machine_error(OSError(errno.EINVAL, "Invalid argument"), "embed[m]") is None
    assert machine_error(KeyError("k"), "embed[m]") is None


def test_pyarrow_style_oserror_without_errno_is_recognised():
    error = machine_error(OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"), "tags[b]")
    assert error is not None and "no space left on device" in str(error)


def test_out_of_memory_names_the_knob_of_the_stage():
    embed = str(machine_error(MemoryError(), "embed[resnet50, 00000-of-00001]"))
    assert "ran out of memory" in embed and "embed.batch_size" in embed and "mem_mb" in embed
    score = str(machine_error(MemoryError(), "score[resnet50, binary]"))
    assert "scoring.memory_budget_mb" in score

    class OutOfMemoryError(RuntimeError):  # torch.cuda.OutOfMemoryError's name
        pass

    assert "the GPU ran out of memory" in str(machine_error(OutOfMemoryError("CUDA out of memory"), "embed[m]"))


def test_atomic_write_failure_names_the_target(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(OSError) as caught:
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")  # what write() into a full disk raises
    assert str(target) in str(machine_error(caught.value, "summary")) and not list(tmp_path.iterdir())


def test_job_logging_prints_the_message_not_a_traceback(tmp_path, capsys):
    log = tmp_path / "job.log"
    with pytest.raises(SystemExit) as stop:
        with job_logging(log, "merge_embeddings[m]"):
            raise OSError(errno.EROFS, "Read-only file system", "/ro/cache/seg.parquet")
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "CorrEmbed error in merge_embeddings[m]" in err and "/ro/cache/seg.parquet" in err
    assert "Traceback" not in err and "read-only file system" in log.read_text()


def test_disk_full_message_then_rerun_after_freeing_space(tmp_path, capsys):
    images = _make_images(tmp_path / "img", 20, seed=5)
    clean = _run(images, tmp_path / "clean", tmp_path / "clean_cache")
    assert clean["n_embedded"] == 20
    with _tmpfs(tmp_path / "small", "1m") as mount:
        ballast = mount / "ballast.bin"
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        ballast.write_bytes(b"\0" * (free - 16 * 1024))  # 16 KB left: a cache segment here is ~40 KB
        cache = mount / "cache"
        with pytest.raises(SystemExit):
            with job_logging(tmp_path / "embed.log", "embed[mnv3, 00000-of-00001]"):
                _run(images, tmp_path / "out", cache)
        err = capsys.readouterr().err
        assert "embed[mnv3, 00000-of-00001]: no space left on device while writing" in err
        assert str(cache) in err and "df -h" in err and "Traceback" not in err
        assert not list(cache.rglob("*.tmp")) and not list(cache.rglob(".seg-*"))  # nothing half-written left
        ballast.unlink()
        meta = _run(images, tmp_path / "out", cache)
        assert meta["n_embedded"] == 20
        np.testing.assert_allclose(
            read_embeddings(tmp_path / "out").vectors, read_embeddings(tmp_path / "clean").vectors, rtol=0, atol=1e-6
        )
        assert Path(cache).is_dir()

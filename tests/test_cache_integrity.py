"""The embedding cache never serves a damaged vector: faults injected into real cache segments.

Each fault is injected into the first of two segments of a real cache (8 and 12 entries). The
rerun must finish, equal a clean run (1e-6), embed exactly the damaged segment's images (counted
forward passes and the hashes of the new segment), hold the bad file in quarantine/ and warn with
its name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corrembed.embed import cache as embedding_cache
from corrembed.embed import integrity as cache_integrity
from corrembed.embed.cache import EmbeddingCache, cache_schema
from corrembed.embed.integrity import CacheIntegrityWarning, segment_name, verify_cache
from corrembed.embed.store import read_embeddings
from corrembed.records import EmbeddingMeta, ScoreRecord
from corrembed.summary.table import summary_table
from test_embed_incremental import _make_images, _run
from test_embed_shards import ForwardCounter

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def warm(tmp_path):
    """A cache with two segments (the catalogue's first 8 images, then the other 12) and a clean run."""
    images = _make_images(tmp_path / "img", 20, seed=3)
    cache = tmp_path / "cache"
    _run(images.head(8), tmp_path / "first", cache)
    _run(images, tmp_path / "second", cache)
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    segments = sorted(folder.glob("seg-*.parquet"))
    assert [pq.read_metadata(s).num_rows for s in segments] == [8, 12]
    clean = read_embeddings(tmp_path / "second").vectors
    return {"images": images, "cache": cache, "folder": folder, "segments": segments, "clean": clean, "tmp": tmp_path}


def _shas(path) -> list[str]:
    return pq.read_table(path, columns=["sha256"]).column("sha256").to_pylist()


def _rerun_and_check(warm, monkeypatch, damaged: Path, expected_reason: str, lost: list[str], *, held=True):
    """Rerun on the damaged cache and check every promise; return the meta."""
    before = set(warm["folder"].glob("seg-*.parquet"))
    bad_bytes = damaged.read_bytes() if held else None
    counter = ForwardCounter(monkeypatch)
    with pytest.warns(CacheIntegrityWarning, match=damaged.name) as caught:
        meta = _run(warm["images"], warm["tmp"] / "rerun", warm["cache"])
    assert any(expected_reason in str(w.message) for w in caught), [str(w.message) for w in caught]
    np.testing.assert_allclose(read_embeddings(warm["tmp"] / "rerun").vectors, warm["clean"], rtol=0, atol=1e-6)
    assert counter.images == len(lost) and meta["n_embedded"] == len(lost)
    (new,) = set(warm["folder"].glob("seg-*.parquet")) - before
    assert sorted(_shas(new)) == sorted(lost)  # exactly the damaged entries were embedded again
    if bad_bytes is not None:
        held = warm["folder"] / "quarantine" / damaged.name
        assert held.read_bytes() == bad_bytes and not damaged.exists()
        assert expected_reason in (held.parent / f"{damaged.name}.reason.txt").read_text()
        assert meta["n_quarantined"] == len(lost)
        assert [r["file"] for r in meta["cache_quarantined"]] == [str(damaged)]
    # A second rerun finds a sound cache: nothing embedded, nothing quarantined.
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheIntegrityWarning)
        again = _run(warm["images"], warm["tmp"] / "again", warm["cache"])
    assert again["n_embedded"] == 0 and again["n_quarantined"] == 0
    assert verify_cache(warm["cache"]).ok
    return meta


def test_truncated_segment_is_quarantined_and_reembedded(warm, monkeypatch):
    first = warm["segments"][0]
    data = first.read_bytes()
    first.write_bytes(data[: len(data) // 2])
    _rerun_and_check(warm, monkeypatch, first, "cannot be opened", _shas_of_clean(warm, 8))


def test_garbage_inside_with_intact_footer_is_caught_by_the_checksum(warm, monkeypatch):
    first = warm["segments"][0]
    data = bytearray(first.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    start = 4 + (len(data) - footer - 4) // 3  # inside the column chunks, footer untouched
    rng = np.random.default_rng(0)
    span = min(4096, len(data) - footer - start)
    data[start : start + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    first.write_bytes(bytes(data))
    pq.read_metadata(first)  # the footer still reads: only the checksum can tell
    _rerun_and_check(warm, monkeypatch, first, "checksum mismatch", _shas_of_clean(warm, 8))
    # meta.json and the summary count the quarantined entries.
    record = EmbeddingMeta.read(warm["tmp"] / "rerun" / "meta.json")
    assert record.n_quarantined == 8 and record.cache_quarantined[0]["reason"].startswith("checksum mismatch")
    score = ScoreRecord.from_report({"corrembed": 0.1}, model="mnv3", weighting="binary")
    row = summary_table([score], {"mnv3": record}, {"mnv3": {}}, {"binary": "binary"}).row(0, named=True)
    assert row["n_cache_quarantined"] == 8


def test_sharded_run_counts_a_quarantined_segment_once(warm, monkeypatch):
    first = warm["segments"][0]
    first.write_bytes(first.read_bytes()[:100])
    counter = ForwardCounter(monkeypatch)
    with pytest.warns(CacheIntegrityWarning, match=first.name):
        meta = _run(warm["images"], warm["tmp"] / "sharded", warm["cache"], shards=3)
    assert counter.images == 8 and meta["n_quarantined"] == 8 and len(meta["cache_quarantined"]) == 1
    np.testing.assert_allclose(read_embeddings(warm["tmp"] / "sharded").vectors, warm["clean"], rtol=0, atol=1e-6)


def test_garbage_in_the_hash_column_is_caught_when_the_segment_is_indexed(warm, monkeypatch):
    # Damaged hashes would hide the segment from every lookup, so from its verification too.
    first = warm["segments"][0]
    data = bytearray(first.read_bytes())
    data[4:68] = np.random.default_rng(1).integers(0, 256, 64, dtype=np.uint8).tobytes()
    first.write_bytes(bytes(data))
    _rerun_and_check(warm, monkeypatch, first, "cannot be read", _shas_of_clean(warm, 8))


def test_hashes_that_decode_to_garbage_are_caught_when_indexed(warm, monkeypatch):
    first = warm["segments"][0]
    table = pq.read_table(first)
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
    garbled = [sha[:10] + "\x00\x9f" + sha[12:] for sha in table.column("sha256").to_pylist()]
    bad = _rewrite(first, garbled, vectors, checksummed=True)  # well-formed file, valid checksum
    _rerun_and_check(warm, monkeypatch, bad, "not content hashes", _shas_of_clean(warm, 8))


def test_garbage_footer_is_quarantined(warm, monkeypatch):
    first = warm["segments"][0]
    data = bytearray(first.read_bytes())
    data[-120:-8] = b"\xff" * 112  # magic bytes kept, footer garbage
    first.write_bytes(bytes(data))
    _rerun_and_check(warm, monkeypatch, first, "cannot be opened", _shas_of_clean(warm, 8))


def _rewrite(path: Path, shas: list[str], vectors: np.ndarray, *, checksummed: bool) -> Path:
    """Replace ``path`` by a well-formed segment of these rows (with a valid name checksum, or an
    old-style name without one)."""
    table = pa.table(
        [
            pa.array(shas, type=pa.string()),
            pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1]),
        ],
        schema=cache_schema(vectors.shape[1]),
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    path.unlink()
    name = segment_name(data, len(shas)) if checksummed else f"seg-{0:020d}-1-{uuid.uuid4().hex[:8]}.parquet"
    target = path.parent / name
    target.write_bytes(data)
    return target


def test_wrong_dimension_segment_is_quarantined(warm, monkeypatch):
    first = warm["segments"][0]
    shas = _shas(first)
    bad = _rewrite(first, shas, np.ones((len(shas), 7), np.float32), checksummed=True)
    _rerun_and_check(warm, monkeypatch, bad, "7-dimensional", shas)


@pytest.mark.parametrize("checksummed", [True, False], ids=["checksummed", "pre-checksum"])
def test_nan_rows_are_quarantined(warm, monkeypatch, checksummed):
    first = warm["segments"][0]
    table = pq.read_table(first)
    shas = table.column("sha256").to_pylist()
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(len(shas), -1).copy()
    vectors[[1, 5]] = np.nan
    if checksummed:  # rewritten in place: the bytes no longer match the name's checksum
        nan_table = table.set_column(
            1,
            cache_schema(vectors.shape[1]).field("embedding"),
            pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
        )
        pq.write_table(nan_table, first)
        bad, reason = first, "checksum mismatch"
    else:  # a segment from before checksums: its values are checked instead
        bad, reason = _rewrite(first, shas, vectors, checksummed=False), "non-finite"
    _rerun_and_check(warm, monkeypatch, bad, reason, shas)


def test_pre_checksum_segments_still_read(warm, monkeypatch):
    first = warm["segments"][0]
    table = pq.read_table(first)
    shas = table.column("sha256").to_pylist()
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(len(shas), -1)
    _rewrite(first, shas, vectors, checksummed=False)
    assert verify_cache(warm["cache"]).unchecksummed == 1 and verify_cache(warm["cache"]).ok
    counter = ForwardCounter(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheIntegrityWarning)
        meta = _run(warm["images"], warm["tmp"] / "rerun", warm["cache"])
    assert counter.images == 0 and meta["n_embedded"] == 0
    np.testing.assert_array_equal(read_embeddings(warm["tmp"] / "rerun").vectors, warm["clean"])


def test_segment_deleted_while_indexed_is_reembedded(warm, monkeypatch):
    first = warm["segments"][0]
    original = EmbeddingCache.__init__

    def open_then_lose(self, *args, **kwargs):
        original(self, *args, **kwargs)
        first.unlink(missing_ok=True)  # indexed, then gone before it is read

    monkeypatch.setattr(EmbeddingCache, "__init__", open_then_lose)
    meta = _rerun_and_check(warm, monkeypatch, first, "vanished", _shas_of_clean(warm, 8), held=False)
    assert meta["n_quarantined"] == 0 and not first.exists()  # nothing to hold: the file is gone


def _shas_of_clean(warm, count: int) -> list[str]:
    return warm["images"]["sha256"].head(count).to_list()


# --------------------------------------------------------------------------- tmpfs: read-only, full


@contextlib.contextmanager
def _tmpfs(folder: Path, size: str):
    """Mount a tmpfs of ``size`` at ``folder``; skip (with the reason) where mounting is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("no mount command on this machine")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_read_only_cache_is_used_read_only(warm, monkeypatch):
    added = _make_images(warm["tmp"] / "img", 3, seed=4)
    grown = warm["images"].vstack(added)
    reference = _run(grown, warm["tmp"] / "reference", warm["tmp"] / "fresh_cache")
    assert reference["n_embedded"] == 23
    with _tmpfs(warm["tmp"] / "ro", "16m") as mount:
        shutil.copytree(warm["cache"], mount / "cache")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        counter = ForwardCounter(monkeypatch)
        with pytest.warns(CacheIntegrityWarning, match="cannot be written"):
            meta = _run(grown, warm["tmp"] / "rerun", mount / "cache")
        assert counter.images == 3 and meta["n_embedded"] == 3 and meta["n_from_cache"] == 20
        np.testing.assert_allclose(
            read_embeddings(warm["tmp"] / "rerun").vectors,
            read_embeddings(warm["tmp"] / "reference").vectors,
            rtol=0,
            atol=1e-6,
        )


def test_verify_command_on_clean_and_damaged_cache(warm):
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    command = [sys.executable, "-m", "corrembed.embed.integrity", "verify", str(warm["cache"])]
    clean = subprocess.run(command, capture_output=True, text=True, env=env)
    assert clean.returncode == 0, clean.stderr
    assert "2 segment(s), 20 cached embedding(s)" in clean.stdout and "OK" in clean.stdout
    first, second = warm["segments"]
    first.write_bytes(first.read_bytes()[:100])
    data = bytearray(second.read_bytes())
    data[200:260] = b"\x00" * 60
    second.write_bytes(bytes(data))
    damaged = subprocess.run(command, capture_output=True, text=True, env=env)
    assert damaged.returncode == 1
    assert f"DAMAGED {first}" in damaged.stdout and f"DAMAGED {second}" in damaged.stdout
    assert "2 damaged segment(s)" in damaged.stdout
    assert cache_integrity.main(["verify", str(warm["cache"]), "--quarantine"]) == 1
    assert sorted(p.name for p in (warm["folder"] / "quarantine").glob("seg-*.parquet")) == sorted(
        [first.name, second.name]
    )
    assert cache_integrity.main(["verify", str(warm["cache"])]) == 0
    assert cache_integrity.main(["verify", str(warm["tmp"] / "nowhere")]) == 2


def test_checksum_is_written_with_the_segment(warm):
    for segment in warm["segments"]:
        assert cache_integrity.expected_checksum(segment.name) is not None
        cache_integrity.verified_segment(segment, None)  # no exception: the bytes match
    assert embedding_cache.SEGMENT_GLOB == "seg-*.parquet"

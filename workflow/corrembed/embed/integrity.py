"""Integrity of the embedding cache: segment checksums, verification and quarantine.

Each segment written by :class:`corrembed.embed.cache.EmbeddingCache` carries the CRC-32 of
its file bytes and its row count in its own name
(``seg-{ns}-{pid}-{uuid8}-r{rows}-c{crc32:08x}.parquet``). The name and
the bytes are renamed into place together, so the checksum is written in the same atomic step as
the data, and verifying a segment costs one pass of ``zlib.crc32`` over bytes the reader loads
anyway (no decode). Segments written before checksums existed (``seg-{ns}-{pid}-{uuid8}.parquet``)
are still read: they are verified by decoding them in full (every vector finite).

A segment that fails verification, cannot be opened, has the wrong schema or dimension, or (for
an unchecksummed one) holds non-finite values is moved into ``{key}/quarantine/`` beside a
``.reason.txt``, with a :class:`CacheIntegrityWarning` naming the file and the reason; its entries
count as missing and are embedded again. ``python -m corrembed.embed.integrity verify PATH``
(console script ``corrembed-cache``) checks a whole cache without running the workflow.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
import time
import uuid
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CorrEmbedError

QUARANTINE_DIR = "quarantine"
SEGMENT_PATTERN = re.compile(r"^seg-\d+-\d+-[0-9a-f]+(?:-r(?P<rows>\d+)-c(?P<crc>[0-9a-f]{8}))?\.parquet$")
#: errno values meaning "this folder cannot be written" (a read-only cache is used read-only).
READ_ONLY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


class CacheIntegrityWarning(UserWarning):
    """A cache segment was found damaged and set aside (its entries are embedded again)."""


class SegmentDamaged(CorrEmbedError):
    """A cache segment failed verification; ``reason`` says how."""

    def __init__(self, path: Path, reason: str):
        """``path``: the segment; ``reason``: what is wrong with it, in words."""
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


class CacheEntriesLost(CorrEmbedError):
    """Entries served by :meth:`~corrembed.embed.cache.EmbeddingCache.fetch` were found damaged
    (or vanished) while reading; they are no longer in the cache and must be embedded again."""


@dataclass(frozen=True)
class QuarantinedSegment:
    """A segment set aside: where it was, where it went (None: it vanished or could not be moved),
    why, and how many rows its footer declared (None: unreadable)."""

    file: str
    moved_to: str | None
    reason: str
    rows: int | None

    def to_dict(self) -> dict:
        """JSON-able ``{file, moved_to, reason, rows}`` (as stored in meta.json)."""
        return {"file": self.file, "moved_to": self.moved_to, "reason": self.reason, "rows": self.rows}


def segment_name(data: bytes | memoryview, rows: int) -> str:
    """A fresh segment file name carrying the CRC-32 of ``data`` (the segment's bytes) and its
    number of ``rows`` (so that even an unreadable segment says how many entries it held).

    Examples
    --------
    >>> name = segment_name(b"abc", 3)
    >>> name.endswith("-r3-c352441c2.parquet"), expected_checksum(name) == 0x352441C2, declared_rows(name)
    (True, True, 3)
    """
    crc = zlib.crc32(data) & 0xFFFFFFFF
    return f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}-r{int(rows)}-c{crc:08x}.parquet"


def declared_rows(name: str) -> int | None:
    """The row count a segment's name declares; None for a segment written before checksums."""
    match = SEGMENT_PATTERN.match(name)
    return int(match.group("rows")) if match is not None and match.group("rows") is not None else None


def expected_checksum(name: str) -> int | None:
    """The CRC-32 a segment's name declares; None for a segment written before checksums.

    Examples
    --------
    >>> expected_checksum("seg-00000000000000000001-7-0123abcd.parquet") is None
    True
    """
    match = SEGMENT_PATTERN.match(name)
    if match is None or match.group("crc") is None:
        return None
    return int(match.group("crc"), 16)


def open_segment(path: Path, data: bytes | None = None) -> pq.ParquetFile:
    """Open a segment (from ``data`` when the bytes are already read); SegmentDamaged when it cannot
    be opened or its schema is not ``sha256`` string + ``embedding`` fixed-size float32 list."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data) if data is not None else path)
        schema = parquet.schema_arrow
        embedding = schema.field("embedding").type
        sha = schema.field("sha256").type
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        raise SegmentDamaged(path, f"cannot be opened as Parquet ({type(exc).__name__}: {exc})") from exc
    if not (pa.types.is_fixed_size_list(embedding) and embedding.value_type == pa.float32()) or sha != pa.string():
        raise SegmentDamaged(path, f"has schema {schema}, not sha256: string, embedding: fixed_size_list<float>")
    return parquet


def verified_segment(path: Path, dim: int | None) -> pq.ParquetFile:
    """Read a segment's bytes once and verify them; the ParquetFile over the verified bytes.

    A checksummed segment must match its name's CRC-32; an older one must decode in full with
    only finite values. Either way its dimension must be ``dim`` (when given). SegmentDamaged says
    what failed; FileNotFoundError propagates (the segment vanished).
    """
    data = path.read_bytes()
    expected = expected_checksum(path.name)
    if expected is not None:
        actual = zlib.crc32(data) & 0xFFFFFFFF
        if actual != expected:
            raise SegmentDamaged(
                path, f"checksum mismatch (CRC-32 {actual:08x}, its name says {expected:08x}): the bytes were damaged"
            )
    parquet = open_segment(path, data)
    found = parquet.schema_arrow.field("embedding").type.list_size
    if dim is not None and found != dim:
        raise SegmentDamaged(path, f"holds {found}-dimensional rows, the cache's other segments {dim}")
    if expected is None:
        try:
            column = parquet.read(columns=["embedding"]).column("embedding").combine_chunks()
            values = column.flatten().to_numpy(zero_copy_only=False)
        except (OSError, pa.ArrowException) as exc:
            raise SegmentDamaged(path, f"cannot be decoded ({type(exc).__name__}: {exc})") from exc
        if len(column) != parquet.metadata.num_rows or values.size != len(column) * found:
            raise SegmentDamaged(path, "holds fewer values than its rows need")
        bad = int((~np.isfinite(values.reshape(-1, found))).any(axis=1).sum()) if values.size else 0
        if bad:
            raise SegmentDamaged(path, f"holds {bad} row(s) with non-finite values")
    return parquet


def quarantine(path: Path, reason: str, rows: int | None = None) -> QuarantinedSegment:
    """Move a damaged segment into ``quarantine/`` beside it, with a ``.reason.txt``; warn.

    A segment that already vanished (another job moved it) or cannot be moved (a read-only cache)
    is left where it is; the caller ignores it either way.

    Examples
    --------
    >>> import tempfile, pathlib, warnings
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> bad = folder / "seg-1-2-ab.parquet"
    >>> _ = bad.write_bytes(b"not parquet")
    >>> with warnings.catch_warnings(record=True):
    ...     record = quarantine(bad, "cannot be opened")
    >>> (folder / "quarantine" / "seg-1-2-ab.parquet").exists(), bad.exists()
    (True, False)
    """
    path = Path(path)
    rows = rows if rows is not None else declared_rows(path.name)
    target = path.parent / QUARANTINE_DIR / path.name
    moved: str | None = str(target)
    note = ""
    try:
        target.parent.mkdir(exist_ok=True)
        os.replace(path, target)
        (target.parent / f"{path.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")
    except FileNotFoundError:
        moved, note = None, " (it vanished: another job may have moved it)"
    except OSError as exc:
        if exc.errno not in READ_ONLY_ERRNOS:
            raise
        moved, note = None, f" (could not be moved aside: {exc.strerror}; it is ignored)"
    rows_text = f"{rows} cached embedding(s)" if rows is not None else "its cached embeddings"
    warnings.warn(
        f"embedding cache segment {path} is damaged: {reason}; "
        + (f"moved to {target}" if moved else "left in place")
        + f"{note}. {rows_text} will be embedded again.",
        CacheIntegrityWarning,
        stacklevel=2,
    )
    return QuarantinedSegment(str(path), moved, reason, rows)


def quarantine_counts(records: Sequence[QuarantinedSegment | dict]) -> dict:
    """``{n_quarantined, cache_quarantined}`` for meta.json: entries (rows) of the segments set
    aside (an unreadable segment written before checksums counts 0), and their records, one per file.

    Records may be :class:`QuarantinedSegment` objects or their dicts (several shard jobs of one
    model see the same cache: a file listed twice counts once).

    Examples
    --------
    >>> quarantine_counts([QuarantinedSegment("a", "q/a", "checksum mismatch", 5),
    ...                    {"file": "a", "moved_to": None, "reason": "checksum mismatch", "rows": 5}])["n_quarantined"]
    5
    """
    by_file: dict[str, dict] = {}
    for record in records:
        record = record.to_dict() if isinstance(record, QuarantinedSegment) else dict(record)
        if record["file"] not in by_file or record.get("moved_to"):
            by_file[record["file"]] = record
    listed = list(by_file.values())
    return {"n_quarantined": sum(r.get("rows") or 0 for r in listed), "cache_quarantined": listed}


# --------------------------------------------------------------------------- whole-cache check


@dataclass
class CacheVerification:
    """What :func:`verify_cache` found: segments and rows checked, and the damaged segments."""

    root: str
    identities: int = 0
    segments: int = 0
    rows: int = 0
    unchecksummed: int = 0
    damaged: list[SegmentDamaged] = field(default_factory=list)
    quarantined_before: int = 0

    @property
    def ok(self) -> bool:
        """No damaged segment."""
        return not self.damaged

    def lines(self) -> list[str]:
        """A human-readable report (one line per damaged segment)."""
        head = (
            f"{self.root}: {self.identities} embedding identit{'y' if self.identities == 1 else 'ies'}, "
            f"{self.segments} segment(s), {self.rows} cached embedding(s)"
        )
        out = [head]
        if self.unchecksummed:
            out.append(f"  {self.unchecksummed} segment(s) predate checksums: verified by decoding them in full")
        if self.quarantined_before:
            out.append(f"  {self.quarantined_before} segment(s) already in quarantine/ folders (set aside earlier)")
        out += [f"  DAMAGED {d.path}: {d.reason}" for d in self.damaged]
        out.append(
            "  OK: every segment verified"
            if self.ok
            else f"  {len(self.damaged)} damaged segment(s): rerun with --quarantine to move them aside "
            "(the next workflow run embeds their images again), or delete them"
        )
        return out


def identity_folders(root: Path) -> list[Path]:
    """The identity folders of a cache root (those holding an ``identity.json``), or ``[root]``
    when ``root`` is itself one identity's folder."""
    if (root / "identity.json").exists():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "identity.json").exists())


def verify_cache(root: str | os.PathLike, *, move_damaged: bool = False) -> CacheVerification:
    """Verify every segment of a cache (all identities under ``root``, or one identity folder).

    Each segment is checked as a run would check it (:func:`verified_segment`), with the
    dimension most of the folder's rows have as the expected one. ``move_damaged`` quarantines
    what fails.

    Examples
    --------
    >>> import tempfile
    >>> verify_cache(tempfile.mkdtemp()).ok
    True
    """
    root = Path(root)
    if not root.is_dir():
        raise CorrEmbedError(f"{root}: no such cache folder (config embed.cache, default results/cache/embeddings)")
    report = CacheVerification(str(root))
    for folder in identity_folders(root):
        report.identities += 1
        quarantined = folder / QUARANTINE_DIR
        if quarantined.is_dir():
            report.quarantined_before += len(list(quarantined.glob("seg-*.parquet")))
        paths = sorted(folder.glob("seg-*.parquet"))
        dims: dict[int, int] = {}
        for path in paths:
            try:
                meta = open_segment(path)
                size = meta.schema_arrow.field("embedding").type.list_size
                dims[size] = dims.get(size, 0) + meta.metadata.num_rows
            except SegmentDamaged:
                pass
        dim = max(dims, key=dims.get) if dims else None
        for path in paths:
            report.segments += 1
            report.unchecksummed += expected_checksum(path.name) is None
            try:
                report.rows += verified_segment(path, dim).metadata.num_rows
            except SegmentDamaged as damage:
                report.damaged.append(damage)
                if move_damaged:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", CacheIntegrityWarning)
                        quarantine(path, damage.reason)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``corrembed-cache verify PATH [--quarantine]``: exit 0 when every segment verifies, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="corrembed-cache", description="Check a CorrEmbed embedding cache.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify every segment's checksum, schema, dimension and values")
    verify.add_argument("path", help="the cache root (config embed.cache) or one identity's folder")
    verify.add_argument("--quarantine", action="store_true", help="move damaged segments into quarantine/")
    args = parser.parse_args(argv)
    try:
        report = verify_cache(args.path, move_damaged=args.quarantine)
    except CorrEmbedError as error:
        print(f"corrembed-cache: {error}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

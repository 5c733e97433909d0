"""The incremental embedding cache: embeddings keyed by image content, per embedding identity.

An image's embedding depends only on its bytes and on the *embedding identity*: architecture,
weights (enum and file name, a checkpoint's content hash, or the random-init seed with the
library versions), layer, preprocessing, decoder and precision. Run settings (batch size,
workers, device, shards) are not part of it. The cache stores, per identity, the embedding of
every image content (sha256 of the file bytes) ever embedded, so that a catalogue that grows by
k images costs k forward passes, and an image whose bytes change is embedded again.

Layout (``root`` is config ``embed.cache``, default ``results/cache/embeddings``)::

    {root}/{identity_key}/identity.json          # what the key stands for (readable)
    {root}/{identity_key}/seg-*.parquet          # segments (name: row count, CRC-32): sha256 (string),
                                                 #   embedding (fixed_size_list<float32>[dim])
    {root}/{identity_key}/quarantine/            # damaged segments set aside, with .reason.txt

Segments are only ever added, each written atomically (a hidden temporary file renamed into
place), so a killed job leaves complete segments (kept and reused) and no partial one; several
jobs (shards) may add segments to one identity at the same time. The cache lives outside the
embed outputs, so it survives their deletion or rewriting; delete a key's folder to drop it.

Segments carry a checksum in their name and are verified when first read; a damaged one is
quarantined and its entries are embedded again (:mod:`corrembed.embed.integrity`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import CorrEmbedError
from ..models import ModelSpec, source_of
from ..models.preprocess import IDENTITY_FIELDS
from ..storage import atomic_path, write_json
from .integrity import (
    READ_ONLY_ERRNOS,
    CacheEntriesLost,
    CacheIntegrityWarning,
    QuarantinedSegment,
    SegmentDamaged,
    open_segment,
    quarantine,
    segment_name,
    verified_segment,
)

#: Bumped when the meaning of cached vectors changes (e.g. a different pooling rule).
CACHE_FORMAT = "corrembed-embedding-cache/1"
IDENTITY_NAME = "identity.json"
SEGMENT_GLOB = "seg-*.parquet"
#: Rows per Parquet row group in a segment: the unit read back by :meth:`EmbeddingCache.fetch`.
SEGMENT_ROW_GROUP = 256


def weights_identity(spec: ModelSpec) -> dict[str, Any]:
    """What identifies the weights' values (the source's :meth:`~corrembed.models.ModelSource.weights_identity`).

    torchvision: the enum and its file (whose name carries a hash prefix), a checkpoint's
    content hash (not its path: a moved file stays cached), or the random-init seed with the
    library versions that define the initialisation.
    """
    return source_of(spec).weights_identity(spec)


def embedding_identity(
    spec: ModelSpec, transform_description: Mapping[str, Any], *, precision: str, decoder: str
) -> dict[str, Any]:
    """Everything that changes an embedding, as a JSON-able dict (see the module docstring).

    Parameters
    ----------
    spec : ModelSpec
        The parsed model.
    transform_description : mapping
        The second value of :func:`corrembed.models.build_transform` (only its pixel fields,
        :data:`corrembed.models.preprocess.IDENTITY_FIELDS`, enter the identity).
    precision : str
        ``fp32``, ``bf16`` or ``fp16``.
    decoder : str
        ``pil`` or ``torchvision``.

    Returns
    -------
    dict
        ``{format, arch, weights, layer, transforms, decoder, precision}`` for torchvision
        models: exactly the dict of earlier releases, so existing cache keys stay valid (pinned
        by a test). Other sources add ``source``.
    """
    transforms = {
        key: transform_description[key] for key in (*IDENTITY_FIELDS, "resize_mode") if key in transform_description
    }
    identity = {
        "format": CACHE_FORMAT,
        "arch": spec.arch,
        "weights": weights_identity(spec),
        "layer": spec.layer,
        "transforms": transforms,
        "decoder": decoder,
        "precision": precision,
    }
    if spec.source != "torchvision":
        identity["source"] = spec.source
    return identity


def identity_key(identity: Mapping[str, Any]) -> str:
    """A short stable hex key of an identity (sha256 of its canonical JSON, 20 hex digits)."""
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:20]


def cache_schema(dim: int) -> pa.Schema:
    """Arrow schema of a cache segment: ``sha256`` string, ``embedding`` fixed_size_list<float32>[dim]."""
    return pa.schema(
        [
            pa.field("sha256", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


class EmbeddingCache:
    """The cached embeddings of one identity under ``root`` (see the module docstring).

    ``dim`` is None until a segment exists. :meth:`refresh` re-reads the segment list (other
    jobs may have added segments); lookups see the segments present at the last refresh plus
    those this object wrote. Segments are verified as they are used
    (:mod:`corrembed.embed.integrity`; ``verify=False`` only for benchmarks): a damaged one is
    quarantined and listed in :attr:`quarantined`. A folder that cannot be written (read-only
    cache) is used read-only: new embeddings are kept in memory for this object's lifetime.
    """

    def __init__(self, root: str | os.PathLike, identity: Mapping[str, Any], *, verify: bool = True):
        """Open (or create) the folder of ``identity`` under ``root`` and index its segments."""
        self.identity = dict(identity)
        self.key = identity_key(self.identity)
        self.directory = Path(root) / self.key
        self.verify = verify
        self.read_only = False
        self.quarantined: list[QuarantinedSegment] = []
        self._memory: dict[str, np.ndarray] = {}  # embeddings a read-only cache could not store
        identity_file = self.directory / IDENTITY_NAME
        if identity_file.exists():
            stored = json.loads(identity_file.read_text(encoding="utf-8"))
            if stored != json.loads(json.dumps(self.identity)):
                raise CorrEmbedError(
                    f"embedding cache {self.directory}: identity.json does not match key {self.key} "
                    "(the folder was edited or copied); delete the folder to rebuild it"
                )
        else:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                write_json(identity_file, self.identity)
            except OSError as exc:
                self._cannot_write(exc)
        self.dim: int | None = None
        self._segments: list[tuple[Path, np.ndarray] | None] = []  # (path, first row of each row group)
        self._segment_shas: list[list[str]] = []
        self._verified: set[int] = set()
        self._seen: set[str] = set()
        self._index: dict[str, tuple[int, int]] = {}  # sha256 -> (segment, row)
        self.refresh()

    def _cannot_write(self, exc: OSError) -> None:
        """Switch to read-only use after a write failed for lack of permission (else re-raise)."""
        if exc.errno not in READ_ONLY_ERRNOS:
            raise exc
        if not self.read_only:
            warnings.warn(
                f"embedding cache {self.directory} cannot be written ({exc.strerror}): its segments are "
                "read, new embeddings are not stored and will be embedded again by the next run; make the "
                "folder writable or set embed.cache to a writable folder",
                CacheIntegrityWarning,
                stacklevel=3,
            )
        self.read_only = True

    # ------------------------------------------------------------------ reading

    def refresh(self) -> None:
        """Index segments written since the last refresh (by this or another job).

        Segments that cannot be opened, or whose dimension differs from the cache's (the one most
        rows have, when the cache is opened), are quarantined.
        """
        if not self.directory.is_dir():
            return
        opened = []
        for path in sorted(self.directory.glob(SEGMENT_GLOB)):
            if path.name in self._seen:
                continue
            self._seen.add(path.name)
            try:
                opened.append((path, open_segment(path)))
            except FileNotFoundError:
                continue  # quarantined by another job since the listing
            except SegmentDamaged as damage:
                self._set_aside(path, damage.reason, None)
        if self.dim is None and opened:
            rows: dict[int, int] = {}
            for _, parquet in opened:
                size = parquet.schema_arrow.field("embedding").type.list_size
                rows[size] = rows.get(size, 0) + parquet.metadata.num_rows
            self.dim = max(rows, key=rows.get)
        for path, parquet in opened:
            dim = parquet.schema_arrow.field("embedding").type.list_size
            if dim != self.dim:
                reason = f"holds {dim}-dimensional rows, the cache's other segments {self.dim}"
                self._set_aside(path, reason, parquet.metadata.num_rows)
                continue
            try:
                self._add_segment(path, parquet)
            except (OSError, pa.ArrowException) as exc:
                self._set_aside(path, f"cannot be read ({type(exc).__name__}: {exc})", parquet.metadata.num_rows)

    def _add_segment(self, path: Path, parquet: pq.ParquetFile | None = None) -> None:
        """Index one segment: its row-group starts and every sha256 it holds."""
        parquet = parquet if parquet is not None else pq.ParquetFile(path)
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.metadata.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        column = parquet.read(columns=["sha256"]).column("sha256")
        if len(column) and not pc.all(pc.match_substring_regex(column, "^[!-~]+$")).as_py():
            # Garbage inside the hash column would hide the segment from every lookup (so from its
            # verification): hashes are printable ASCII, damaged bytes rarely are.
            raise pa.ArrowInvalid("its sha256 column holds values that are not content hashes")
        shas = column.to_pylist()
        number = len(self._segments)
        self._segments.append((path, starts))
        self._segment_shas.append(shas)
        self._seen.add(path.name)
        for row, sha in enumerate(shas):
            self._index.setdefault(sha, (number, row))

    def _set_aside(self, path: Path, reason: str, rows: int | None) -> None:
        """Quarantine a damaged segment (see :func:`corrembed.embed.integrity.quarantine`)."""
        self.quarantined.append(quarantine(path, reason, rows))

    def _drop(self, number: int) -> None:
        """Forget segment ``number`` and re-index its hashes from the remaining segments."""
        self._segments[number] = None
        lost = set(self._segment_shas[number])
        self._segment_shas[number] = []
        for sha in lost:
            del self._index[sha]
        for other, shas in enumerate(self._segment_shas):
            for row, sha in enumerate(shas):
                if sha in lost:
                    self._index.setdefault(sha, (other, row))

    def _reader(self, number: int) -> pq.ParquetFile:
        """The segment's ParquetFile, verified in full on its first use by this object."""
        path = self._segments[number][0]
        if not self.verify or number in self._verified:
            return pq.ParquetFile(path)
        parquet = verified_segment(path, self.dim)
        self._verified.add(number)
        return parquet

    def __contains__(self, sha256: str) -> bool:
        """Whether the embedding of this content hash is cached."""
        return sha256 in self._index or sha256 in self._memory

    def __len__(self) -> int:
        """Number of distinct content hashes cached."""
        return len(self._index.keys() | self._memory.keys())

    def missing(self, shas: Iterable[str]) -> list[str]:
        """The distinct hashes of ``shas`` not in the cache, in first-occurrence order."""
        out, seen = [], set()
        for sha in shas:
            if sha not in self and sha not in seen:
                seen.add(sha)
                out.append(sha)
        return out

    def fetch(self, shas: Sequence[str]) -> np.ndarray:
        """(len(shas), dim) float32 embeddings of cached hashes, in the given order.

        Reads only the row groups (:data:`SEGMENT_ROW_GROUP` rows) that hold them, each once; a
        segment is verified in full the first time it is read. KeyError for a hash not in the
        cache; :class:`~corrembed.embed.integrity.CacheEntriesLost` when a segment holding some of
        them failed verification (quarantined) or vanished: those hashes are then missing.
        """
        if self.dim is None:
            if shas:
                raise KeyError(f"embedding cache {self.directory} is empty")
            return np.zeros((0, 0), np.float32)
        out = np.empty((len(shas), self.dim), np.float32)
        groups: dict[int, dict[int, list[tuple[int, int]]]] = {}
        for position, sha in enumerate(shas):
            if sha in self._memory:
                out[position] = self._memory[sha]
                continue
            segment, row = self._index[sha]
            starts = self._segments[segment][1]
            group = int(np.searchsorted(starts, row, side="right")) - 1
            groups.setdefault(segment, {}).setdefault(group, []).append((position, row - int(starts[group])))
        lost = []
        for segment, by_group in groups.items():
            path = self._segments[segment][0]
            try:
                parquet = self._reader(segment)
            except SegmentDamaged as damage:
                self._set_aside(path, damage.reason, len(self._segment_shas[segment]))
                lost.append(f"{path.name}: {damage.reason}")
                self._drop(segment)
                continue
            except FileNotFoundError:
                warnings.warn(
                    f"embedding cache segment {path} vanished while this job ran; its embeddings will be "
                    "embedded again",
                    CacheIntegrityWarning,
                    stacklevel=2,
                )
                lost.append(f"{path.name}: vanished")
                self._drop(segment)
                continue
            for group, members in by_group.items():
                column = parquet.read_row_group(group, columns=["embedding"]).column("embedding").combine_chunks()
                block = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, self.dim)
                positions, rows = np.array(members, dtype=np.int64).T
                out[positions] = block[rows]
        if lost:
            raise CacheEntriesLost(
                f"embedding cache {self.directory}: {len(lost)} segment(s) could not be used "
                f"({'; '.join(lost)}); their entries are missing now and must be embedded again"
            )
        return out

    # ------------------------------------------------------------------ writing

    def writer(self, dim: int, *, segment_rows: int = 4096, segment_seconds: float = 300.0) -> CacheSegmentWriter:
        """A :class:`CacheSegmentWriter` adding segments of ``dim``-dimensional embeddings."""
        if self.dim is not None and dim != self.dim:
            raise CorrEmbedError(
                f"embedding cache {self.directory} holds {self.dim}-dimensional "
                f"embeddings, the model gives {dim}; delete the folder to rebuild it"
            )
        return CacheSegmentWriter(self, dim, segment_rows=segment_rows, segment_seconds=segment_seconds)

    def _commit(self, shas: list[str], vectors: np.ndarray) -> None:
        """Write ``(shas, vectors (n, dim))`` as one new segment, atomically, and index it.

        The segment is serialised in memory first so that its name can carry the CRC-32 of its
        bytes (:func:`corrembed.embed.integrity.segment_name`): one rename publishes both.
        """
        dim = vectors.shape[1]
        table = pa.table(
            [
                pa.array(shas, type=pa.string()),
                pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), dim),
            ],
            schema=cache_schema(dim),
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, row_group_size=SEGMENT_ROW_GROUP, compression="zstd")
        data = sink.getvalue()
        name = segment_name(memoryview(data), len(shas))
        if not self.read_only:
            try:
                with atomic_path(self.directory / name) as tmp:
                    with open(tmp, "wb") as handle:
                        handle.write(memoryview(data))
            except OSError as exc:
                self._cannot_write(exc)
        if self.read_only:
            self._memory.update(zip(shas, vectors))
            self.dim = dim if self.dim is None else self.dim
            return
        if self.dim is None:
            self.dim = dim
        self._add_segment(self.directory / name, pq.ParquetFile(pa.BufferReader(data)))
        self._verified.add(len(self._segments) - 1)  # just written from these bytes


class CacheSegmentWriter:
    """Buffer (sha256, embedding) rows and commit them as segments of ``segment_rows`` rows,
    or after ``segment_seconds``, so at most one segment of work is lost when a job is killed.

    A context manager: the rows buffered when the block exits are committed, also when it
    exits with an exception (they are finished embeddings; the rest of the job is redone).
    """

    def __init__(self, cache: EmbeddingCache, dim: int, *, segment_rows: int, segment_seconds: float):
        """See the class docstring."""
        self.cache = cache
        self.dim = int(dim)
        self.segment_rows = max(int(segment_rows), 1)
        self.segment_seconds = segment_seconds
        self.rows_committed = 0
        self._shas: list[str] = []
        self._vectors: list[np.ndarray] = []
        self._started = time.monotonic()

    def __enter__(self) -> CacheSegmentWriter:
        """The writer itself."""
        return self

    def add(self, shas: Sequence[str], vectors: np.ndarray) -> None:
        """Append rows: ``vectors`` is (len(shas), dim), stored as float32."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(shas), self.dim):
            raise ValueError(f"expected ({len(shas)}, {self.dim}) embeddings, got {vectors.shape}")
        self._shas.extend(shas)
        self._vectors.append(vectors)
        if len(self._shas) >= self.segment_rows or time.monotonic() - self._started >= self.segment_seconds:
            self.flush()

    def flush(self) -> None:
        """Commit the buffered rows as one segment (nothing when the buffer is empty)."""
        if self._shas:
            self.cache._commit(self._shas, np.concatenate(self._vectors))
            self.rows_committed += len(self._shas)
        self._shas, self._vectors = [], []
        self._started = time.monotonic()

    def __exit__(self, exc_type, exc, tb) -> None:
        """Commit the buffered rows (also on an exception; its error is the one reported)."""
        if exc_type is None:
            self.flush()
            return
        try:
            self.flush()
        except Exception:  # noqa: BLE001 -- the original error is the one to report
            pass

"""The incremental embedding cache: embeddings keyed by image content, per embedding identity.

An image's embedding depends only on its bytes and on the *embedding identity*: architecture,
weights (enum and file name, a checkpoint's content hash, or the random-init seed with the
library versions), layer, preprocessing, decoder and precision. Run settings (batch size,
workers, device, shards) are not part of it. The cache stores, per identity, the embedding of
every image content (sha256 of the file bytes) ever embedded, so that a catalogue that grows by
k images costs k forward passes, and an image whose bytes change is embedded again.

Layout (``root`` is config ``embed.cache``, default ``results/cache/embeddings``)::

    {root}/{identity_key}/identity.json          # what the key stands for (readable)
    {root}/{identity_key}/seg-*.parquet          # segments: sha256 (string),
                                                 #   embedding (fixed_size_list<float32>[dim])

Segments are only ever added, each written atomically (a hidden temporary file renamed into
place), so a killed job leaves complete segments (kept and reused) and no partial one; several
jobs (shards) may add segments to one identity at the same time. The cache lives outside the
embed outputs, so it survives their deletion or rewriting; delete a key's folder to drop it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CorrEmbedError
from ..models import ModelSpec, source_of
from ..models.preprocess import IDENTITY_FIELDS
from ..storage import atomic_path, write_json

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
    those this object wrote.
    """

    def __init__(self, root: str | os.PathLike, identity: Mapping[str, Any]):
        """Open (or create) the folder of ``identity`` under ``root`` and index its segments."""
        self.identity = dict(identity)
        self.key = identity_key(self.identity)
        self.directory = Path(root) / self.key
        self.directory.mkdir(parents=True, exist_ok=True)
        identity_file = self.directory / IDENTITY_NAME
        if identity_file.exists():
            stored = json.loads(identity_file.read_text(encoding="utf-8"))
            if stored != json.loads(json.dumps(self.identity)):
                raise CorrEmbedError(
                    f"embedding cache {self.directory}: identity.json does not match key {self.key} "
                    "(the folder was edited or copied); delete the folder to rebuild it"
                )
        else:
            write_json(identity_file, self.identity)
        self.dim: int | None = None
        self._segments: list[tuple[Path, np.ndarray]] = []  # (path, first row of each row group)
        self._seen: set[str] = set()
        self._index: dict[str, tuple[int, int]] = {}  # sha256 -> (segment, row)
        self.refresh()

    # ------------------------------------------------------------------ reading

    def refresh(self) -> None:
        """Index segments written since the last refresh (by this or another job)."""
        for path in sorted(self.directory.glob(SEGMENT_GLOB)):
            if path.name not in self._seen:
                self._add_segment(path)

    def _add_segment(self, path: Path) -> None:
        """Index one segment: its dimension, row-group starts and every sha256 it holds."""
        parquet = pq.ParquetFile(path)
        dim = parquet.schema_arrow.field("embedding").type.list_size
        if self.dim is None:
            self.dim = dim
        elif dim != self.dim:
            raise CorrEmbedError(
                f"embedding cache {self.directory}: segment {path.name} has dimension "
                f"{dim}, others {self.dim}; delete the folder to rebuild it"
            )
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.metadata.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        number = len(self._segments)
        self._segments.append((path, starts))
        self._seen.add(path.name)
        shas = parquet.read(columns=["sha256"]).column("sha256").to_pylist()
        for row, sha in enumerate(shas):
            self._index.setdefault(sha, (number, row))

    def __contains__(self, sha256: str) -> bool:
        """Whether the embedding of this content hash is cached."""
        return sha256 in self._index

    def __len__(self) -> int:
        """Number of distinct content hashes cached."""
        return len(self._index)

    def missing(self, shas: Iterable[str]) -> list[str]:
        """The distinct hashes of ``shas`` not in the cache, in first-occurrence order."""
        out, seen = [], set()
        for sha in shas:
            if sha not in self._index and sha not in seen:
                seen.add(sha)
                out.append(sha)
        return out

    def fetch(self, shas: Sequence[str]) -> np.ndarray:
        """(len(shas), dim) float32 embeddings of cached hashes, in the given order.

        Reads only the row groups (:data:`SEGMENT_ROW_GROUP` rows) that hold them, each once.
        KeyError for a hash not in the cache.
        """
        if self.dim is None:
            if shas:
                raise KeyError(f"embedding cache {self.directory} is empty")
            return np.zeros((0, 0), np.float32)
        out = np.empty((len(shas), self.dim), np.float32)
        groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for position, sha in enumerate(shas):
            segment, row = self._index[sha]
            starts = self._segments[segment][1]
            group = int(np.searchsorted(starts, row, side="right")) - 1
            groups.setdefault((segment, group), []).append((position, row - int(starts[group])))
        for (segment, group), members in groups.items():
            column = (
                pq.ParquetFile(self._segments[segment][0])
                .read_row_group(group, columns=["embedding"])
                .column("embedding")
                .combine_chunks()
            )
            block = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, self.dim)
            positions, rows = np.array(members, dtype=np.int64).T
            out[positions] = block[rows]
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
        """Write ``(shas, vectors (n, dim))`` as one new segment, atomically, and index it."""
        dim = vectors.shape[1]
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        table = pa.table(
            [
                pa.array(shas, type=pa.string()),
                pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), dim),
            ],
            schema=cache_schema(dim),
        )
        with atomic_path(self.directory / name) as tmp:
            pq.write_table(table, tmp, row_group_size=SEGMENT_ROW_GROUP, compression="zstd")
        self._add_segment(self.directory / name)


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

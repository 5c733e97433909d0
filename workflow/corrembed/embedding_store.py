"""The embeddings on-disk format.

A model's embeddings live in one directory (``results/embeddings/{model}/``):

- ``part-NNNNN.parquet`` shards, read in name order, each with the columns
  ``item_id`` (string), ``image`` (string, the image path as resolved by ingest) and
  ``embedding`` (``fixed_size_list<float32>[dim]``);
- ``meta.json`` describing how they were made (model, weights, layer, dim, transforms, ...).

Any Arrow reader loads them, e.g. ``pyarrow.parquet.read_table(dir)`` or
``polars.read_parquet(f"{dir}/*.parquet")``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .storage import atomic_path

SHARD_GLOB = "part-*.parquet"


def shard_name(index: int) -> str:
    """File name of shard ``index`` (``part-00000.parquet``)."""
    return f"part-{index:05d}.parquet"


def embedding_schema(dim: int) -> pa.Schema:
    """Arrow schema of an embeddings shard with ``dim``-dimensional vectors."""
    return pa.schema(
        [
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("image", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


class EmbeddingShardWriter:
    """Stream embedding batches into one Parquet shard, atomically.

    Use as a context manager; rows become visible under ``path`` only when the block exits
    without error, so a killed job never leaves a complete-looking shard.

    >>> with EmbeddingShardWriter(path, dim=512) as w:   # doctest: +SKIP
    ...     w.write(item_ids, images, batch)              # batch: (b, 512) float32
    """

    def __init__(self, path: str | os.PathLike, dim: int, row_group_size: int = 4096):
        self.path = Path(path)
        self.dim = int(dim)
        self.row_group_size = row_group_size
        self.rows_written = 0
        self._atomic = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> "EmbeddingShardWriter":
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._writer = pq.ParquetWriter(tmp, embedding_schema(self.dim), compression="zstd")
        return self

    def write(self, item_ids, images, embeddings: np.ndarray) -> None:
        """Append rows. ``embeddings``: (b, dim) array, stored as float32."""
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise ValueError(f"expected embeddings of shape (b, {self.dim}), got {emb.shape}")
        if not (len(item_ids) == len(images) == emb.shape[0]):
            raise ValueError("item_ids, images and embeddings must have the same length")
        values = pa.array(emb.reshape(-1), type=pa.float32())
        batch = pa.record_batch(
            [
                pa.array(list(map(str, item_ids)), type=pa.string()),
                pa.array(list(map(str, images)), type=pa.string()),
                pa.FixedSizeListArray.from_arrays(values, self.dim),
            ],
            schema=embedding_schema(self.dim),
        )
        self._writer.write_batch(batch, row_group_size=self.row_group_size)
        self.rows_written += emb.shape[0]

    def write_record_batch(self, batch: pa.RecordBatch) -> None:
        """Append a record batch that already has :func:`embedding_schema` (e.g. read from
        another shard); values are copied as they are, bit for bit."""
        if not batch.schema.equals(embedding_schema(self.dim)):
            raise ValueError(f"record batch schema {batch.schema} is not {embedding_schema(self.dim)}")
        self._writer.write_batch(batch, row_group_size=self.row_group_size)
        self.rows_written += batch.num_rows

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._writer.close()
        finally:
            self._atomic.__exit__(exc_type, exc, tb)


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of a set of images, rows aligned.

    item_ids: (n,) object array of str; images: (n,) object array of str;
    vectors: (n, d) float32 array (read-only when memory-mapped).
    """

    item_ids: np.ndarray
    images: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return self.vectors.shape[0]


def shard_paths(directory: str | os.PathLike) -> list[Path]:
    """The shards of an embeddings directory, in read order."""
    paths = sorted(Path(directory).glob(SHARD_GLOB))
    if not paths:
        raise FileNotFoundError(f"no embedding shards ({SHARD_GLOB}) in {directory}")
    return paths


def read_embeddings(source: str | os.PathLike | list) -> Embeddings:
    """Read an embeddings directory (or a list of shard paths) into one :class:`Embeddings`.

    Each shard is memory-mapped; with a single row group the float32 matrix is a view of the
    mapped Arrow buffer, otherwise it is assembled with one copy.
    """
    paths = source if isinstance(source, list) else shard_paths(source)
    tables = [pq.read_table(p, memory_map=True) for p in paths]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    column = table.column("embedding")
    dim = column.type.list_size
    chunks = column.chunks
    if len(chunks) == 1:
        flat = chunks[0].flatten()
        vectors = flat.to_numpy(zero_copy_only=flat.null_count == 0).reshape(-1, dim)
    else:
        vectors = np.concatenate(
            [c.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim) for c in chunks]
        ) if chunks else np.zeros((0, dim), np.float32)
    return Embeddings(
        item_ids=np.asarray(table.column("item_id").to_pylist(), dtype=object),
        images=np.asarray(table.column("image").to_pylist(), dtype=object),
        vectors=vectors,
    )


def read_meta(directory: str | os.PathLike) -> dict:
    """The ``meta.json`` of an embeddings directory."""
    return json.loads((Path(directory) / "meta.json").read_text(encoding="utf-8"))

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

from ..storage import atomic_path

SHARD_GLOB = "part-*.parquet"
#: The embeddings' metadata file (:class:`corrembed.records.EmbeddingMeta`) beside the parts.
META_NAME = "meta.json"


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

    def __enter__(self) -> EmbeddingShardWriter:
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
    vectors: (n, d) float32 array.
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

    One pass over the shards: the (n, d) float32 matrix is allocated once (its size comes from
    the Parquet metadata) and each decoded record batch is copied into its rows, so the peak is
    that matrix plus one batch (no memory-mapped file pages, no per-shard tables to
    concatenate). The matrix is writable (the score stage normalizes it in place).

    Parameters
    ----------
    source : path or list of path
        An embeddings directory (its ``part-*.parquet`` files, in order) or the shard files.

    Returns
    -------
    Embeddings
        ``item_ids``, ``images``: (n,) object arrays of str; ``vectors``: (n, d) float32.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with EmbeddingShardWriter(folder / shard_name(0), dim=2) as writer:
    ...     writer.write(["a", "b"], ["a.jpg", "b.jpg"], np.array([[1, 0], [0.5, 2]], dtype=np.float32))
    >>> embeddings = read_embeddings(folder)
    >>> embeddings.item_ids.tolist(), embeddings.vectors
    (['a', 'b'], array([[1. , 0. ],
           [0.5, 2. ]], dtype=float32))
    """
    paths = source if isinstance(source, list) else shard_paths(source)
    # No pre-buffering: it holds whole column chunks beside the decoded batches (2x the data).
    files = [pq.ParquetFile(p, pre_buffer=False) for p in paths]
    n = sum(f.metadata.num_rows for f in files)
    dims = {f.schema_arrow.field("embedding").type.list_size for f in files}
    if len(dims) != 1:
        raise ValueError(f"embedding shards {list(map(str, paths))} have different dimensions {sorted(dims)}")
    dim = dims.pop()
    vectors = np.empty((n, dim), dtype=np.float32)
    item_ids: list = []
    images: list = []
    row = 0
    for f in files:
        for batch in f.iter_batches(batch_size=8192, columns=["item_id", "image", "embedding"]):
            values = batch.column("embedding").flatten().to_numpy(zero_copy_only=False)
            vectors[row : row + batch.num_rows] = values.reshape(-1, dim)
            item_ids.extend(batch.column("item_id").to_pylist())
            images.extend(batch.column("image").to_pylist())
            row += batch.num_rows
    pa.default_memory_pool().release_unused()  # the decoded batches' memory goes back now
    return Embeddings(
        item_ids=np.asarray(item_ids, dtype=object),
        images=np.asarray(images, dtype=object),
        vectors=vectors,
    )


def read_meta(directory: str | os.PathLike) -> dict:
    """The ``meta.json`` of an embeddings directory."""
    return json.loads((Path(directory) / META_NAME).read_text(encoding="utf-8"))

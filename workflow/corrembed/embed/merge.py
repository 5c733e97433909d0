"""The merge: a model's shards -> ``part-00000.parquet`` + ``meta.json`` (:mod:`corrembed.embed.store`'s format)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from ..errors import CorrEmbedError
from ..records import EmbeddingMeta, ShardMeta
from .integrity import quarantine_counts
from .shard import WRITE_CHUNK_ROWS, shard_meta_path
from .shards import shard_bounds
from .skeleton import check_images_table
from .store import META_NAME, EmbeddingShardWriter, embedding_schema, shard_name


def merge_embedding_shards(
    images: pl.DataFrame, shard_paths: list[str | os.PathLike], out_dir: str | os.PathLike
) -> dict[str, Any]:
    """Concatenate shards (in the given order, shard 0 first) into ``out_dir``; return meta.

    Checks that the shards are shards 0..N-1 of one count, made with one embedding identity,
    and that their rows are exactly the catalogue's ``item_id``/``image`` rows in order
    (CorrEmbedError naming the shard otherwise). Streams record batches into
    ``part-00000.parquet`` (values copied bit for bit) and writes ``meta.json``
    (:class:`~corrembed.records.EmbeddingMeta`): the shards' common fields
    (:meth:`ShardMeta.common_fields`), totals (n_images, n_embedded, n_from_cache, seconds),
    images_per_second over the embedded images, the largest peak memory, and the per-shard records.
    """
    check_images_table(images)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metas = [ShardMeta.read(shard_meta_path(p)) for p in shard_paths]
    dim = _check_shards(shard_paths, metas, out)
    (out / META_NAME).unlink(missing_ok=True)
    with EmbeddingShardWriter(out / shard_name(0), dim=dim) as writer:
        for path, meta, (start, stop) in zip(shard_paths, metas, shard_bounds(images.height, len(metas))):
            _check_rows(path, meta, images, start, stop)
            if stop == start:
                continue
            for batch in pq.ParquetFile(path).iter_batches(batch_size=WRITE_CHUNK_ROWS):
                writer.write_record_batch(batch.cast(embedding_schema(dim)))
    record = EmbeddingMeta.from_dict(merged_meta(metas, dim))
    record.write(out / META_NAME)
    return record.to_dict()


def _check_shards(shard_paths: list, metas: list[ShardMeta], out: Path) -> int:
    """The shards' common dimension (0: all empty); CorrEmbedError for a wrong shard or identity."""
    count = len(metas)
    for k, (path, meta) in enumerate(zip(shard_paths, metas)):
        if meta.shard["index"] != k or meta.shard["count"] != count:
            raise CorrEmbedError(
                f"{path}: is shard {meta.shard['index']} of {meta.shard['count']}, expected {k} of {count}"
            )
        if meta.identity_key != metas[0].identity_key:
            raise CorrEmbedError(
                f"{path}: made with embedding identity {meta.identity_key}, shard 0 "
                f"with {metas[0].identity_key}; re-run the embed jobs"
            )
    dims = {m.dim for m in metas if m.n_images}
    if len(dims) > 1:
        raise CorrEmbedError(f"shards of {out} have different dimensions {sorted(dims)}")
    return dims.pop() if dims else 0


def _check_rows(path, meta: ShardMeta, images: pl.DataFrame, start: int, stop: int) -> None:
    """CorrEmbedError unless shard ``path`` holds exactly the catalogue's rows ``start:stop``."""
    if (meta.shard["start"], meta.shard["stop"]) != (start, stop):
        raise CorrEmbedError(
            f"{path}: covers catalogue rows {meta.shard['start']}-{meta.shard['stop']}, "
            f"the catalogue now needs {start}-{stop}; re-run the embed jobs"
        )
    if stop == start:
        return
    names = pq.read_table(path, columns=["item_id", "image"])
    if (
        names.column("item_id").to_pylist() != images.get_column("item_id").cast(pl.String)[start:stop].to_list()
        or names.column("image").to_pylist() != images.get_column("image").cast(pl.String)[start:stop].to_list()
    ):
        raise CorrEmbedError(
            f"{path}: rows differ from the catalogue's rows {start}-{stop} "
            "(images.parquet changed since); re-run the embed jobs"
        )


def merged_meta(metas: list[ShardMeta], dim: int) -> dict[str, Any]:
    """The merged meta's fields: shard 0's common fields, the totals and the per-shard records."""
    first = metas[0]
    embedded = sum(m.n_embedded for m in metas)
    seconds = sum(m.seconds for m in metas)
    job_ids = sorted({m.slurm_job_id for m in metas if m.slurm_job_id})
    return {
        **{key: getattr(first, key) for key in ShardMeta.common_fields()},
        "dim": dim,
        "n_images": sum(m.n_images for m in metas),
        "n_embedded": embedded,
        "n_from_cache": sum(m.n_from_cache for m in metas),
        "shards": len(metas),
        "seconds": round(seconds, 3),
        "setup_seconds": round(sum(m.setup_seconds for m in metas), 3),
        "images_per_second": round(embedded / seconds, 3) if embedded and seconds > 0 else None,
        "peak_memory": {
            key: max((m.peak_memory[key] for m in metas if m.peak_memory[key] is not None), default=None)
            for key in first.peak_memory
        },
        "slurm_job_id": ",".join(job_ids) if job_ids else None,
        "images_set_aside": [record for m in metas for record in m.images_set_aside],
        **quarantine_counts([record for m in metas for record in m.cache_quarantined]),
        "shard_records": [
            {**m.shard, **{k: getattr(m, k) for k in ("n_images", "n_embedded", "seconds", "device", "slurm_job_id")}}
            for m in metas
        ],
    }

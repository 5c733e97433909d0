"""One shard job: embed shard ``k`` of ``N`` of the catalogue's images into its Parquet file.

Shard ``k`` takes its contiguous range of catalogue rows (:func:`corrembed.embed.shards.shard_bounds`),
looks every image up by content hash in the embedding cache (:mod:`corrembed.embed.cache`),
embeds only the images not there (:class:`corrembed.embed.skeleton.EmbedJob`), then writes
``shard-{k}-of-{N}.parquet`` (rows in catalogue order, read back from the cache) and its
:class:`~corrembed.records.ShardMeta` ``shard-{k}-of-{N}.json``. The ``.json`` is removed before
the Parquet file is replaced, so a ``.json`` on disk always describes a complete file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
import torch

from ..errors import CorrEmbedError
from ..models import ModelSpec
from ..records import ShardMeta
from .forward import ForwardTimings, extractor_on_device
from .integrity import CacheEntriesLost, quarantine_counts
from .provenance import device_name, device_string, library_versions, model_meta, peak_memory
from .settings import RunSettings, progress_sink
from .shards import shard_bounds, shard_id
from .skeleton import EmbedJob, check_images_table
from .store import EmbeddingShardWriter

#: Rows read back from the cache and written per step when assembling a shard.
WRITE_CHUNK_ROWS = 4096
#: Rounds of embed-then-read a shard tries when cache segments turn out damaged while read.
MAX_CACHE_ROUNDS = 8


def shard_meta_path(shard_path: str | os.PathLike) -> Path:
    """``shard-00000-of-00002.parquet`` -> ``shard-00000-of-00002.json``.

    Examples
    --------
    >>> shard_meta_path("shards/shard-00000-of-00002.parquet").name
    'shard-00000-of-00002.json'
    """
    return Path(shard_path).with_suffix(".json")


def embed_shard(
    images: pl.DataFrame,
    spec: ModelSpec,
    shard_path: str | os.PathLike,
    *,
    torch_home: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    shard: tuple[int, int] = (0, 1),
    precision: str = "fp32",
    decoder: str = "pil",
    settings: RunSettings | None = None,
    progress: Callable[[str], Any] | logging.Logger | None = None,
    hf_home: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Embed shard ``shard = (index, count)`` of ``images`` into ``shard_path``; return its meta.

    Parameters
    ----------
    images : polars DataFrame
        The catalogue's images table (``item_id``, ``image``, ``sha256``; without ``sha256``
        the files are hashed here), in catalogue order.
    spec : ModelSpec
        The parsed model (:func:`corrembed.models.parse_model_spec`); weights are read offline
        from ``torch_home`` / ``hf_home`` (the weights step's caches).
    cache_dir : path
        Root of the embedding cache: images cached under this identity are not embedded again
        (nor is the model built when all are), new embeddings are added to it.
    precision, decoder : str
        ``fp32``/``bf16``/``fp16`` (forward autocast; stored float32); :data:`~corrembed.images.batches.DECODERS`.
    settings : RunSettings, optional
        How to run (default ``RunSettings()``); not part of the cache identity.

    Returns
    -------
    dict
        The :class:`~corrembed.records.ShardMeta` written to :func:`shard_meta_path`. ``shard_path``
        holds item_id, image, embedding fixed_size_list<float32>[dim] in catalogue order.
    """
    check_images_table(images)
    if not isinstance(spec, ModelSpec):
        raise TypeError("embed_shard: spec must be a parsed ModelSpec (corrembed.models.parse_model_spec)")
    say = progress_sink(progress)
    settings = settings if settings is not None else RunSettings()
    index, count = shard
    start, stop = shard_bounds(images.height, count)[index]
    label = spec.name if count == 1 else f"{spec.name} [shard {shard_id(index, count)}]"
    shard_path = Path(shard_path)
    meta_path = shard_meta_path(shard_path)
    shard_path.parent.mkdir(parents=True, exist_ok=True)
    # A shard's .json must never describe an older Parquet file: drop it first.
    meta_path.unlink(missing_ok=True)

    job = EmbedJob.prepare(
        images.slice(start, stop - start),
        spec,
        [spec.layer],
        torch_home=torch_home,
        hf_home=hf_home,
        cache_dir=cache_dir,
        precision=precision,
        decoder=decoder,
        settings=settings,
    )
    job, timings, embedded, dim = _embed_and_write(
        job,
        shard_path,
        lambda lacking, target: extractor_on_device(spec, torch_home, target, settings, hf_home),
        where=f"rows {start}-{stop} of {images.height}",
        say=say,
        label=label,
    )
    meta = _shard_meta(
        job, timings, dim=dim, n_embedded=embedded, shard={"index": index, "count": count, "start": start, "stop": stop}
    )
    meta.write(meta_path)
    return meta.to_dict()


def _embed_and_write(job: EmbedJob, shard_path: Path, build_forward, *, where: str, say, label: str):
    """Embed what the cache lacks, then write the shard read back from the cache.

    A segment found damaged while reading is quarantined (its entries are missing again), so the
    next round embeds exactly those. Returns the job as last looked up, the timings and count of
    images embedded over every round, and the dimension.
    """
    cache = job.caches[job.spec.layer]
    timings, embedded = ForwardTimings(), 0
    for _round in range(MAX_CACHE_ROUNDS):
        say(
            f"{label}: {where}: {len(job.shas) - len(job.missing)} image(s) cached, "
            f"{len(job.missing)} distinct to embed (cache {cache.directory})"
        )
        timings += job.run(lambda lacking, target=job.target: build_forward(lacking, target), say=say, label=label)
        embedded += len(job.missing)
        dim = cache.dim if cache.dim is not None else 0  # 0: an empty shard of an empty cache
        try:
            _write_shard(job, shard_path, dim, timings.set_aside)
            return job, timings, embedded, dim
        except CacheEntriesLost as lost:
            say(f"{label}: {lost}")
            job = job.refreshed(skip={record["sha256"] for record in timings.set_aside})  # tried once is enough
    raise CorrEmbedError(f"{label}: cache {cache.directory} kept losing segments while read; check the disk")


def _write_shard(job: EmbedJob, shard_path: Path, dim: int, set_aside: list[dict]) -> None:
    """The shard's Parquet file, its rows read back from the cache in catalogue order."""
    with EmbeddingShardWriter(shard_path, dim=dim) as writer:
        for chunk in range(0, len(job.shas), WRITE_CHUNK_ROWS):
            part = slice(chunk, chunk + WRITE_CHUNK_ROWS)
            writer.write(job.item_ids[part], job.paths[part], job.fetch(job.spec.layer, set_aside, part))


def _shard_meta(
    job: EmbedJob, timings: ForwardTimings, *, dim: int, n_embedded: int, shard: dict[str, int]
) -> ShardMeta:
    """The shard's record: model, identity, counts, timings, device, versions and run settings."""
    cache = job.caches[job.spec.layer]
    seconds = timings.seconds
    return ShardMeta(
        **model_meta(job.spec, job.description),
        dim=dim if len(job.shas) else cache.dim,
        identity=cache.identity,
        identity_key=cache.key,
        cache=str(cache.directory),
        shard=shard,
        n_images=len(job.shas),
        n_embedded=n_embedded,
        n_from_cache=len(job.shas) - n_embedded,
        precision=job.precision,
        decoder=job.decoder,
        device=device_string(job.target),
        device_name=device_name(job.target),
        dtype="float32",
        seconds=round(seconds, 3),
        setup_seconds=round(timings.setup_seconds, 3),
        images_per_second=round(n_embedded / seconds, 3) if n_embedded and seconds > 0 else None,
        images_set_aside=timings.set_aside,
        **quarantine_counts(cache.quarantined),
        peak_memory=peak_memory(job.target),
        versions=library_versions(),
        **{key: value for key, value in asdict(job.settings).items() if key != "device"},
        torch_num_threads=torch.get_num_threads(),
        # Which cluster job made these embeddings (None outside Slurm), to find its sacct record.
        slurm_job_id=os.environ.get("SLURM_JOB_ID"),
    )

"""How embeddings were made: a model's ``meta.json`` and each embed job's shard record."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import Record


@dataclass(frozen=True, kw_only=True)
class EmbeddingMeta(Record):
    """How a model's embeddings were made (``results/embeddings/{model}/meta.json``).

    Attributes:
        model: the config's model name; arch: the architecture; weights: ``{configured,
            resolved, kind}`` (resolved None: random init); layer: the embedded layer;
            transforms: the preprocessing description; dim: embedding dimension.
        identity, identity_key, cache: the embedding identity (what makes two embeddings of an
            image interchangeable), its key and the cache folder.
        precision: fp32/bf16/fp16; decoder: the image decoder (see
            :mod:`corrembed.images.batches`); device, device_name; dtype of the stored values.
        n_images, n_embedded, n_from_cache: rows written, images embedded by this run, rows
            served from the cache; shards: number of shards merged.
        seconds, setup_seconds, images_per_second: embedding time (over embedded images).
        peak_memory: ``{cpu_peak_rss_bytes, cuda_max_allocated_bytes}`` (largest over shards).
        versions: library versions; batch_size, num_workers, channels_last, compile,
            torch_num_threads: run settings; slurm_job_id: the cluster job(s), comma-separated.
        images_set_aside: images the embed jobs could not decode ``{image, sha256, kind,
            reason}`` (kinds as in rejects.csv): they have NaN embeddings, are not cached (a later
            run tries them again) and the score stage excludes them. Older files lack it: [].
        n_quarantined, cache_quarantined: cache entries found damaged and set aside (embedded
            again), and the segments ``{file, moved_to, reason, rows}`` (see
            :mod:`corrembed.embed.integrity`). Older files lack them: 0 and [].
        shard_records: per shard ``{index, count, start, stop, n_images, n_embedded, seconds,
            device, slurm_job_id}``.
        schema_version, extra: see :class:`Record`.

    Fields that older files lack read as None, except the run settings that had a fixed value
    before they were configurable: precision ``fp32``, decoder ``pil``, channels_last and compile
    false.

    Examples
    --------
    >>> meta = EmbeddingMeta.from_dict({"model": "r18", "arch": "resnet18", "layer": "penultimate",
    ...                                 "weights": {"configured": None, "resolved": None, "kind": "random"}})
    >>> meta.schema_version, meta.precision, meta.resolved_weights   # an older file: version 1, defaults
    (1, 'fp32', None)
    >>> list(meta.to_dict())[:3]
    ['schema_version', 'model', 'arch']
    """

    WHAT: ClassVar[str] = "embedding metadata"
    STAGE: ClassVar[str] = "the embed stage for this model"

    model: str
    arch: str
    weights: dict[str, Any]
    layer: str
    transforms: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    identity_key: str | None = None
    cache: str | None = None
    precision: str = "fp32"
    decoder: str = "pil"
    device: str | None = None
    device_name: str | None = None
    dtype: str | None = None
    versions: dict[str, str] | None = None
    batch_size: int | None = None
    num_workers: int | None = None
    channels_last: bool = False
    compile: bool = False
    torch_num_threads: int | None = None
    dim: int | None = None
    n_images: int | None = None
    n_embedded: int | None = None
    n_from_cache: int | None = None
    shards: int | None = None
    seconds: float | None = None
    setup_seconds: float | None = None
    images_per_second: float | None = None
    peak_memory: dict[str, int | None] | None = None
    slurm_job_id: str | None = None
    images_set_aside: list[dict[str, Any]] = field(default_factory=list)
    n_quarantined: int = 0
    cache_quarantined: list[dict[str, Any]] = field(default_factory=list)
    shard_records: list[dict[str, Any]] | None = None
    schema_version: int = Record.SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def set_aside_by_kind(self) -> dict[str, int]:
        """Images the embed stage could not decode, counted by kind."""
        counts: dict[str, int] = {}
        for record in self.images_set_aside:
            counts[record["kind"]] = counts.get(record["kind"], 0) + 1
        return counts

    @property
    def resolved_weights(self) -> str | None:
        """The weights actually loaded (None: random init)."""
        return (self.weights or {}).get("resolved")


#: Marks a :class:`ShardMeta` field every shard of a model shares (the merge copies shard 0's).
_COMMON = {"common": True}


@dataclass(frozen=True, kw_only=True)
class ShardMeta(Record):
    """What one embed job wrote about its shard (``shard-{k}-of-{N}.json`` beside its Parquet file).

    Attributes
    ----------
    model, source, arch, weights, layer, transforms, identity, identity_key, cache, precision, decoder, device
        As in :class:`EmbeddingMeta`; so are device_name, dtype, versions and the run settings.
    shard : dict
        ``{index, count, start, stop}``: which shard, and its catalogue rows.
    dim, n_images, n_embedded, n_from_cache, seconds, setup_seconds, images_per_second
        This shard's dimension (None: empty shard of an empty cache), counts and timings.
    images_set_aside, n_quarantined, cache_quarantined, peak_memory, slurm_job_id, log_every, segment_rows,
    segment_seconds
        This shard's own: not copied as they are into the merged meta.

    Fields marked ``common`` (:meth:`common_fields`) are the same for every shard of a model:
    the merge copies them from shard 0 and sums or collects the rest.

    Examples
    --------
    >>> meta = ShardMeta(model="r18", arch="resnet18", weights={}, layer="penultimate",
    ...                  shard={"index": 0, "count": 1, "start": 0, "stop": 3})
    >>> ShardMeta.from_dict(meta.to_dict()) == meta
    True
    >>> ShardMeta.common_fields()[:3]
    ['model', 'source', 'arch']
    """

    WHAT: ClassVar[str] = "embedding shard metadata"
    STAGE: ClassVar[str] = "the embed jobs for this model"

    model: str = field(metadata=_COMMON)
    source: str | None = field(default=None, metadata=_COMMON)
    arch: str = field(metadata=_COMMON)
    weights: dict[str, Any] = field(metadata=_COMMON)
    layer: str = field(metadata=_COMMON)
    transforms: dict[str, Any] | None = field(default=None, metadata=_COMMON)
    dim: int | None = None
    identity: dict[str, Any] | None = field(default=None, metadata=_COMMON)
    identity_key: str | None = field(default=None, metadata=_COMMON)
    cache: str | None = field(default=None, metadata=_COMMON)
    shard: dict[str, int]
    n_images: int = 0
    n_embedded: int = 0
    n_from_cache: int = 0
    precision: str = field(default="fp32", metadata=_COMMON)
    decoder: str = field(default="pil", metadata=_COMMON)
    device: str | None = field(default=None, metadata=_COMMON)
    device_name: str | None = field(default=None, metadata=_COMMON)
    dtype: str | None = field(default=None, metadata=_COMMON)
    seconds: float = 0.0
    setup_seconds: float = 0.0
    images_per_second: float | None = None
    images_set_aside: list[dict[str, Any]] = field(default_factory=list)
    n_quarantined: int = 0
    cache_quarantined: list[dict[str, Any]] = field(default_factory=list)
    peak_memory: dict[str, int | None] = field(default_factory=dict)
    versions: dict[str, str] | None = field(default=None, metadata=_COMMON)
    batch_size: int | None = field(default=None, metadata=_COMMON)
    num_workers: int | None = field(default=None, metadata=_COMMON)
    channels_last: bool = field(default=False, metadata=_COMMON)
    compile: bool = field(default=False, metadata=_COMMON)
    log_every: int | None = None
    segment_rows: int | None = None
    segment_seconds: float | None = None
    torch_num_threads: int | None = field(default=None, metadata=_COMMON)
    slurm_job_id: str | None = None
    schema_version: int = Record.SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def common_fields(cls) -> list[str]:
        """The fields every shard of a model shares, in declaration order."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("common")]

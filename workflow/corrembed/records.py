"""Typed records of what the workflow stages hand each other, written and read through one type each.

- :class:`CatalogueReport`: ``results/catalogue/report.json``, written by ingest;
- :class:`EmbeddingMeta`: ``results/embeddings/{model}/meta.json``, written by the embed stage;
- :class:`ScoreRecord`: ``results/scores/{model}/{weighting}.json``, written by the score stage;
- :class:`DeploymentVariantRecord`: ``results/deployment/{model}/{variant}.json``, written by the
  deployment_variant rule (``results/deployment.csv`` carries :data:`DEPLOYMENT_SCHEMA_VERSION`).

Each record is a dataclass defined here once. A file is a JSON object: ``schema_version`` first,
then the fields in declaration order, then any keys the record does not declare (``extra``,
kept verbatim so that a stage may add a field before this module learns about it), so the files
keep the keys and values they had before these types existed.

Reading (:meth:`read`, :meth:`from_dict`) is tolerant of older files and strict on newer ones:

- a file without ``schema_version`` was written before the field existed; it is read as version 1
  (the format was the same), and fields it lacks take their defaults (``None`` for fields
  added later, such as a score's ``n_excluded_items``);
- a ``schema_version`` this code does not know (a file written by a newer CorrEmbed, or
  garbage) raises :class:`RecordVersionError` naming the file, the version and what to do.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import CorrEmbedError
from .storage import write_json

R = TypeVar("R", bound="_Record")


class RecordVersionError(CorrEmbedError):
    """A stage record (report.json, meta.json, score JSON) has a schema version this code cannot read."""


class _Record:
    """Shared JSON behaviour of the records (a mixin for dataclasses with ``schema_version`` and ``extra``)."""

    #: The version this code writes.
    SCHEMA_VERSION: ClassVar[int] = 1
    #: Versions this code reads (files without the field count as version 1).
    READABLE_VERSIONS: ClassVar[frozenset[int]] = frozenset({1})
    #: What the file is, for messages (e.g. "catalogue report").
    WHAT: ClassVar[str] = "record"
    #: The stage that writes it, for messages.
    STAGE: ClassVar[str] = "the stage"
    #: Keys older writers wrote that this record no longer has (dropped on reading).
    RETIRED_KEYS: ClassVar[frozenset[str]] = frozenset()

    # ---------------------------------------------------------------- writing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``schema_version``, the declared fields in order, then ``extra``."""
        out: dict[str, Any] = {"schema_version": self.schema_version}  # type: ignore[attr-defined]
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name in ("schema_version", "extra"):
                continue
            out[f.name] = _plain(getattr(self, f.name))
        for key, value in self.extra.items():  # type: ignore[attr-defined]
            out.setdefault(key, _plain(value))
        return out

    def to_json(self) -> str:
        """The JSON text :meth:`write` writes (indented, NaN as null)."""
        return json.dumps(_nan_to_none(self.to_dict()), indent=2) + "\n"

    def write(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` to ``path`` atomically (:func:`corrembed.storage.write_json`)."""
        write_json(path, self.to_dict())

    # ---------------------------------------------------------------- reading

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any], *, source: str | os.PathLike | None = None) -> R:
        """The record of a dict as :meth:`to_dict` (or an older writer) made it.

        source: the file it came from, for error messages. Raises RecordVersionError for an
        unknown ``schema_version`` and CorrEmbedError when a required field is missing.
        """
        where = f"{cls.WHAT} {source}" if source is not None else cls.WHAT
        if not isinstance(data, dict):
            raise CorrEmbedError(f"{where}: expected a JSON object, got {type(data).__name__}; re-run {cls.STAGE}")
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or version not in cls.READABLE_VERSIONS:
            raise RecordVersionError(
                f"{where} has schema_version {version!r}; this CorrEmbed reads version(s) "
                f"{sorted(cls.READABLE_VERSIONS)}. It was written by another (newer?) CorrEmbed: "
                f"re-run {cls.STAGE} with this version, or update CorrEmbed"
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        known: dict[str, Any] = {"schema_version": version}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("schema_version", "extra") or key in cls.RETIRED_KEYS:
                continue
            if key in fields:
                known[key] = _tuple_if(fields[key], value)
            else:
                extra[key] = value
        missing = [
            name
            for name, f in fields.items()
            if name not in known and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        ]
        if missing:
            raise CorrEmbedError(f"{where} lacks field(s) {missing}; the file is incomplete: re-run {cls.STAGE}")
        return cls(**known, extra=extra)  # type: ignore[call-arg]

    @classmethod
    def read(cls: type[R], path: str | os.PathLike) -> R:
        """The record in the JSON file ``path`` (CorrEmbedError naming the file when it cannot be read)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CorrEmbedError(f"{cls.WHAT} {path} does not exist; run {cls.STAGE}") from None
        except (OSError, ValueError) as exc:
            raise CorrEmbedError(f"cannot read {cls.WHAT} {path}: {exc}; re-run {cls.STAGE}") from None
        return cls.from_dict(data, source=path)


def _tuple_if(f: dataclasses.Field, value: Any) -> Any:
    """JSON lists back to tuples for tuple-typed fields (so a record round-trips equal)."""
    if isinstance(value, list) and str(f.type).startswith("tuple"):
        return tuple(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------------
# The catalogue report (ingest)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CatalogueReport(_Record):
    """What ingest read, wrote, set aside and noticed (``results/catalogue/report.json``).

    Attributes:
        manifest: the manifest path.
        n_manifest_rows: data rows in the manifest.
        n_items: items kept (>= 1 usable image).
        n_images: usable images written to images.parquet.
        n_rejected: rejects.csv rows with action ``set_aside`` (images, listings and items).
        n_rejected_images: unusable (item, image) pairs set aside (repeated listings excluded).
        n_dropped_items: items set aside for lack of a usable image.
        n_tag_rows: rows written to tags.parquet.
        categories: tag categories of the kept items, in output order.
        values_per_category: number of distinct values of each category (kept items).
        items_per_category: number of kept items having each category.
        unknown_excluded_categories: excluded categories that the manifest does not have (typos?).
        set_aside_by_kind: count of set-aside rows by ``kind`` keyword (rejects.csv).
        n_duplicate_images: images whose bytes equal an image of an earlier item.
        n_repeated_listings: listings of an image the item already lists.
        n_items_without_tags: kept items without any tag (zero tag vector: never an anchor).
        n_symlinked_images, n_outside_manifest_folder: kept images listed through a symlink /
            lying outside the manifest's folder (allowed; images.parquet records both paths).
        image_modes: count of kept images by Pillow mode of the file (RGB, RGBA, P, I;16, ...).
        n_animated_images, n_exif_rotated_images: kept images that are multi-frame (first frame
            used) / carry an EXIF orientation (applied).
        normalize_values: normalizations applied to tag values.
        n_values_with_whitespace: distinct (category, value) pairs, as read, with surrounding
            whitespace.
        value_variants: groups of values of one category that differ only in case or
            surrounding whitespace: ``{category, values: {value: n_items}, merged}``
            (first 20 groups; ``n_value_variant_groups`` counts all).
        multi_valued_cells: wide format: per category, cells split on ``value_separator`` into
            several values ``{n_cells, example}`` (a separator inside a value shows up here).
        single_value_categories: categories with one distinct value (zero entropy among the
            items having it).
        one_value_per_item_categories: categories whose every value belongs to one item (maximum
            entropy: likely an identifier, not a tag).
        schema_version: format version of the file (:class:`_Record`).
        extra: keys of the file this record does not declare, kept verbatim.

    Files written before ``schema_version`` existed also carried ``reject_reasons`` (counts by the
    prose reason's first words); it is dropped on reading: ``set_aside_by_kind`` counts the same rows
    by their stable ``kind``.
    """

    WHAT: ClassVar[str] = "catalogue report"
    STAGE: ClassVar[str] = "the ingest stage"
    RETIRED_KEYS: ClassVar[frozenset[str]] = frozenset({"reject_reasons"})

    manifest: str
    n_manifest_rows: int
    n_items: int
    n_images: int
    n_rejected: int
    n_rejected_images: int
    n_dropped_items: int
    n_tag_rows: int
    categories: tuple[str, ...]
    values_per_category: dict[str, int] = field(default_factory=dict)
    items_per_category: dict[str, int] = field(default_factory=dict)
    unknown_excluded_categories: tuple[str, ...] = ()
    set_aside_by_kind: dict[str, int] = field(default_factory=dict)
    n_duplicate_images: int = 0
    n_repeated_listings: int = 0
    n_items_without_tags: int = 0
    n_symlinked_images: int = 0
    n_outside_manifest_folder: int = 0
    image_modes: dict[str, int] = field(default_factory=dict)
    n_animated_images: int = 0
    n_exif_rotated_images: int = 0
    normalize_values: tuple[str, ...] = ()
    n_values_with_whitespace: int = 0
    n_value_variant_groups: int = 0
    value_variants: list[dict[str, Any]] = field(default_factory=list)
    multi_valued_cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    single_value_categories: tuple[str, ...] = ()
    one_value_per_item_categories: tuple[str, ...] = ()
    schema_version: int = _Record.SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def warnings(self) -> list[str]:
        """One line per finding a user should look at (for the job log)."""
        lines = []
        if self.n_rejected:
            kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.set_aside_by_kind.items()))
            lines.append(f"{self.n_rejected} row(s) set aside ({kinds}); see rejects.csv")
        if self.n_duplicate_images:
            lines.append(
                f"{self.n_duplicate_images} image(s) are byte-identical to an image of "
                "another item (kind duplicate_image in rejects.csv)"
            )
        if self.n_items_without_tags:
            lines.append(
                f"{self.n_items_without_tags} item(s) have no tag at all: their tag vector "
                "is zero, they are never anchors (kind no_tags in rejects.csv)"
            )
        if self.n_value_variant_groups:
            merged = "merged" if "casefold" in self.normalize_values else "NOT merged"
            examples = "; ".join(f"{g['category']}: {list(g['values'])}" for g in self.value_variants[:3])
            lines.append(
                f"{self.n_value_variant_groups} group(s) of tag values differ only in case or "
                f"surrounding whitespace ({merged}), e.g. {examples}. "
                "catalogue.normalize_values: [strip, casefold] merges them"
            )
        if self.n_values_with_whitespace and "strip" not in self.normalize_values:
            lines.append(
                f"{self.n_values_with_whitespace} tag value(s) have surrounding whitespace "
                "(kept verbatim; catalogue.normalize_values: [strip] removes it)"
            )
        for category, cells in self.multi_valued_cells.items():
            lines.append(
                f"category {category!r}: {cells['n_cells']} cell(s) were split into several "
                f"values, e.g. {cells['example']!r}; if the separator is part of the "
                "values, change catalogue.value_separator (null: no splitting)"
            )
        if self.one_value_per_item_categories:
            lines.append(
                f"categories {list(self.one_value_per_item_categories)} have a different "
                "value for every item (maximum entropy): identifiers rather than tags? "
                "Exclude them with catalogue.exclude_categories"
            )
        if self.single_value_categories:
            lines.append(f"categories {list(self.single_value_categories)} have a single value (zero entropy)")
        if self.unknown_excluded_categories:
            lines.append(f"excluded categories not in the manifest: {list(self.unknown_excluded_categories)} (typos?)")
        return lines


# ------------------------------------------------------------------------------------------------
# Embedding metadata (embed stage)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EmbeddingMeta(_Record):
    """How a model's embeddings were made (``results/embeddings/{model}/meta.json``).

    Attributes:
        model: the config's model name; arch: the architecture; weights: ``{configured,
            resolved, kind}`` (resolved None: random init); layer: the embedded layer;
            transforms: the preprocessing description; dim: embedding dimension.
        identity, identity_key, cache: the embedding identity (what makes two embeddings of an
            image interchangeable), its key and the cache folder.
        precision: fp32/bf16/fp16; decoder: the image decoder (see
            :mod:`corrembed.image_batches`); device, device_name; dtype of the stored values.
        n_images, n_embedded, n_from_cache: rows written, images embedded by this run, rows
            served from the cache; shards: number of shards merged.
        seconds, setup_seconds, images_per_second: embedding time (over embedded images).
        peak_memory: ``{cpu_peak_rss_bytes, cuda_max_allocated_bytes}`` (largest over shards).
        versions: library versions; batch_size, num_workers, channels_last, compile,
            torch_num_threads: run settings; slurm_job_id: the cluster job(s), comma-separated.
        images_set_aside: images the embed jobs could not decode ``{image, sha256, kind,
            reason}`` (kinds as in rejects.csv): they have NaN embeddings, are not cached (a later
            run tries them again) and the score stage excludes them. Older files lack it: [].
        shard_records: per shard ``{index, count, start, stop, n_images, n_embedded, seconds,
            device, slurm_job_id}``.
        schema_version, extra: see :class:`_Record`.

    Fields that older files lack read as None, except the run settings that had a fixed value
    before they were configurable: precision ``fp32``, decoder ``pil``, channels_last and compile
    false.
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
    shard_records: list[dict[str, Any]] | None = None
    schema_version: int = _Record.SCHEMA_VERSION
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


# ------------------------------------------------------------------------------------------------
# Score (score stage)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ScoreRecord(_Record):
    """One model x weighting score (``results/scores/{model}/{weighting}.json``).

    Attributes:
        model, weighting: what was scored; settings: the config's ``scoring:`` mapping;
        n_excluded_embeddings, n_excluded_items: unusable embeddings / items excluded before
            scoring.
        corrembed, ci_low, ci_high: CorrEmbed and its bootstrap interval; allpairs_pearson,
            anchor_spearman, allpairs_spearman (+ _method, _pairs, _se): the variants;
            n_items, n_anchors, n_anchors_skipped, n_anchors_zero_tags; include_self, seed,
            bootstrap, confidence; control_random, control_shuffled_embeddings,
            control_shuffled_tags; mantel_p, permutations; device: as
            :class:`corrembed.score.ScoreReport` (NaN is written as null).
        schema_version, extra: see :class:`_Record` (report fields added by newer scoring code
            land in ``extra`` and are written back unchanged).
    """

    WHAT: ClassVar[str] = "score file"
    STAGE: ClassVar[str] = "the score stage for this model and weighting"

    model: str
    weighting: str
    settings: dict[str, Any] | None = None
    n_excluded_embeddings: int = 0
    n_excluded_items: int = 0
    corrembed: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    allpairs_pearson: float | None = None
    anchor_spearman: float | None = None
    allpairs_spearman: float | None = None
    allpairs_spearman_method: str | None = None
    allpairs_spearman_pairs: int | None = None
    allpairs_spearman_se: float | None = None
    n_items: int | None = None
    n_anchors: int | None = None
    n_anchors_skipped: int | None = None
    n_anchors_zero_tags: int | None = None
    include_self: bool | None = None
    seed: int | None = None
    bootstrap: int | None = None
    confidence: float | None = None
    control_random: float | None = None
    control_shuffled_embeddings: float | None = None
    control_shuffled_tags: float | None = None
    mantel_p: float | None = None
    permutations: int | None = None
    device: str | None = None
    schema_version: int = _Record.SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_report(cls, report: dict[str, Any], **extra: Any) -> ScoreRecord:
        """The record of a score report's scalars (:meth:`corrembed.score.ScoreReport.as_dict`) plus
        the workflow's fields (``model``, ``weighting``, ``settings``, ``n_excluded_*``).

        The file keeps the key order the score stage wrote before this type existed: the
        workflow's fields, then the report's.
        """
        return cls.from_dict({**extra, **report})

    def get(self, key: str, default: Any = None) -> Any:
        """A declared field or an ``extra`` key by name (for table building)."""
        if key in self.__dataclass_fields__ and key not in ("extra",):
            return getattr(self, key)
        return self.extra.get(key, default)


# ------------------------------------------------------------------------------------------------
# Deployment study (deployment rules)
# ------------------------------------------------------------------------------------------------

#: The ``schema_version`` column of ``results/deployment.csv``.
DEPLOYMENT_SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class DeploymentVariantRecord(_Record):
    """One scored deployment variant of a model (``results/deployment/{model}/{variant}.json``).

    Attributes:
        model, variant: what was scored (variant as :func:`corrembed.deployment.parse_variant`
            spells it); reduction, dims, precision, bytes_per_item: the stored vector;
        n_items: items scored; retrieval_k: the nDCG cut-off;
        scores: weighting -> ``{corrembed, ndcg, n_anchors}`` (the per-anchor values are in the
            ``.parquet`` beside it); settings: the ``deployment:`` and scoring settings used;
        skipped: why the variant was not scored (a reduction to at least the model's dimension), else None.
        schema_version, extra: see :class:`_Record`.
    """

    WHAT: ClassVar[str] = "deployment variant file"
    STAGE: ClassVar[str] = "the deployment_variant rule for this model and variant"

    model: str
    variant: str
    reduction: str
    dims: int
    precision: str
    bytes_per_item: int
    n_items: int
    retrieval_k: int
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] | None = None
    skipped: str | None = None
    schema_version: int = _Record.SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

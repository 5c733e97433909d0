"""Catalogue manifest -> normalized catalogue (images, tags, rejects).

The manifest is a CSV or Parquet table (format chosen by the file suffix) in one of two layouts:

- **wide**: one row per item (or several rows per item, one per image, with identical tags), one
  column per tag category. A cell may hold several values of one category separated by
  ``value_separator`` (default ``"|"``).
- **long**: one row per (item, category, value); several values of a category are several rows.

Image paths come from an image column (several images in one cell split on ``image_separator``)
or from a template such as ``"images/{id}.jpg"`` whose placeholders name manifest columns.
Relative paths are resolved against the manifest's folder; absolute paths are kept.

Every listed image is read and fully decoded once (a thread pool: Pillow releases the GIL while
decoding). Unreadable images (missing, empty, truncated, not an image) are recorded in
``rejects.csv`` and the run goes on (``on_unreadable="reject"``) or the run stops with a
:class:`~corrembed.errors.ManifestError` (``"fail"``). Items left without a readable image are
dropped and recorded too.

Value normalization (the only changes made to what the manifest says):

- all cells are read as strings, so item ids such as ``"007"`` stay ``"007"``;
- a tag cell is split on ``value_separator`` (wide format only; long format takes one value per
  row); every value has its surrounding whitespace removed (Python ``str.strip``); values that are
  then empty, and empty cells, are missing values and give no tag row;
- repeated values of one (item, category) are kept once, in order of first appearance;
- image cells are split on ``image_separator`` and each path stripped of surrounding whitespace;
- item ids and category names are taken verbatim (an empty item id is an error).

Outputs (the catalogue format shared by all later stages):

- ``images.parquet``: item_id (str), image (str, absolute path), image_rank (int32, 0-based
  position among the item's *readable* images in manifest order, so rank 0 exists for every kept
  item), width (int32), height (int32), sha256 (str, hex digest of the file bytes); rows ordered by
  item first appearance, then image_rank.
- ``tags.parquet``: item_id, category, value (all str), one row per distinct (item, category,
  value), only for kept items; ordered by item, then category (column order in wide format, first
  appearance in long format), then value first appearance.
- ``rejects.csv``: item_id, image, reason. One row per unreadable image, plus one row with an empty
  image for every dropped item.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import string
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
from PIL import Image

from .errors import ConfigError, ManifestError
from .storage import write_table

SUPPORTED_MANIFEST_SUFFIXES = (".csv", ".parquet")
FORMATS = ("wide", "long")
ON_UNREADABLE = ("reject", "fail")

IMAGES_SCHEMA = {
    "item_id": pl.String,
    "image": pl.String,
    "image_rank": pl.Int32,
    "width": pl.Int32,
    "height": pl.Int32,
    "sha256": pl.String,
}
TAGS_SCHEMA = {"item_id": pl.String, "category": pl.String, "value": pl.String}
REJECTS_SCHEMA = {"item_id": pl.String, "image": pl.String, "reason": pl.String}

# How many rejects a "fail" error message quotes.
_FAIL_MESSAGE_REJECTS = 5


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestOptions:
    """How to read a catalogue manifest.

    Attributes:
        format: ``"wide"`` (one column per category) or ``"long"`` (item/category/value rows).
        item_column: column holding the item id.
        image_column: column holding image paths (relative to the manifest's folder or
            absolute). Not used for images when ``image_template`` is set, but still never a tag
            column. ``None``: no image column.
        image_template: e.g. ``"images/{id}.jpg"``; placeholders are manifest column names
            (format specs such as ``{id:0>5}`` work on the string value). Overrides
            ``image_column``.
        image_separator: separator of several image paths in one cell (``None``: one per cell).
            Default ``";"``.
        tag_columns: wide format: the tag category columns (default: every column except the
            item and image columns).
        category_column, value_column: long format: the category and value columns.
        value_separator: wide format: separator of several values in one cell (``None``: none).
        exclude_categories: categories (wide: columns) that are not tags.
        on_unreadable: ``"reject"`` (record and go on) or ``"fail"`` (raise ManifestError).
    """

    format: str = "wide"
    item_column: str = "item_id"
    image_column: str | None = "image"
    image_template: str | None = None
    image_separator: str | None = ";"
    tag_columns: tuple[str, ...] | None = None
    category_column: str = "category"
    value_column: str = "value"
    value_separator: str | None = "|"
    exclude_categories: tuple[str, ...] = ()
    on_unreadable: str = "reject"

    # Keys of the config's ``catalogue:`` mapping that are not reading options (the manifest's
    # location); from_config ignores them.
    NON_OPTION_KEYS = frozenset({"manifest"})

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"catalogue.format must be one of {FORMATS}, got {self.format!r}")
        if self.on_unreadable not in ON_UNREADABLE:
            raise ConfigError(
                f"catalogue.on_unreadable must be one of {ON_UNREADABLE}, got {self.on_unreadable!r}"
            )
        for name in ("item_column", "category_column", "value_column"):
            _require_nonempty_str(name, getattr(self, name))
        for name in ("image_column", "image_template", "image_separator", "value_separator"):
            value = getattr(self, name)
            if value is not None:
                _require_nonempty_str(name, value)
        if self.image_column is None and self.image_template is None:
            raise ConfigError(
                "catalogue: no image source; set catalogue.image_column (a manifest column of "
                "image paths) or catalogue.image_template (e.g. 'images/{id}.jpg')"
            )
        if self.image_template is not None:
            _template_fields(self.image_template)  # validates the template's syntax
        # Lists from YAML become tuples so options stay hashable and immutable.
        if self.tag_columns is not None:
            object.__setattr__(self, "tag_columns", _str_tuple("tag_columns", self.tag_columns))
            if self.format == "long":
                raise ConfigError(
                    "catalogue.tag_columns applies to the wide format only; in the long format "
                    "categories come from catalogue.category_column"
                )
        object.__setattr__(
            self, "exclude_categories", _str_tuple("exclude_categories", self.exclude_categories)
        )

    @classmethod
    def from_config(cls, catalogue: Mapping[str, Any] | None) -> IngestOptions:
        """Options from the config's ``catalogue:`` mapping (keys = attribute names).

        The key ``manifest`` (the file's location) is ignored; any other unknown key raises
        ConfigError listing the valid ones.
        """
        catalogue = dict(catalogue or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in catalogue if k not in valid and k not in cls.NON_OPTION_KEYS)
        if unknown:
            raise ConfigError(
                f"catalogue: unknown option(s) {unknown}; valid options are {valid} "
                f"(plus {sorted(cls.NON_OPTION_KEYS)})"
            )
        return cls(**{k: v for k, v in catalogue.items() if k in valid})


def _require_nonempty_str(name: str, value: Any) -> None:
    if not isinstance(value, str) or value == "":
        raise ConfigError(f"catalogue.{name} must be a non-empty string, got {value!r}")


def _str_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"catalogue.{name} must be a list of strings, got {value!r}")
    items = tuple(value)
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(f"catalogue.{name} must be a list of strings, got {value!r}")
    return items


def _template_fields(template: str) -> list[str]:
    """Column names used by an image template; ConfigError for malformed templates."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"catalogue.image_template {template!r} is malformed: {exc}") from exc
    fields = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit() or any(c in name for c in ".[]"):
            raise ConfigError(
                f"catalogue.image_template {template!r}: placeholder {{{name}}} must be a "
                "manifest column name, e.g. 'images/{id}.jpg'"
            )
        fields.append(name)
    return fields


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestReport:
    """What ingest read and wrote.

    Attributes:
        manifest: the manifest path.
        n_manifest_rows: data rows in the manifest.
        n_items: items kept (>= 1 readable image).
        n_images: readable images written to images.parquet.
        n_rejected: rows written to rejects.csv (unreadable images + dropped items).
        n_rejected_images: unreadable (item, image) pairs.
        n_dropped_items: items dropped for lack of a readable image.
        n_tag_rows: rows written to tags.parquet.
        categories: tag categories of the kept items, in output order.
        values_per_category: number of distinct values of each category (kept items).
        items_per_category: number of kept items having each category.
        unknown_excluded_categories: excluded categories that the manifest does not have (typos?).
        reject_reasons: count of rejects by reason kind (text before the first ':').
    """

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
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the report."""
        d = dataclasses.asdict(self)
        d["categories"] = list(self.categories)
        d["unknown_excluded_categories"] = list(self.unknown_excluded_categories)
        return d


# --------------------------------------------------------------------------------------------
# Reading the manifest
# --------------------------------------------------------------------------------------------


def read_table_as_strings(path: str | os.PathLike, what: str = "manifest") -> pl.DataFrame:
    """Read a CSV or Parquet table with every column as a string (nulls for empty cells).

    Raises ManifestError for an unsupported suffix, a missing file or an unreadable table.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_MANIFEST_SUFFIXES:
        raise ManifestError(
            f"{what} {path}: unsupported file type {path.suffix!r}; supported formats are CSV "
            "(.csv) and Parquet (.parquet)"
        )
    if not path.is_file():
        raise ManifestError(f"{what} {path} does not exist (or is not a file)")
    try:
        if suffix == ".csv":
            table = pl.read_csv(path, infer_schema=False)
        else:
            table = pl.read_parquet(path)
            table = table.with_columns(pl.all().cast(pl.String))
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise ManifestError(f"cannot read {what} {path} as {kind}: {exc}") from exc
    return table


def _require_columns(table: pl.DataFrame, columns: Sequence[str], path: Path, why: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {missing} ({why}); columns found: {table.columns}. "
            "Rename the columns or set the catalogue options (item_column, image_column, ...)."
        )


def _clean(cell: str | None) -> str | None:
    """A value with surrounding whitespace removed; None when nothing is left."""
    if cell is None:
        return None
    cell = cell.strip()
    return cell or None


def _split(cell: str | None, separator: str | None) -> list[str]:
    """Distinct non-empty stripped parts of a cell, in order."""
    if cell is None:
        return []
    parts = cell.split(separator) if separator is not None else [cell]
    return list(dict.fromkeys(p for p in (_clean(p) for p in parts) if p is not None))


@dataclass
class _ItemEntry:
    """What the manifest says about one item (manifest order preserved everywhere)."""

    rows: list[int] = field(default_factory=list)  # 1-based data rows
    images: dict[str, None] = field(default_factory=dict)  # ordered set of resolved paths
    image_problems: list[str] = field(default_factory=list)  # why listed images are missing
    tags: dict[str, dict[str, None]] = field(default_factory=dict)  # category -> ordered values


def _resolve(path_text: str, base: Path) -> str:
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = base / path
    return os.path.abspath(path)


class _ImageSource:
    """Turns a manifest row into the image paths it lists."""

    def __init__(self, table: pl.DataFrame, options: IngestOptions, manifest: Path):
        self.options = options
        self.base = manifest.parent.absolute()
        if options.image_template is not None:
            self.template = options.image_template
            self.fields = _template_fields(options.image_template)
            _require_columns(
                table, self.fields, manifest, f"placeholders of image_template {self.template!r}"
            )
        else:
            self.template = None
            _require_columns(table, [options.image_column], manifest, "the image column")

    def paths(self, row: Mapping[str, str | None], row_number: int) -> tuple[list[str], str | None]:
        """(resolved paths, problem) for one row; problem explains an empty result."""
        if self.template is not None:
            empty = [f for f in self.fields if _clean(row[f]) is None]
            if empty:
                return [], (
                    f"image_template {self.template!r} needs column(s) {empty}, empty on row "
                    f"{row_number}"
                )
            text = self.template.format_map({f: row[f] for f in self.fields})
            parts = _split(text, self.options.image_separator)
        else:
            parts = _split(row[self.options.image_column], self.options.image_separator)
            if not parts:
                return [], f"column {self.options.image_column!r} empty on row {row_number}"
        return [_resolve(p, self.base) for p in parts], None


def _parse_wide(
    table: pl.DataFrame, options: IngestOptions, manifest: Path
) -> tuple[dict[str, _ItemEntry], list[str], tuple[str, ...]]:
    _require_columns(table, [options.item_column], manifest, "the item id column")
    images = _ImageSource(table, options, manifest)
    not_tags = {options.item_column}
    if options.image_column is not None:
        not_tags.add(options.image_column)
    if options.tag_columns is not None:
        _require_columns(table, options.tag_columns, manifest, "catalogue.tag_columns")
        candidates = list(dict.fromkeys(options.tag_columns))
    else:
        candidates = [c for c in table.columns if c not in not_tags]
    excluded = set(options.exclude_categories)
    categories = [c for c in candidates if c not in excluded]
    unknown_excluded = tuple(c for c in options.exclude_categories if c not in table.columns)

    items: dict[str, _ItemEntry] = {}
    for index, row in enumerate(table.iter_rows(named=True)):
        row_number = index + 1
        item_id = _item_id(row, options.item_column, manifest, row_number)
        tags = {}
        for category in categories:
            values = _split(row[category], options.value_separator)
            if values:
                tags[category] = dict.fromkeys(values)
        entry = items.get(item_id)
        if entry is None:
            entry = items[item_id] = _ItemEntry(tags=tags)
        elif _as_sets(entry.tags) != _as_sets(tags):
            raise ManifestError(
                f"{manifest}: item {item_id!r} is listed on rows {entry.rows[0]} and {row_number} "
                f"(data rows, header excluded) with different tags: "
                f"{_describe(entry.tags)} vs {_describe(tags)}. Rows of one item (one per "
                "image) must carry identical tags."
            )
        entry.rows.append(row_number)
        _add_images(entry, *images.paths(row, row_number))
    return items, categories, unknown_excluded


def _parse_long(
    table: pl.DataFrame, options: IngestOptions, manifest: Path
) -> tuple[dict[str, _ItemEntry], list[str], tuple[str, ...]]:
    _require_columns(
        table,
        [options.item_column, options.category_column, options.value_column],
        manifest,
        "long format: item, category and value columns",
    )
    images = _ImageSource(table, options, manifest)
    excluded = set(options.exclude_categories)
    seen_categories: dict[str, None] = {}
    items: dict[str, _ItemEntry] = {}
    for index, row in enumerate(table.iter_rows(named=True)):
        row_number = index + 1
        item_id = _item_id(row, options.item_column, manifest, row_number)
        entry = items.setdefault(item_id, _ItemEntry())
        entry.rows.append(row_number)
        _add_images(entry, *images.paths(row, row_number))
        category = row[options.category_column]
        value = _clean(row[options.value_column])
        if category is None or category.strip() == "":
            if value is not None:
                raise ManifestError(
                    f"{manifest}: row {row_number} (item {item_id!r}) has value {value!r} but an "
                    f"empty {options.category_column!r} column"
                )
            continue
        seen_categories.setdefault(category)
        if category in excluded or value is None:
            continue
        entry.tags.setdefault(category, {})[value] = None
    unknown_excluded = tuple(c for c in options.exclude_categories if c not in seen_categories)
    categories = [c for c in seen_categories if c not in excluded]
    return items, categories, unknown_excluded


def _item_id(row: Mapping[str, str | None], column: str, manifest: Path, row_number: int) -> str:
    item_id = row[column]
    if item_id is None or item_id.strip() == "":
        raise ManifestError(
            f"{manifest}: row {row_number} (data rows, header excluded) has an empty item id in "
            f"column {column!r}; every row needs one"
        )
    return item_id


def _add_images(entry: _ItemEntry, paths: list[str], problem: str | None) -> None:
    for p in paths:
        entry.images.setdefault(p)
    if problem is not None:
        entry.image_problems.append(problem)


def _as_sets(tags: Mapping[str, Mapping[str, None]]) -> dict[str, frozenset[str]]:
    return {c: frozenset(v) for c, v in tags.items()}


def _describe(tags: Mapping[str, Mapping[str, None]]) -> dict[str, list[str]]:
    return {c: list(v) for c, v in tags.items()}


# --------------------------------------------------------------------------------------------
# Checking images
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageCheck:
    """Outcome of reading and decoding one image file.

    ``reason`` is None for a readable image (then width, height, sha256 are set).
    """

    path: str
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    reason: str | None = None


def check_image(path: str | os.PathLike) -> ImageCheck:
    """Read ``path``, hash its bytes and fully decode it with Pillow.

    Never raises for a bad file: the failure becomes ``reason`` ("file not found: ...",
    "empty file (0 bytes)", "not a recognised image format", "truncated or corrupt image: ...").
    """
    path = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return ImageCheck(path, reason="file not found")
    except IsADirectoryError:
        return ImageCheck(path, reason="not a file (a directory)")
    except OSError as exc:
        return ImageCheck(path, reason=f"cannot read file: {exc.strerror or exc}")
    if not data:
        return ImageCheck(path, reason="empty file (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # full decode: truncated data fails here, not at open()
            width, height = image.size
    except Image.UnidentifiedImageError:
        return ImageCheck(path, reason="not a recognised image format")
    except Image.DecompressionBombError as exc:
        return ImageCheck(path, reason=f"image too large to decode safely: {exc}")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return ImageCheck(path, reason=f"truncated or corrupt image: {exc}")
    return ImageCheck(path, width=width, height=height, sha256=digest)


def check_images(paths: Sequence[str], threads: int = 4) -> dict[str, ImageCheck]:
    """:func:`check_image` for each distinct path, ``threads`` at a time; path -> check."""
    distinct = list(dict.fromkeys(paths))
    if threads <= 1 or len(distinct) <= 1:
        return {p: check_image(p) for p in distinct}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(distinct, pool.map(check_image, distinct)))


# --------------------------------------------------------------------------------------------
# Ingest
# --------------------------------------------------------------------------------------------


def ingest_catalogue(
    manifest: str | os.PathLike,
    *,
    images_out: str | os.PathLike,
    tags_out: str | os.PathLike,
    rejects_out: str | os.PathLike,
    options: IngestOptions | None = None,
    threads: int = 4,
    **option_overrides: Any,
) -> IngestReport:
    """Read ``manifest``, check every image, write the normalized catalogue atomically.

    Args:
        manifest: CSV or Parquet manifest (see module docstring for the layouts).
        images_out, tags_out, rejects_out: output paths (images.parquet, tags.parquet,
            rejects.csv).
        options: reading options (default ``IngestOptions()``).
        threads: image decoding threads.
        **option_overrides: IngestOptions fields replacing those of ``options``.

    Returns:
        IngestReport. Raises ManifestError for an unreadable or inconsistent manifest, and, with
        ``on_unreadable="fail"``, when any image is unreadable (nothing is written then).
    """
    manifest = Path(manifest)
    options = options or IngestOptions()
    if option_overrides:
        options = dataclasses.replace(options, **option_overrides)

    table = read_table_as_strings(manifest)
    parse = _parse_wide if options.format == "wide" else _parse_long
    items, categories, unknown_excluded = parse(table, options, manifest)

    checks = check_images([p for e in items.values() for p in e.images], threads=threads)

    image_rows: dict[str, list] = {k: [] for k in IMAGES_SCHEMA}
    reject_rows: dict[str, list] = {k: [] for k in REJECTS_SCHEMA}
    kept: list[str] = []
    n_rejected_images = 0
    for item_id, entry in items.items():
        rank = 0
        for path in entry.images:
            check = checks[path]
            if check.reason is not None:
                _append(reject_rows, item_id=item_id, image=path, reason=check.reason)
                n_rejected_images += 1
                continue
            _append(
                image_rows,
                item_id=item_id,
                image=path,
                image_rank=rank,
                width=check.width,
                height=check.height,
                sha256=check.sha256,
            )
            rank += 1
        if rank > 0:
            kept.append(item_id)
            continue
        if entry.images:
            reason = f"item dropped: none of its {len(entry.images)} image(s) could be read"
        else:
            reason = "item dropped: no image listed (" + "; ".join(entry.image_problems) + ")"
        _append(reject_rows, item_id=item_id, image="", reason=reason)

    rejects = pl.DataFrame(reject_rows, schema=REJECTS_SCHEMA)
    if options.on_unreadable == "fail" and rejects.height:
        quoted = "\n".join(
            f"  item {r['item_id']!r} {r['image'] or '(no image)'}: {r['reason']}"
            for r in rejects.head(_FAIL_MESSAGE_REJECTS).iter_rows(named=True)
        )
        raise ManifestError(
            f"{manifest}: {rejects.height} unreadable image(s) or image-less item(s) "
            f"(on_unreadable='fail'); first ones:\n{quoted}\nFix or remove them, or set "
            "catalogue.on_unreadable: reject to skip them."
        )

    category_order = {c: i for i, c in enumerate(categories)}
    tag_rows: dict[str, list] = {k: [] for k in TAGS_SCHEMA}
    for item_id in kept:
        tags = items[item_id].tags
        for category in sorted(tags, key=category_order.__getitem__):
            for value in tags[category]:
                _append(tag_rows, item_id=item_id, category=category, value=value)
    images = pl.DataFrame(image_rows, schema=IMAGES_SCHEMA)
    tags_table = pl.DataFrame(tag_rows, schema=TAGS_SCHEMA)

    write_table(images_out, images)
    write_table(tags_out, tags_table)
    write_table(rejects_out, rejects)

    per_category = tags_table.group_by("category").agg(
        pl.col("value").n_unique().alias("n_values"), pl.col("item_id").n_unique().alias("n_items")
    )
    n_values = dict(zip(per_category["category"], per_category["n_values"]))
    n_items = dict(zip(per_category["category"], per_category["n_items"]))
    output_categories = tuple(c for c in categories if c in n_values)
    reason_kinds: dict[str, int] = {}
    for reason in rejects["reason"]:
        kind = reason.split(":", 1)[0]
        reason_kinds[kind] = reason_kinds.get(kind, 0) + 1
    return IngestReport(
        manifest=str(manifest),
        n_manifest_rows=table.height,
        n_items=len(kept),
        n_images=images.height,
        n_rejected=rejects.height,
        n_rejected_images=n_rejected_images,
        n_dropped_items=len(items) - len(kept),
        n_tag_rows=tags_table.height,
        categories=output_categories,
        values_per_category={c: int(n_values[c]) for c in output_categories},
        items_per_category={c: int(n_items[c]) for c in output_categories},
        unknown_excluded_categories=unknown_excluded,
        reject_reasons=reason_kinds,
    )


def _append(columns: dict[str, list], **values: Any) -> None:
    for key, value in values.items():
        columns[key].append(value)


# --------------------------------------------------------------------------------------------
# Readers for later stages
# --------------------------------------------------------------------------------------------


def read_catalogue(
    images_path: str | os.PathLike, tags_path: str | os.PathLike
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read an ingested catalogue: (images table, tags table) with the documented schemas.

    Raises ManifestError when a file is missing or lacks the catalogue columns.
    """
    tables = []
    for path, schema in ((images_path, IMAGES_SCHEMA), (tags_path, TAGS_SCHEMA)):
        path = Path(path)
        if not path.is_file():
            raise ManifestError(f"catalogue file {path} does not exist; run the ingest stage")
        try:
            table = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise ManifestError(f"cannot read catalogue file {path}: {exc}") from exc
        _require_columns(table, list(schema), path, "catalogue format; re-run the ingest stage")
        tables.append(table.select([pl.col(c).cast(t) for c, t in schema.items()]))
    return tables[0], tables[1]


class Interactions(NamedTuple):
    """An interactions log restricted to catalogue items; unpacks as ``(table, n_unknown_items)``.

    Attributes:
        table: polars DataFrame with string columns user_id, item_id, in file order; repeated
            (user, item) rows are kept (a user may order an item twice).
        n_unknown_items: rows dropped because their item id is empty or not in the catalogue.
    """

    table: pl.DataFrame
    n_unknown_items: int


def read_interactions(
    path: str | os.PathLike,
    item_ids: Iterable[str],
    *,
    user_column: str = "user_id",
    item_column: str = "item_id",
) -> Interactions:
    """Read a (user, item) interactions log (CSV or Parquet), ids as strings.

    Rows whose item is empty or not in ``item_ids`` (the catalogue's kept items) are dropped and
    counted. Raises ManifestError for a missing file, an unsupported suffix, missing columns or
    rows without a user id (per-user statistics cannot place them).
    """
    path = Path(path)
    table = read_table_as_strings(path, what="interactions log")
    _require_columns(table, [user_column, item_column], path, "interactions log: user and item")
    table = table.select(
        pl.col(user_column).alias("user_id"), pl.col(item_column).alias("item_id")
    )
    no_user = table.with_row_index("row", offset=1).filter(
        pl.col("user_id").is_null() | (pl.col("user_id").str.strip_chars() == "")
    )
    if no_user.height:
        raise ManifestError(
            f"interactions log {path}: {no_user.height} row(s) have an empty {user_column!r} "
            f"(first: data row {no_user['row'][0]}); remove them or give them a user id"
        )
    known = pl.Series("item_id", list(dict.fromkeys(item_ids)), dtype=pl.String)
    kept = table.filter(pl.col("item_id").is_in(known.implode()))
    return Interactions(table=kept, n_unknown_items=table.height - kept.height)

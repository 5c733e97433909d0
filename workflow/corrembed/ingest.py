"""Catalogue manifest -> normalized catalogue (images, tags, rejects).

The manifest is a CSV or Parquet table (format chosen by the file suffix) in one of two layouts:

- **wide**: one row per item (or several rows per item, one per image, with identical tags), one
  column per tag category. A cell may hold several values of one category separated by
  ``value_separator`` (default ``"|"``).
- **long**: one row per (item, category, value); several values of a category are several rows.

Image paths come from an image column (several images in one cell split on ``image_separator``)
or from a template such as ``"images/{id}.jpg"`` whose placeholders name manifest columns.
Relative paths are resolved against the manifest's folder; absolute paths are kept.

Every listed image is read and fully decoded once, with :func:`corrembed.images.read_image`
(the decoder the embed stage uses too; a thread pool: Pillow releases the GIL while decoding).
Unusable images (missing, empty, truncated, not an image, over ``max_image_pixels``, shorter side
under ``min_image_side``) are set aside in ``rejects.csv`` and the run goes on
(``on_unreadable="reject"``) or the run stops with a :class:`~corrembed.errors.ManifestError`
(``"fail"``). Items left without a usable image are set aside too. Images are resolved to their
real path (symlinks followed; paths outside the manifest's folder are allowed) and the path as
listed is recorded. Byte-identical images of different items are reported as duplicates and
kept or set aside (``duplicate_images``). Fewer than 3 usable items stop the run (a correlation
of similarities needs at least 3 items).

Value normalization (the only changes made to what the manifest says):

- all cells are read as strings, so item ids such as ``"007"`` stay ``"007"``; a CSV is decoded
  with ``encoding`` (default UTF-8, a byte-order mark is ignored; undecodable bytes stop the run
  naming the line);
- a tag cell is split on ``value_separator`` (wide format only; long format takes one value per
  row); empty cells, empty values and whitespace-only values are missing values and give no tag
  row (an empty string and a missing value mean the same);
- values are otherwise taken verbatim unless ``normalize_values`` says otherwise: ``strip``
  removes surrounding whitespace, ``casefold`` merges values of a category that differ only in
  case or surrounding whitespace (each group is written as its most frequent spelling, ties:
  first seen). Values that
  differ only in case or surrounding whitespace are always reported (``value_variants`` in the
  report) whether or not they are merged;
- repeated values of one (item, category) are kept once, in order of first appearance;
- image cells are split on ``image_separator`` and each path stripped of surrounding whitespace;
- item ids and category names are taken verbatim (an empty item id is an error).

Outputs (the catalogue format shared by all later stages):

- ``images.parquet``: item_id (str), image (str, absolute real path: symlinks resolved),
  image_rank (int32, 0-based position among the item's *usable* images in manifest order, so
  rank 0 exists for every kept item), width (int32), height (int32), sha256 (str, hex digest of
  the file bytes), listed_as (str, the path as written in the manifest), outside_manifest_folder
  (bool); rows ordered by item first appearance, then image_rank.
- ``tags.parquet``: item_id, category, value (all str), one row per distinct (item, category,
  value), only for kept items; ordered by item, then category (column order in wide format, first
  appearance in long format), then value first appearance.
- ``rejects.csv``: item_id, image, reason, kind, action. ``action`` is ``set_aside`` for what
  the catalogue does not use (one row per unusable image or repeated listing, one row with an
  empty image for every dropped item) and ``kept`` for what is reported but used (duplicate
  images under ``duplicate_images: keep``, items without any tag). ``kind`` is a stable keyword:
  missing, not_a_file, unreadable_file, empty_file, not_an_image, corrupt_image, too_large,
  too_small, duplicate_image, repeated_listing, no_usable_image, no_image_listed, no_tags.

:class:`IngestReport` (``report.json`` in the workflow) counts all of it and lists the value-level
findings: case/whitespace variants, multi-valued cells per category, single-value and
one-value-per-item categories.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import io
import os
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from .errors import ConfigError, ManifestError
from .images import DEFAULT_MAX_PIXELS, ImageReadError, read_image
from .storage import write_table

SUPPORTED_MANIFEST_SUFFIXES = (".csv", ".parquet")
FORMATS = ("wide", "long")
ON_UNREADABLE = ("reject", "fail")
DUPLICATE_IMAGES = ("keep", "drop")
VALUE_NORMALIZATIONS = ("strip", "casefold")
#: A correlation of similarities needs at least 3 items (2 compared items per anchor).
MIN_ITEMS = 3

# rejects.csv actions
SET_ASIDE = "set_aside"
KEPT = "kept"

IMAGES_SCHEMA = {
    "item_id": pl.String,
    "image": pl.String,
    "image_rank": pl.Int32,
    "width": pl.Int32,
    "height": pl.Int32,
    "sha256": pl.String,
    "listed_as": pl.String,
    "outside_manifest_folder": pl.Boolean,
}
TAGS_SCHEMA = {"item_id": pl.String, "category": pl.String, "value": pl.String}
REJECTS_SCHEMA = {
    "item_id": pl.String,
    "image": pl.String,
    "reason": pl.String,
    "kind": pl.String,
    "action": pl.String,
}
# Columns every later stage relies on (read_catalogue checks these).
CATALOGUE_IMAGE_COLUMNS = ("item_id", "image", "image_rank", "width", "height", "sha256")

# How many examples a report list keeps (value variants, ...).
_REPORT_EXAMPLES = 20

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
        normalize_values: any of ``"strip"`` (remove surrounding whitespace of tag values) and
            ``"casefold"`` (merge values of a category equal up to case and surrounding
            whitespace). Default: none (values verbatim; variants are reported).
        duplicate_images: byte-identical images of different items: ``"keep"`` (report them)
            or ``"drop"`` (set aside every copy after the first item's).
        max_image_pixels: images with more pixels are set aside without being decoded (a
            decompression-bomb guard); ``None``: no limit.
        min_image_side: images whose shorter side is below this many pixels are set aside.
        encoding: text encoding of a CSV manifest (Python codec name).
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
    normalize_values: tuple[str, ...] = ()
    duplicate_images: str = "keep"
    max_image_pixels: int | None = DEFAULT_MAX_PIXELS
    min_image_side: int = 1
    encoding: str = "utf-8"

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
        normalize = _str_tuple("normalize_values", self.normalize_values)
        bad = [n for n in normalize if n not in VALUE_NORMALIZATIONS]
        if bad:
            raise ConfigError(
                f"catalogue.normalize_values: unknown normalization(s) {bad}; valid ones are "
                f"{list(VALUE_NORMALIZATIONS)}"
            )
        object.__setattr__(self, "normalize_values", tuple(dict.fromkeys(normalize)))
        if self.duplicate_images not in DUPLICATE_IMAGES:
            raise ConfigError(
                f"catalogue.duplicate_images must be one of {DUPLICATE_IMAGES}, got "
                f"{self.duplicate_images!r}"
            )
        if self.max_image_pixels is not None and (
            isinstance(self.max_image_pixels, bool)
            or not isinstance(self.max_image_pixels, int)
            or self.max_image_pixels < 1
        ):
            raise ConfigError(
                "catalogue.max_image_pixels must be a positive integer (pixels) or null, got "
                f"{self.max_image_pixels!r}"
            )
        if isinstance(self.min_image_side, bool) or not isinstance(self.min_image_side, int) or (
            self.min_image_side < 1
        ):
            raise ConfigError(
                f"catalogue.min_image_side must be an integer >= 1, got {self.min_image_side!r}"
            )
        _require_nonempty_str("encoding", self.encoding)
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(
                f"catalogue.encoding {self.encoding!r} is not a known text encoding; use e.g. "
                "utf-8, cp1252 or latin-1"
            ) from None

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
    """What ingest read, wrote, set aside and noticed (``report.json`` in the workflow).

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
        reject_reasons: count of set-aside rows by reason kind (text before the first ':').
        set_aside_by_kind: count of set-aside rows by ``kind`` keyword.
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the report."""
        d = dataclasses.asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d

    def warnings(self) -> list[str]:
        """One line per finding a user should look at (for the job log)."""
        lines = []
        if self.n_rejected:
            kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.set_aside_by_kind.items()))
            lines.append(f"{self.n_rejected} row(s) set aside ({kinds}); see rejects.csv")
        if self.n_duplicate_images:
            lines.append(f"{self.n_duplicate_images} image(s) are byte-identical to an image of "
                         "another item (kind duplicate_image in rejects.csv)")
        if self.n_items_without_tags:
            lines.append(f"{self.n_items_without_tags} item(s) have no tag at all: their tag vector "
                         "is zero, they are never anchors (kind no_tags in rejects.csv)")
        if self.n_value_variant_groups:
            merged = "merged" if "casefold" in self.normalize_values else "NOT merged"
            examples = "; ".join(
                f"{g['category']}: {list(g['values'])}" for g in self.value_variants[:3]
            )
            lines.append(
                f"{self.n_value_variant_groups} group(s) of tag values differ only in case or "
                f"surrounding whitespace ({merged}), e.g. {examples}. "
                "catalogue.normalize_values: [strip, casefold] merges them"
            )
        if self.n_values_with_whitespace and "strip" not in self.normalize_values:
            lines.append(f"{self.n_values_with_whitespace} tag value(s) have surrounding whitespace "
                         "(kept verbatim; catalogue.normalize_values: [strip] removes it)")
        for category, cells in self.multi_valued_cells.items():
            lines.append(f"category {category!r}: {cells['n_cells']} cell(s) were split into several "
                         f"values, e.g. {cells['example']!r}; if the separator is part of the "
                         "values, change catalogue.value_separator (null: no splitting)")
        if self.one_value_per_item_categories:
            lines.append(f"categories {list(self.one_value_per_item_categories)} have a different "
                         "value for every item (maximum entropy): identifiers rather than tags? "
                         "Exclude them with catalogue.exclude_categories")
        if self.single_value_categories:
            lines.append(f"categories {list(self.single_value_categories)} have a single value "
                         "(zero entropy)")
        if self.unknown_excluded_categories:
            lines.append(f"excluded categories not in the manifest: "
                         f"{list(self.unknown_excluded_categories)} (typos?)")
        return lines


# --------------------------------------------------------------------------------------------
# Reading the manifest
# --------------------------------------------------------------------------------------------


def read_table_as_strings(
    path: str | os.PathLike, what: str = "manifest", *, encoding: str = "utf-8"
) -> pl.DataFrame:
    """Read a CSV or Parquet table with every column as a string (nulls for empty cells).

    A CSV is decoded with ``encoding`` (a UTF-8 byte-order mark is ignored). Raises
    ManifestError for an unsupported suffix, a missing or empty file (0 bytes, or no header),
    bytes that are not valid in ``encoding`` (naming the line), or an unreadable table (rows
    with more fields than the header, ...). A header without data rows gives an empty table.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_MANIFEST_SUFFIXES:
        raise ManifestError(
            f"{what} {path}: unsupported file type {path.suffix!r}; supported formats are CSV "
            "(.csv) and Parquet (.parquet). Export the table as one of them."
        )
    if not path.is_file():
        raise ManifestError(f"{what} {path} does not exist (or is not a file)")
    if path.stat().st_size == 0:
        raise ManifestError(f"{what} {path} is empty (0 bytes); it needs a header row and data rows")
    try:
        if suffix == ".csv":
            text = _decode_csv(path, what, encoding)
            if not text.strip():
                raise ManifestError(f"{what} {path} holds only whitespace; it needs a header row")
            table = pl.read_csv(io.BytesIO(text.encode("utf-8")), infer_schema=False)
        else:
            table = pl.read_parquet(path)
            table = table.with_columns(pl.all().cast(pl.String))
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        hint = ""
        if suffix == ".csv" and "field" in str(exc).lower():
            hint = (" A row has more fields than the header: quote values that contain the "
                    "delimiter ',' (\"Red, Blue\") or use another value_separator.")
        # Polars' own hints name its API (truncate_ragged_lines=...), not our config: drop them.
        detail = str(exc).split("\n\nConsider")[0].rstrip(".")
        raise ManifestError(f"cannot read {what} {path} as {kind}: {detail}.{hint}") from exc
    return table


def _decode_csv(path: Path, what: str, encoding: str) -> str:
    data = path.read_bytes()
    codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start : exc.end]
        raise ManifestError(
            f"{what} {path}: line {line}, byte {column} ({bad!r}) is not valid {encoding}. "
            "Save the file as UTF-8, or set catalogue.encoding to the file's encoding (e.g. "
            "cp1252 for Excel exports on Windows, latin-1)."
        ) from None


def _require_columns(table: pl.DataFrame, columns: Sequence[str], path: Path, why: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {missing} ({why}); columns found: {table.columns}. "
            "Rename the columns or set the catalogue options (item_column, image_column, ...)."
        )


def _clean(cell: str | None) -> str | None:
    """A path or id part with surrounding whitespace removed; None when nothing is left."""
    if cell is None:
        return None
    cell = cell.strip()
    return cell or None


class _ValueReader:
    """Turns tag cells into values: splitting, missing values, whitespace; records findings."""

    def __init__(self, separator: str | None, strip: bool):
        self.separator = separator
        self.strip = strip
        self.multi_valued: dict[str, list] = {}  # category -> [n_cells, example]

    def values(self, cell: str | None, category: str, split: bool = True) -> list[str]:
        """Distinct non-missing values of a cell, in order."""
        if cell is None:
            return []
        parts = cell.split(self.separator) if split and self.separator is not None else [cell]
        # Empty and whitespace-only values are missing values, whatever the normalization.
        kept = [p.strip() if self.strip else p for p in parts if p.strip()]
        values = list(dict.fromkeys(kept))
        if len(values) > 1:
            record = self.multi_valued.setdefault(category, [0, cell])
            record[0] += 1
        return values


@dataclass
class _ImageListing:
    """One image of an item as listed: the text in the manifest and the file's real path."""

    listed_as: str
    path: str  # realpath
    symlinked: bool
    outside: bool


@dataclass
class _ItemEntry:
    """What the manifest says about one item (manifest order preserved everywhere)."""

    rows: list[int] = field(default_factory=list)  # 1-based data rows
    images: dict[str, _ImageListing] = field(default_factory=dict)  # real path -> listing
    repeated: list[_ImageListing] = field(default_factory=list)  # listings of an image again
    image_problems: list[str] = field(default_factory=list)  # why listed images are missing
    tags: dict[str, dict[str, None]] = field(default_factory=dict)  # category -> ordered values


def _listing(path_text: str, base: Path) -> _ImageListing:
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = base / path
    absolute = os.path.abspath(path)
    real = os.path.realpath(absolute)
    base_real = os.path.realpath(base)
    outside = os.path.commonpath([real, base_real]) != base_real
    return _ImageListing(listed_as=path_text, path=real, symlinked=real != absolute, outside=outside)


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

    def listings(
        self, row: Mapping[str, str | None], row_number: int
    ) -> tuple[list[_ImageListing], str | None]:
        """(listed images, problem) for one row; problem explains an empty result."""
        if self.template is not None:
            empty = [f for f in self.fields if _clean(row[f]) is None]
            if empty:
                return [], (
                    f"image_template {self.template!r} needs column(s) {empty}, empty on row "
                    f"{row_number}"
                )
            text = self.template.format_map({f: row[f] for f in self.fields})
            parts = _split_paths(text, self.options.image_separator)
        else:
            parts = _split_paths(row[self.options.image_column], self.options.image_separator)
            if not parts:
                return [], f"column {self.options.image_column!r} empty on row {row_number}"
        return [_listing(p, self.base) for p in parts], None


def _split_paths(cell: str | None, separator: str | None) -> list[str]:
    if cell is None:
        return []
    parts = cell.split(separator) if separator is not None else [cell]
    return [p for p in (_clean(p) for p in parts) if p is not None]


def _parse_wide(
    table: pl.DataFrame, options: IngestOptions, manifest: Path, reader: _ValueReader
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
            values = reader.values(row[category], category)
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
                "image) must carry identical tags: fix one of the rows, or give the items "
                "different ids."
            )
        entry.rows.append(row_number)
        _add_images(entry, *images.listings(row, row_number))
    return items, categories, unknown_excluded


def _parse_long(
    table: pl.DataFrame, options: IngestOptions, manifest: Path, reader: _ValueReader
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
        # Long rows of one item normally repeat its image(s): only repeats within a row count.
        _add_images(entry, *images.listings(row, row_number), across_rows=False)
        category = row[options.category_column]
        values = reader.values(row[options.value_column], category or "", split=False)
        if category is None or category.strip() == "":
            if values:
                raise ManifestError(
                    f"{manifest}: row {row_number} (item {item_id!r}) has value {values[0]!r} but an "
                    f"empty {options.category_column!r} column; give the row a category or "
                    "remove it"
                )
            continue
        seen_categories.setdefault(category)
        if category in excluded or not values:
            continue
        entry.tags.setdefault(category, {})[values[0]] = None
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


def _add_images(
    entry: _ItemEntry, listings: list[_ImageListing], problem: str | None, across_rows: bool = True
) -> None:
    """Add a row's listed images; a listing of an image the item already has is recorded as
    repeated (``across_rows=False``: only when repeated within this row)."""
    in_row: set[str] = set()
    for listing in listings:
        if listing.path in in_row or (across_rows and listing.path in entry.images):
            entry.repeated.append(listing)
        entry.images.setdefault(listing.path, listing)
        in_row.add(listing.path)
    if problem is not None:
        entry.image_problems.append(problem)


def _as_sets(tags: Mapping[str, Mapping[str, None]]) -> dict[str, frozenset[str]]:
    return {c: frozenset(v) for c, v in tags.items()}


def _describe(tags: Mapping[str, Mapping[str, None]]) -> dict[str, list[str]]:
    return {c: list(v) for c, v in tags.items()}


def _value_variants(
    items: Mapping[str, _ItemEntry], categories: Sequence[str], casefold: bool
) -> tuple[list[dict[str, Any]], int]:
    """Find (and with ``casefold`` merge, in place) values of a category that differ only in
    case or surrounding whitespace. Returns (groups, number of values with whitespace)."""
    counts: dict[str, Counter] = {c: Counter() for c in categories}
    for entry in items.values():
        for category, values in entry.tags.items():
            counts[category].update(list(values))
    groups: list[dict[str, Any]] = []
    n_whitespace = 0
    for category in categories:
        by_key: dict[str, list[str]] = {}
        for value in counts[category]:  # first-seen order
            by_key.setdefault(value.strip().casefold(), []).append(value)
            n_whitespace += value != value.strip()
        for members in by_key.values():
            if len(members) < 2:
                continue
            groups.append({"category": category,
                           "values": {m: counts[category][m] for m in members},
                           "merged": casefold})
            if casefold:
                # The most frequent spelling represents the group (ties: first seen).
                canonical = max(members, key=lambda m: (counts[category][m], -members.index(m)))
                for entry in items.values():
                    values = entry.tags.get(category)
                    if values and any(m in values for m in members):
                        entry.tags[category] = dict.fromkeys(
                            canonical if v in members else v for v in values
                        )
    return groups, n_whitespace


# --------------------------------------------------------------------------------------------
# Checking images
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageCheck:
    """Outcome of reading and decoding one image file.

    ``reason`` is None for a usable image (then width, height, sha256, mode are set; width and
    height are those of the upright image, EXIF orientation applied); ``kind`` is the reason's
    keyword (see :mod:`corrembed.images`).
    """

    path: str
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    reason: str | None = None
    kind: str | None = None
    mode: str | None = None
    n_frames: int = 1
    exif_transposed: bool = False


def check_image(
    path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, min_side: int = 1
) -> ImageCheck:
    """Read ``path``, hash its bytes and fully decode it to RGB with
    :func:`corrembed.images.read_image` (the embed stage's decoder).

    Never raises for a bad file: the failure becomes ``reason`` ("file not found",
    "empty file (0 bytes)", "not a recognised image format", "truncated or corrupt image: ...",
    "image too large: ...", "image too small: ...") and ``kind``.
    """
    path = str(path)
    try:
        decoded = read_image(path, max_pixels=max_pixels)
    except ImageReadError as error:
        return ImageCheck(path, reason=error.reason, kind=error.kind)
    width, height = decoded.rgb.size
    if min(width, height) < min_side:
        return ImageCheck(
            path,
            reason=f"image too small: {width} x {height} pixels, shorter side under "
            f"catalogue.min_image_side = {min_side}",
            kind="too_small",
        )
    return ImageCheck(
        path,
        width=width,
        height=height,
        sha256=hashlib.sha256(decoded.data).hexdigest(),
        mode=decoded.source_mode,
        n_frames=decoded.n_frames,
        exif_transposed=decoded.exif_transposed,
    )


def check_images(
    paths: Sequence[str],
    threads: int = 4,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_side: int = 1,
) -> dict[str, ImageCheck]:
    """:func:`check_image` for each distinct path, ``threads`` at a time; path -> check."""
    distinct = list(dict.fromkeys(paths))

    def check(path: str) -> ImageCheck:
        return check_image(path, max_pixels=max_pixels, min_side=min_side)

    if threads <= 1 or len(distinct) <= 1:
        return {p: check(p) for p in distinct}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(distinct, pool.map(check, distinct)))


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
    min_items: int = MIN_ITEMS,
    **option_overrides: Any,
) -> IngestReport:
    """Read ``manifest``, check every image, write the normalized catalogue atomically.

    Args:
        manifest: CSV or Parquet manifest (see module docstring for the layouts).
        images_out, tags_out, rejects_out: output paths (images.parquet, tags.parquet,
            rejects.csv).
        options: reading options (default ``IngestOptions()``).
        threads: image decoding threads.
        min_items: fewer usable items than this stop the run (default 3, the least a
            correlation of similarities needs).
        **option_overrides: IngestOptions fields replacing those of ``options``.

    Returns:
        IngestReport. Raises ManifestError (nothing is written then) for an unreadable,
        empty or inconsistent manifest, for fewer than ``min_items`` usable items, and, with
        ``on_unreadable="fail"``, when any image is unusable.
    """
    manifest = Path(manifest)
    options = options or IngestOptions()
    if option_overrides:
        options = dataclasses.replace(options, **option_overrides)

    table = read_table_as_strings(manifest, encoding=options.encoding)
    if table.height == 0:
        raise ManifestError(
            f"manifest {manifest} has a header ({table.columns}) but no data rows; add one row "
            "per item (wide format) or per item, category and value (long format)"
        )
    reader = _ValueReader(options.value_separator, strip="strip" in options.normalize_values)
    parse = _parse_wide if options.format == "wide" else _parse_long
    items, categories, unknown_excluded = parse(table, options, manifest, reader)
    variants, n_whitespace = _value_variants(
        items, categories, casefold="casefold" in options.normalize_values
    )

    checks = check_images(
        [p for e in items.values() for p in e.images],
        threads=threads,
        max_pixels=options.max_image_pixels,
        min_side=options.min_image_side,
    )

    image_rows: dict[str, list] = {k: [] for k in IMAGES_SCHEMA}
    reject_rows: dict[str, list] = {k: [] for k in REJECTS_SCHEMA}
    kept: list[str] = []
    first_owner: dict[str, tuple[str, str]] = {}  # sha256 -> (item, path) of its first use
    counts = Counter()
    modes = Counter()
    for item_id, entry in items.items():
        for listing in entry.repeated:
            _append(reject_rows, item_id=item_id, image=listing.path, kind="repeated_listing",
                    action=SET_ASIDE,
                    reason=f"repeated listing: {listing.listed_as!r} is an image this item "
                    "already lists (used once)")
        rank = 0
        for path, listing in entry.images.items():
            check = checks[path]
            if check.reason is not None:
                _append(reject_rows, item_id=item_id, image=path, reason=check.reason,
                        kind=check.kind, action=SET_ASIDE)
                counts["rejected_images"] += 1
                continue
            owner = first_owner.setdefault(check.sha256, (item_id, path))
            if owner[0] != item_id:
                counts["duplicates"] += 1
                drop = options.duplicate_images == "drop"
                _append(reject_rows, item_id=item_id, image=path, kind="duplicate_image",
                        action=SET_ASIDE if drop else KEPT,
                        reason=f"duplicate image: same bytes as {owner[1]} of item {owner[0]!r}"
                        + (" (set aside: duplicate_images=drop)" if drop else " (kept)"))
                if drop:
                    counts["rejected_images"] += 1
                    continue
            _append(
                image_rows,
                item_id=item_id,
                image=path,
                image_rank=rank,
                width=check.width,
                height=check.height,
                sha256=check.sha256,
                listed_as=listing.listed_as,
                outside_manifest_folder=listing.outside,
            )
            counts["symlinked"] += listing.symlinked
            counts["outside"] += listing.outside
            counts["animated"] += check.n_frames > 1
            counts["exif"] += check.exif_transposed
            modes[check.mode] += 1
            rank += 1
        if rank > 0:
            kept.append(item_id)
            if not entry.tags:
                counts["no_tags"] += 1
                _append(reject_rows, item_id=item_id, image="", kind="no_tags", action=KEPT,
                        reason="item has no tags: zero tag vector, never an anchor (kept as a "
                        "compared item)")
            continue
        if entry.images:
            reason = f"item dropped: none of its {len(entry.images)} image(s) could be used"
            kind = "no_usable_image"
        else:
            reason = "item dropped: no image listed (" + "; ".join(entry.image_problems) + ")"
            kind = "no_image_listed"
        _append(reject_rows, item_id=item_id, image="", reason=reason, kind=kind, action=SET_ASIDE)

    rejects = pl.DataFrame(reject_rows, schema=REJECTS_SCHEMA)
    set_aside = rejects.filter(pl.col("action") == SET_ASIDE)
    unusable = set_aside.filter(pl.col("kind") != "repeated_listing")
    if options.on_unreadable == "fail" and unusable.height:
        raise ManifestError(
            f"{manifest}: {unusable.height} unusable image(s) or image-less item(s) "
            f"(on_unreadable='fail'); first ones:\n{_quote(unusable)}\nFix or remove them, or set "
            "catalogue.on_unreadable: reject to skip them."
        )
    if len(kept) < min_items:
        detail = f" Set aside:\n{_quote(set_aside)}" if set_aside.height else ""
        raise ManifestError(
            f"{manifest}: only {len(kept)} usable item(s) of {len(items)}; CorrEmbed needs at "
            f"least {min_items} items with a readable image (similarities are correlated over the "
            f"other items).{detail}"
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
        pl.col("value").n_unique().alias("n_values"),
        pl.col("item_id").n_unique().alias("n_items"),
        pl.len().alias("n_rows"),
    )
    n_values = dict(zip(per_category["category"], per_category["n_values"]))
    n_items = dict(zip(per_category["category"], per_category["n_items"]))
    n_rows = dict(zip(per_category["category"], per_category["n_rows"]))
    output_categories = tuple(c for c in categories if c in n_values)
    reason_kinds: dict[str, int] = {}
    for reason in set_aside["reason"]:
        kind = reason.split(":", 1)[0]
        reason_kinds[kind] = reason_kinds.get(kind, 0) + 1
    return IngestReport(
        manifest=str(manifest),
        n_manifest_rows=table.height,
        n_items=len(kept),
        n_images=images.height,
        n_rejected=set_aside.height,
        n_rejected_images=counts["rejected_images"],
        n_dropped_items=len(items) - len(kept),
        n_tag_rows=tags_table.height,
        categories=output_categories,
        values_per_category={c: int(n_values[c]) for c in output_categories},
        items_per_category={c: int(n_items[c]) for c in output_categories},
        unknown_excluded_categories=unknown_excluded,
        reject_reasons=reason_kinds,
        set_aside_by_kind=dict(Counter(set_aside["kind"].to_list())),
        n_duplicate_images=counts["duplicates"],
        n_repeated_listings=sum(len(e.repeated) for e in items.values()),
        n_items_without_tags=counts["no_tags"],
        n_symlinked_images=counts["symlinked"],
        n_outside_manifest_folder=counts["outside"],
        image_modes=dict(modes),
        n_animated_images=counts["animated"],
        n_exif_rotated_images=counts["exif"],
        normalize_values=options.normalize_values,
        n_values_with_whitespace=n_whitespace,
        n_value_variant_groups=len(variants),
        value_variants=variants[:_REPORT_EXAMPLES],
        multi_valued_cells={
            c: {"n_cells": n, "example": example}
            for c, (n, example) in reader.multi_valued.items()
        },
        single_value_categories=tuple(c for c in output_categories if n_values[c] == 1),
        # Every value belongs to exactly one item (and there are several items).
        one_value_per_item_categories=tuple(
            c for c in output_categories
            if n_items[c] > 1 and 2 * n_items[c] > len(kept) and n_values[c] == n_rows[c] == n_items[c]
        ),
    )


def _quote(rejects: pl.DataFrame) -> str:
    return "\n".join(
        f"  item {r['item_id']!r} {r['image'] or '(no image)'}: {r['reason']}"
        for r in rejects.head(_FAIL_MESSAGE_REJECTS).iter_rows(named=True)
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
    core_images = {c: IMAGES_SCHEMA[c] for c in CATALOGUE_IMAGE_COLUMNS}
    for path, schema in ((images_path, core_images), (tags_path, TAGS_SCHEMA)):
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
    """An interactions log restricted to catalogue items.

    Attributes:
        table: polars DataFrame with string columns user_id, item_id, in file order; repeated
            (user, item) rows are kept (a user may order an item twice).
        n_unknown_items: rows dropped because their item id is empty or not in the catalogue.
        unknown_examples: up to 5 of those item ids (first seen; "" for an empty id).
        n_rows: data rows in the file (0 for an empty log).
    """

    table: pl.DataFrame
    n_unknown_items: int
    unknown_examples: tuple[str, ...] = ()
    n_rows: int = 0


def read_interactions(
    path: str | os.PathLike,
    item_ids: Iterable[str],
    *,
    user_column: str = "user_id",
    item_column: str = "item_id",
) -> Interactions:
    """Read a (user, item) interactions log (CSV or Parquet), ids as strings.

    Rows whose item is empty or not in ``item_ids`` (the catalogue's kept items) are dropped,
    counted and exemplified. An empty log (0 bytes, or a header without rows) gives an empty
    table (the tags stage then falls back to catalogue weights and says so). Raises
    ManifestError for a missing file, an unsupported suffix, missing columns or rows without a
    user id (per-user statistics cannot place them).
    """
    path = Path(path)
    empty = pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String})
    if path.is_file() and path.stat().st_size == 0 and path.suffix.lower() == ".csv":
        return Interactions(table=empty, n_unknown_items=0)
    table = read_table_as_strings(path, what="interactions log")
    if table.height == 0 and not {user_column, item_column} <= set(table.columns):
        return Interactions(table=empty, n_unknown_items=0)
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
    is_known = pl.col("item_id").is_in(known.implode())
    kept = table.filter(is_known)
    unknown = table.filter(~is_known.fill_null(False))["item_id"].fill_null("")
    return Interactions(
        table=kept,
        n_unknown_items=table.height - kept.height,
        unknown_examples=tuple(unknown.unique(maintain_order=True).head(5).to_list()),
        n_rows=table.height,
    )

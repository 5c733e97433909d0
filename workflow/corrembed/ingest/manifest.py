"""Reading a catalogue manifest: the table (CSV or Parquet, every cell a string) and its rows.

:func:`read_manifest` reads the table; :func:`parse_manifest` turns its rows into one
:class:`ItemEntry` per item (manifest order preserved everywhere): the images it lists (resolved
to real paths, see :class:`ImageListing`), repeated listings, why listed images are missing, and
its tags (category -> ordered distinct values) in the wide layout (one column per category) or
the long layout (item/category/value rows). See :mod:`corrembed.ingest` for the layouts and the
value normalization rules.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..errors import ManifestError
from .options import IngestOptions, template_fields

SUPPORTED_MANIFEST_SUFFIXES = (".csv", ".parquet")


@dataclass
class ParsedManifest:
    """What a manifest says, item by item.

    Attributes:
        items: item id -> :class:`ItemEntry`, in order of first appearance.
        categories: tag categories (wide: column order; long: first appearance), exclusions removed.
        unknown_excluded: excluded categories the manifest does not have (typos?).
        multi_valued_cells: wide format: category -> [n_cells split into several values, example].
        n_rows: data rows of the manifest.
    """

    items: dict[str, ItemEntry]
    categories: list[str]
    unknown_excluded: tuple[str, ...]
    multi_valued_cells: dict[str, list]
    n_rows: int


def read_manifest(manifest: Path, options: IngestOptions) -> pl.DataFrame:
    """The manifest as a table of strings; ManifestError when it has no data rows."""
    table = read_table_as_strings(manifest, encoding=options.encoding)
    if table.height == 0:
        raise ManifestError(
            f"manifest {manifest} has a header ({table.columns}) but no data rows; add one row "
            "per item (wide format) or per item, category and value (long format)"
        )
    return table


def parse_manifest(table: pl.DataFrame, options: IngestOptions, manifest: Path) -> ParsedManifest:
    """The manifest's rows grouped by item (see :class:`ParsedManifest`); ManifestError for an
    inconsistent manifest (missing columns, empty item ids, one item with different tags, ...)."""
    reader = ValueReader(options.value_separator, strip="strip" in options.normalize_values)
    parse = _parse_wide if options.format == "wide" else _parse_long
    items, categories, unknown_excluded = parse(table, options, manifest, reader)
    return ParsedManifest(items, categories, unknown_excluded, reader.multi_valued, table.height)


def read_table_as_strings(path: str | os.PathLike, what: str = "manifest", *, encoding: str = "utf-8") -> pl.DataFrame:
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
            table = _unescape_header(table, text)
        else:
            table = pl.read_parquet(path)
            table = table.with_columns(pl.all().cast(pl.String))
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        hint = ""
        if suffix == ".csv" and "field" in str(exc).lower():
            hint = (
                " A row has more fields than the header: quote values that contain the "
                "delimiter ',' (\"Red, Blue\") or use another value_separator."
            )
        # Polars' own hints name its API (truncate_ragged_lines=...), not our config: drop them.
        detail = str(exc).split("\n\nConsider")[0].rstrip(".")
        raise ManifestError(f"cannot read {what} {path} as {kind}: {detail}.{hint}") from exc
    return table


def _unescape_header(table: pl.DataFrame, text: str) -> pl.DataFrame:
    """Header cells as Python's csv module (any CSV reader) reads them.

    polars 2.1 keeps the doubled quotes of a quoted header cell: the cell written for ``fit "slim"``
    reads as ``fit ""slim""``. Only such cells are renamed.
    """
    header = next(csv.reader(io.StringIO(text)), [])
    if len(header) != table.width:
        return table
    renames = {old: new for old, new in zip(table.columns, header) if old != new and old.replace('""', '"') == new}
    return table.rename(renames) if renames and len(set(header)) == len(header) else table


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


def require_columns(table: pl.DataFrame, columns: Sequence[str], path: Path, why: str) -> None:
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


class ValueReader:
    """Turns tag cells into values: splitting, missing values, whitespace; records findings."""

    def __init__(self, separator: str | None, strip: bool):
        self.separator = separator
        self.strip = strip
        self.multi_valued: dict[str, list] = {}  # category -> [n_cells, example]

    def values(self, cell: str | None, category: str, split: bool = True) -> tuple[str, ...]:
        """Distinct non-missing values of a cell, in order."""
        if cell is None:
            return ()
        parts = cell.split(self.separator) if split and self.separator is not None else [cell]
        # Empty and whitespace-only values are missing values, whatever the normalization.
        kept = [p.strip() if self.strip else p for p in parts if p.strip()]
        # Interned: a value repeated over 10^6 rows is then one string, not 10^6.
        values = tuple(dict.fromkeys(sys.intern(v) for v in kept))
        if len(values) > 1:
            record = self.multi_valued.setdefault(category, [0, cell])
            record[0] += 1
        return values


@dataclass(slots=True)
class ImageListing:
    """One image of an item as listed: the text in the manifest and the file's real path."""

    listed_as: str
    path: str  # realpath
    symlinked: bool
    outside: bool


@dataclass(slots=True)
class ItemEntry:
    """What the manifest says about one item (manifest order preserved everywhere).

    Slots, and the first row only (error messages need no more): a manifest of 10^6 items holds
    10^6 of these.
    """

    first_row: int = 0  # 1-based data row of the item's first appearance
    images: dict[str, ImageListing] = field(default_factory=dict)  # real path -> listing
    # Rare, so tuples (shared empty ones) rather than a list per item.
    repeated: tuple[ImageListing, ...] = ()  # listings of an image again
    image_problems: tuple[str, ...] = ()  # why listed images are missing
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)  # category -> distinct values, in order


class _PathResolver:
    """Listed image paths -> :class:`ImageListing` (real path, symlinked, outside the base folder).

    The real path is ``os.path.realpath`` of the absolute path; since catalogues keep their images
    in few folders, each folder's real path is resolved once and only the file itself is checked
    for being a symlink (one ``lstat`` per image instead of one per path component).
    """

    def __init__(self, base: Path):
        self.base = str(base)
        self.base_real = os.path.realpath(self.base)
        self._inside_prefix = self.base_real.rstrip(os.sep) + os.sep
        self._real_folders: dict[str, str] = {}

    def listing(self, path_text: str) -> ImageListing:
        absolute = os.path.abspath(os.path.join(self.base, os.path.expanduser(path_text)))
        folder, name = os.path.split(absolute)
        real_folder = self._real_folders.get(folder)
        if real_folder is None:
            real_folder = self._real_folders[folder] = os.path.realpath(folder)
        real = os.path.join(real_folder, name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        outside = real != self.base_real and not real.startswith(self._inside_prefix)
        return ImageListing(listed_as=path_text, path=real, symlinked=real != absolute, outside=outside)


class _ImageSource:
    """Turns a manifest row into the image paths it lists."""

    def __init__(self, table: pl.DataFrame, options: IngestOptions, manifest: Path):
        self.options = options
        self.resolver = _PathResolver(manifest.parent.absolute())
        if options.image_template is not None:
            self.template = options.image_template
            self.fields = template_fields(options.image_template)
            require_columns(table, self.fields, manifest, f"placeholders of image_template {self.template!r}")
        else:
            self.template = None
            require_columns(table, [options.image_column], manifest, "the image column")

    def listings(self, row: Mapping[str, str | None], row_number: int) -> tuple[list[ImageListing], str | None]:
        """(listed images, problem) for one row; problem explains an empty result."""
        if self.template is not None:
            empty = [f for f in self.fields if _clean(row[f]) is None]
            if empty:
                return [], (f"image_template {self.template!r} needs column(s) {empty}, empty on row {row_number}")
            text = self.template.format_map({f: row[f] for f in self.fields})
            parts = _split_paths(text, self.options.image_separator)
        else:
            parts = _split_paths(row[self.options.image_column], self.options.image_separator)
            if not parts:
                return [], f"column {self.options.image_column!r} empty on row {row_number}"
        return [self.resolver.listing(p) for p in parts], None


def _split_paths(cell: str | None, separator: str | None) -> list[str]:
    if cell is None:
        return []
    parts = cell.split(separator) if separator is not None else [cell]
    return [p for p in (_clean(p) for p in parts) if p is not None]


def _parse_wide(
    table: pl.DataFrame, options: IngestOptions, manifest: Path, reader: ValueReader
) -> tuple[dict[str, ItemEntry], list[str], tuple[str, ...]]:
    require_columns(table, [options.item_column], manifest, "the item id column")
    images = _ImageSource(table, options, manifest)
    not_tags = {options.item_column}
    if options.image_column is not None:
        not_tags.add(options.image_column)
    if options.tag_columns is not None:
        require_columns(table, options.tag_columns, manifest, "catalogue.tag_columns")
        candidates = list(dict.fromkeys(options.tag_columns))
    else:
        candidates = [c for c in table.columns if c not in not_tags]
    excluded = set(options.exclude_categories)
    categories = [c for c in candidates if c not in excluded]
    unknown_excluded = tuple(c for c in options.exclude_categories if c not in table.columns)

    items: dict[str, ItemEntry] = {}
    for index, row in enumerate(table.iter_rows(named=True)):
        row_number = index + 1
        item_id = _item_id(row, options.item_column, manifest, row_number)
        tags = {}
        for category in categories:
            values = reader.values(row[category], category)
            if values:
                tags[category] = values
        entry = items.get(item_id)
        if entry is None:
            entry = items[item_id] = ItemEntry(first_row=row_number, tags=tags)
        elif _as_sets(entry.tags) != _as_sets(tags):
            raise ManifestError(
                f"{manifest}: item {item_id!r} is listed on rows {entry.first_row} and {row_number} "
                f"(data rows, header excluded) with different tags: "
                f"{_describe(entry.tags)} vs {_describe(tags)}. Rows of one item (one per "
                "image) must carry identical tags: fix one of the rows, or give the items "
                "different ids."
            )
        _add_images(entry, *images.listings(row, row_number))
    return items, categories, unknown_excluded


def _parse_long(
    table: pl.DataFrame, options: IngestOptions, manifest: Path, reader: ValueReader
) -> tuple[dict[str, ItemEntry], list[str], tuple[str, ...]]:
    require_columns(
        table,
        [options.item_column, options.category_column, options.value_column],
        manifest,
        "long format: item, category and value columns",
    )
    images = _ImageSource(table, options, manifest)
    excluded = set(options.exclude_categories)
    seen_categories: dict[str, None] = {}
    items: dict[str, ItemEntry] = {}
    for index, row in enumerate(table.iter_rows(named=True)):
        row_number = index + 1
        item_id = _item_id(row, options.item_column, manifest, row_number)
        entry = items.get(item_id)
        if entry is None:
            entry = items[item_id] = ItemEntry(first_row=row_number)
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
        known = entry.tags.get(category, ())
        if values[0] not in known:
            entry.tags[category] = (*known, values[0])
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


def _add_images(entry: ItemEntry, listings: list[ImageListing], problem: str | None, across_rows: bool = True) -> None:
    """Add a row's listed images; a listing of an image the item already has is recorded as
    repeated (``across_rows=False``: only when repeated within this row)."""
    in_row: set[str] = set()
    for listing in listings:
        if listing.path in in_row or (across_rows and listing.path in entry.images):
            entry.repeated = (*entry.repeated, listing)
        entry.images.setdefault(listing.path, listing)
        in_row.add(listing.path)
    if problem is not None:
        entry.image_problems = (*entry.image_problems, problem)


def _as_sets(tags: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    return {c: frozenset(v) for c, v in tags.items()}


def _describe(tags: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {c: list(v) for c, v in tags.items()}

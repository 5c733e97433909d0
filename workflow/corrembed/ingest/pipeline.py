"""Catalogue manifest -> normalized catalogue (images, tags, rejects).

The manifest is a CSV or Parquet table (format chosen by the file suffix) in one of two layouts:

- **wide**: one row per item (or several rows per item, one per image, with identical tags), one
  column per tag category. A cell may hold several values of one category separated by
  ``value_separator`` (default ``"|"``).
- **long**: one row per (item, category, value); several values of a category are several rows.

Image paths come from an image column (several images in one cell split on ``image_separator``)
or from a template such as ``"images/{id}.jpg"`` whose placeholders name manifest columns.
Relative paths are resolved against the manifest's folder; absolute paths are kept.

Every listed image is read and fully decoded once, with :func:`corrembed.images.decode.read_image`
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

:class:`~corrembed.records.CatalogueReport` (``report.json`` in the workflow) counts all of it
and lists the value-level findings: case/whitespace variants, multi-valued cells per category,
single-value and one-value-per-item categories.

This module is the pipeline's front, :func:`ingest_catalogue`, a sequence of named steps; each
step's logic lives in its own module of :mod:`corrembed.ingest`: :mod:`.options` (the options),
:mod:`.manifest` (reading and parsing the manifest), :mod:`.image_checks` (checking images),
:mod:`.value_findings` (value variants, telling categories) and :mod:`.catalogue` (the output
tables and their readers).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ManifestError
from ..records import CatalogueReport
from ..storage import write_table
from .catalogue import (
    IMAGES_SCHEMA,
    KEPT,
    REJECTS_SCHEMA,
    SET_ASIDE,
    TAGS_SCHEMA,
)
from .image_checks import ImageCheck, check_images
from .manifest import (
    ImageListing,
    ItemEntry,
    ParsedManifest,
    parse_manifest,
    read_manifest,
)
from .options import (
    MIN_ITEMS,
    IngestOptions,
)
from .value_findings import CategoryFindings, category_findings, value_variants

# How many examples a report list keeps (value variants, ...).
_REPORT_EXAMPLES = 20

# How many rejects a "fail" error message quotes.
_FAIL_MESSAGE_REJECTS = 5


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
) -> CatalogueReport:
    """Read ``manifest``, check every image, write the normalized catalogue atomically.

    Parameters
    ----------
    manifest : path
        CSV or Parquet manifest (see the module docstring for the layouts).
    images_out, tags_out, rejects_out : path
        Output paths (images.parquet, tags.parquet, rejects.csv).
    options : IngestOptions, optional
        Reading options (default ``IngestOptions()``); ``threads``: image decoding threads.
    min_items : int
        Fewer usable items than this stop the run (default 3, the least a correlation of
        similarities needs).
    **option_overrides
        IngestOptions fields replacing those of ``options``.

    Returns
    -------
    CatalogueReport
        Counts and findings.

    Raises
    ------
    ManifestError
        (Nothing written.) An unreadable, empty or inconsistent manifest, fewer than ``min_items``
        usable items, or with ``on_unreadable="fail"`` any unusable image.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> for k in range(3):
    ...     Image.new("RGB", (32, 32), (90 * k, 60, 30)).save(folder / f"{k}.jpg")
    >>> pl.DataFrame({"item_id": ["0", "1", "2"], "image": [f"{k}.jpg" for k in range(3)],
    ...               "colour": ["red", "blue", "red"]}).write_csv(folder / "manifest.csv")
    >>> report = ingest_catalogue(folder / "manifest.csv", images_out=folder / "images.parquet",
    ...                           tags_out=folder / "tags.parquet", rejects_out=folder / "rejects.csv")
    >>> report.n_items, report.n_images, report.categories
    (3, 3, ('colour',))
    """
    manifest = Path(manifest)
    options = options or IngestOptions()
    if option_overrides:
        options = dataclasses.replace(options, **option_overrides)

    table = read_manifest(manifest, options)
    parsed = parse_manifest(table, options, manifest)
    variants, n_whitespace = value_variants(
        parsed.items, parsed.categories, casefold="casefold" in options.normalize_values
    )
    checks = check_images(
        [p for entry in parsed.items.values() for p in entry.images],
        threads=threads,
        max_pixels=options.max_image_pixels,
        min_side=options.min_image_side,
        full=options.image_check == "full",
    )
    rejects = _RejectLog()
    usable = resolve_images(parsed.items, checks, rejects)
    n_duplicates = set_aside_duplicates(usable, options.duplicate_images, rejects)
    catalogue = assemble_catalogue(parsed, usable, rejects)
    enforce_policy(catalogue, len(parsed.items), options, manifest, min_items)
    findings = category_findings(catalogue.tags, parsed.categories, len(catalogue.kept))

    write_table(images_out, catalogue.images)
    write_table(tags_out, catalogue.tags)
    write_table(rejects_out, catalogue.rejects)
    return _report(manifest, options, parsed, catalogue, findings, variants, n_whitespace, n_duplicates)


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsableImage:
    """An image of an item that passed its check (so far: duplicates are decided later)."""

    path: str
    listing: ImageListing
    check: ImageCheck


class _RejectLog:
    """rejects.csv rows collected by several steps, written in manifest order.

    Each row is placed by (item position, image position): an item's repeated listings first,
    then its images in listing order, then the item-level row (dropped / no tags).
    """

    REPEATED, ITEM = -1, 1 << 62

    def __init__(self) -> None:
        self._rows: list[tuple[tuple[int, int], int, dict[str, str]]] = []

    def add(self, where: tuple[int, int], *, item_id: str, image: str, reason: str, kind: str, action: str) -> None:
        row = {"item_id": item_id, "image": image, "reason": reason, "kind": kind, "action": action}
        self._rows.append((where, len(self._rows), row))

    def table(self) -> pl.DataFrame:
        rows = [row for _, _, row in sorted(self._rows, key=lambda r: (r[0], r[1]))]
        columns = {k: [r[k] for r in rows] for k in REJECTS_SCHEMA}
        return pl.DataFrame(columns, schema=REJECTS_SCHEMA)


def resolve_images(
    items: Mapping[str, ItemEntry], checks: Mapping[str, ImageCheck], rejects: _RejectLog
) -> dict[str, list[tuple[int, UsableImage]]]:
    """Each item's images that passed their check, with their listing position; repeated
    listings and failed checks go to ``rejects`` (set aside)."""
    usable: dict[str, list[tuple[int, UsableImage]]] = {}
    for i, (item_id, entry) in enumerate(items.items()):
        for listing in entry.repeated:
            rejects.add(
                (i, rejects.REPEATED),
                item_id=item_id,
                image=listing.path,
                kind="repeated_listing",
                action=SET_ASIDE,
                reason=f"repeated listing: {listing.listed_as!r} is an image this item already lists (used once)",
            )
        usable[item_id] = []
        for j, (path, listing) in enumerate(entry.images.items()):
            check = checks[path]
            if check.reason is not None:
                rejects.add((i, j), item_id=item_id, image=path, reason=check.reason, kind=check.kind, action=SET_ASIDE)
            else:
                usable[item_id].append((j, UsableImage(path, listing, check)))
    return usable


def set_aside_duplicates(usable: dict[str, list[tuple[int, UsableImage]]], policy: str, rejects: _RejectLog) -> int:
    """Report images byte-identical to an image of an earlier item (manifest order), and with
    ``policy == "drop"`` remove them from ``usable`` (in place). Returns the number found."""
    first_owner: dict[str, tuple[str, str]] = {}  # sha256 -> (item, path) of its first use
    drop = policy == "drop"
    n_duplicates = 0
    for i, (item_id, images) in enumerate(usable.items()):
        kept = []
        for j, image in images:
            owner = first_owner.setdefault(image.check.sha256, (item_id, image.path))
            if owner[0] != item_id:
                n_duplicates += 1
                rejects.add(
                    (i, j),
                    item_id=item_id,
                    image=image.path,
                    kind="duplicate_image",
                    action=SET_ASIDE if drop else KEPT,
                    reason=f"duplicate image: same bytes as {owner[1]} of item {owner[0]!r}"
                    + (" (set aside: duplicate_images=drop)" if drop else " (kept)"),
                )
                if drop:
                    continue
            kept.append((j, image))
        usable[item_id] = kept
    return n_duplicates


@dataclass
class AssembledCatalogue:
    """The output tables and what they hold.

    kept: ids of the items kept (>= 1 usable image), manifest order; images, tags, rejects: the
    tables (:data:`IMAGES_SCHEMA`, :data:`TAGS_SCHEMA`, :data:`REJECTS_SCHEMA`); counts: kept
    images that are symlinked / outside / animated / exif-rotated, items without tags; modes:
    kept images by Pillow mode.
    """

    kept: list[str]
    images: pl.DataFrame
    tags: pl.DataFrame
    rejects: pl.DataFrame
    counts: Counter = field(default_factory=Counter)
    modes: Counter = field(default_factory=Counter)


def assemble_catalogue(
    parsed: ParsedManifest, usable: Mapping[str, Sequence[tuple[int, UsableImage]]], rejects: _RejectLog
) -> AssembledCatalogue:
    """Rank each item's usable images, keep the items that have one, record the items dropped
    (no usable or no listed image) and the kept items without tags; build the tables."""
    image_rows: dict[str, list] = {k: [] for k in IMAGES_SCHEMA}
    counts: Counter = Counter()
    modes: Counter = Counter()
    kept: list[str] = []
    for i, (item_id, entry) in enumerate(parsed.items.items()):
        images = usable[item_id]
        for rank, (_, image) in enumerate(images):
            listing, check = image.listing, image.check
            _append(
                image_rows,
                item_id=item_id,
                image=image.path,
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
        where = (i, rejects.ITEM)
        if images:
            kept.append(item_id)
            if not entry.tags:
                counts["no_tags"] += 1
                rejects.add(
                    where,
                    item_id=item_id,
                    image="",
                    kind="no_tags",
                    action=KEPT,
                    reason="item has no tags: zero tag vector, never an anchor (kept as a compared item)",
                )
        elif entry.images:
            rejects.add(
                where,
                item_id=item_id,
                image="",
                kind="no_usable_image",
                action=SET_ASIDE,
                reason=f"item dropped: none of its {len(entry.images)} image(s) could be used",
            )
        else:
            rejects.add(
                where,
                item_id=item_id,
                image="",
                kind="no_image_listed",
                action=SET_ASIDE,
                reason="item dropped: no image listed (" + "; ".join(entry.image_problems) + ")",
            )
    return AssembledCatalogue(
        kept=kept,
        images=pl.DataFrame(image_rows, schema=IMAGES_SCHEMA),
        tags=_tags_table(parsed, kept),
        rejects=rejects.table(),
        counts=counts,
        modes=modes,
    )


def _tags_table(parsed: ParsedManifest, kept: Sequence[str]) -> pl.DataFrame:
    """tags.parquet rows of the kept items: by item, category order, value first appearance."""
    category_order = {c: i for i, c in enumerate(parsed.categories)}
    tag_rows: dict[str, list] = {k: [] for k in TAGS_SCHEMA}
    for item_id in kept:
        tags = parsed.items[item_id].tags
        for category in sorted(tags, key=category_order.__getitem__):
            for value in tags[category]:
                _append(tag_rows, item_id=item_id, category=category, value=value)
    return pl.DataFrame(tag_rows, schema=TAGS_SCHEMA)


def enforce_policy(
    catalogue: AssembledCatalogue, n_listed_items: int, options: IngestOptions, manifest: Path, min_items: int
) -> None:
    """ManifestError (before anything is written) when ``on_unreadable="fail"`` and something
    was set aside, or when fewer than ``min_items`` of the ``n_listed_items`` items are usable."""
    set_aside = catalogue.rejects.filter(pl.col("action") == SET_ASIDE)
    unusable = set_aside.filter(pl.col("kind") != "repeated_listing")
    if options.on_unreadable == "fail" and unusable.height:
        raise ManifestError(
            f"{manifest}: {unusable.height} unusable image(s) or image-less item(s) "
            f"(on_unreadable='fail'); first ones:\n{_quote(unusable)}\nFix or remove them, or set "
            "catalogue.on_unreadable: reject to skip them."
        )
    if len(catalogue.kept) < min_items:
        detail = f" Set aside:\n{_quote(set_aside)}" if set_aside.height else ""
        raise ManifestError(
            f"{manifest}: only {len(catalogue.kept)} usable item(s) of {n_listed_items}; CorrEmbed needs at "
            f"least {min_items} items with a readable image (similarities are correlated over the "
            f"other items).{detail}"
        )


def _report(
    manifest: Path,
    options: IngestOptions,
    parsed: ParsedManifest,
    catalogue: AssembledCatalogue,
    findings: CategoryFindings,
    variants: list[dict[str, Any]],
    n_whitespace: int,
    n_duplicates: int,
) -> CatalogueReport:
    """The report of a finished ingest."""
    rejects = catalogue.rejects
    set_aside = rejects.filter(pl.col("action") == SET_ASIDE)
    by_kind = dict(Counter(set_aside["kind"].to_list()))
    n_rejected_images = set_aside.filter(pl.col("image") != "", pl.col("kind") != "repeated_listing").height
    return CatalogueReport(
        manifest=str(manifest),
        n_manifest_rows=parsed.n_rows,
        n_items=len(catalogue.kept),
        n_images=catalogue.images.height,
        n_rejected=set_aside.height,
        n_rejected_images=n_rejected_images,
        n_dropped_items=len(parsed.items) - len(catalogue.kept),
        n_tag_rows=catalogue.tags.height,
        categories=findings.categories,
        values_per_category=findings.values_per_category,
        items_per_category=findings.items_per_category,
        unknown_excluded_categories=parsed.unknown_excluded,
        set_aside_by_kind=by_kind,
        n_duplicate_images=n_duplicates,
        n_repeated_listings=sum(len(e.repeated) for e in parsed.items.values()),
        n_items_without_tags=catalogue.counts["no_tags"],
        n_symlinked_images=catalogue.counts["symlinked"],
        n_outside_manifest_folder=catalogue.counts["outside"],
        image_modes=dict(catalogue.modes),
        n_animated_images=catalogue.counts["animated"],
        n_exif_rotated_images=catalogue.counts["exif"],
        normalize_values=options.normalize_values,
        n_values_with_whitespace=n_whitespace,
        n_value_variant_groups=len(variants),
        value_variants=variants[:_REPORT_EXAMPLES],
        multi_valued_cells={
            c: {"n_cells": n, "example": example} for c, (n, example) in parsed.multi_valued_cells.items()
        },
        single_value_categories=findings.single_value_categories,
        one_value_per_item_categories=findings.one_value_per_item_categories,
    )


def _quote(rejects: pl.DataFrame) -> str:
    return "\n".join(
        f"  item {r['item_id']!r} {r['image'] or '(no image)'}: {r['reason']}"
        for r in rejects.head(_FAIL_MESSAGE_REJECTS).iter_rows(named=True)
    )


def _append(columns: dict[str, list], **values: Any) -> None:
    for key, value in values.items():
        columns[key].append(value)

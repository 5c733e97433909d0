"""The catalogue report: what ingest read, wrote, set aside and noticed (``report.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import Record


@dataclass(frozen=True, kw_only=True)
class CatalogueReport(Record):
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
        schema_version: format version of the file (:class:`Record`).
        extra: keys of the file this record does not declare, kept verbatim.

    Files written before ``schema_version`` existed also carried ``reject_reasons`` (counts by the
    prose reason's first words); it is dropped on reading: ``set_aside_by_kind`` counts the same rows
    by their stable ``kind``.

    Examples
    --------
    >>> report = CatalogueReport(manifest="manifest.csv", n_manifest_rows=3, n_items=3, n_images=3,
    ...                          n_rejected=0, n_rejected_images=0, n_dropped_items=0, n_tag_rows=3,
    ...                          categories=("colour",), single_value_categories=("colour",))
    >>> CatalogueReport.from_dict(report.to_dict()) == report
    True
    >>> report.warnings()
    ["categories ['colour'] have a single value (zero entropy)"]
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
    schema_version: int = Record.SCHEMA_VERSION
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

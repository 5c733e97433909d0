"""Value-level findings of a catalogue: spelling variants of tag values and telling categories.

- :func:`value_variants`: values of one category that differ only in case or surrounding
  whitespace (merged in place with ``casefold``), and how many values carry whitespace;
- :func:`category_findings`: per category, distinct values and items, and the categories that
  look wrong as tags: one value only (zero entropy) or a different value for every item (an
  identifier).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from .manifest import ItemEntry


def value_variants(
    items: Mapping[str, ItemEntry], categories: Sequence[str], casefold: bool
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
            groups.append(
                {"category": category, "values": {m: counts[category][m] for m in members}, "merged": casefold}
            )
            if casefold:
                # The most frequent spelling represents the group (ties: first seen).
                canonical = max(members, key=lambda m: (counts[category][m], -members.index(m)))
                for entry in items.values():
                    values = entry.tags.get(category)
                    if values and any(m in values for m in members):
                        entry.tags[category] = tuple(dict.fromkeys(canonical if v in members else v for v in values))
    return groups, n_whitespace


@dataclass(frozen=True)
class CategoryFindings:
    """Per-category counts over the kept items' tags and the categories to look at.

    Attributes:
        categories: categories present among the kept items, in output order.
        values_per_category, items_per_category: distinct values / items having the category.
        single_value_categories: one distinct value (zero entropy among the items having it).
        one_value_per_item_categories: every value belongs to exactly one item, the category
            covers more than half of the items and several of them (an identifier, not a tag).
    """

    categories: tuple[str, ...]
    values_per_category: dict[str, int]
    items_per_category: dict[str, int]
    single_value_categories: tuple[str, ...]
    one_value_per_item_categories: tuple[str, ...]


def category_findings(tags: pl.DataFrame, categories: Sequence[str], n_items: int) -> CategoryFindings:
    """Findings of the tags table (item_id, category, value) of ``n_items`` kept items;
    ``categories`` gives the output order."""
    per_category = tags.group_by("category").agg(
        pl.col("value").n_unique().alias("n_values"),
        pl.col("item_id").n_unique().alias("n_items"),
        pl.len().alias("n_rows"),
    )
    n_values = dict(zip(per_category["category"], per_category["n_values"]))
    n_items_of = dict(zip(per_category["category"], per_category["n_items"]))
    n_rows = dict(zip(per_category["category"], per_category["n_rows"]))
    present = tuple(c for c in categories if c in n_values)
    return CategoryFindings(
        categories=present,
        values_per_category={c: int(n_values[c]) for c in present},
        items_per_category={c: int(n_items_of[c]) for c in present},
        single_value_categories=tuple(c for c in present if n_values[c] == 1),
        one_value_per_item_categories=tuple(
            c
            for c in present
            if n_items_of[c] > 1 and 2 * n_items_of[c] > n_items and n_values[c] == n_rows[c] == n_items_of[c]
        ),
    )

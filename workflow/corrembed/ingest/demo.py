"""A small deterministic demo catalogue: rendered product pictures, tags and interactions.

Nothing is downloaded and no user data is needed: every picture is drawn with Pillow (a garment,
shoe or bag silhouette in a named colour and pattern on a studio background, with seeded jitter of
position, scale, rotation, colour and noise), the tags describe what was drawn, and synthetic
users interact with items according to designed preferences.

Files written into ``out_dir``:

- ``images/{item_id}.jpg`` (``image_size`` x ``image_size`` RGB JPEG, quality 90); about 15 % of
  items also have ``images/{item_id}_b.jpg``, a second view (mirrored or zoomed, other jitter).
- ``manifest.csv`` (wide format, one row per item): ``item_id`` (zero-padded digits, e.g.
  ``"00042"``: ids must stay strings), ``image`` (paths relative to the manifest; two images
  separated by ``";"``), and the tag columns ``category``, ``colour``, ``pattern``, ``occasion``,
  ``material``, ``season``, ``style``. ``style`` is multi-valued, values separated by ``"|"``.
  ``occasion``, ``material``, ``season`` and ``style`` are sometimes empty. The background is drawn
  but deliberately not tagged (it is not a product property).
- ``interactions.csv``: ``user_id``, ``item_id``. Every user has 1-2 favourite colours and 1-2
  favourite garment categories; each interaction follows each preference with probability 0.9
  (else a uniformly random colour / category), then picks an item of that colour and category
  that the user has not had, else a fresh one of a favourite colour and category, else repeats
  one (like a repeat rental: with few favourites in a small catalogue, repeats are common, about
  a third of the rows at the default size). Pattern plays no part in the choice. So per-user
  entropy is low for colour and category and high for pattern, which is what interaction-based
  entropy weighting should find. About 85 % of users have 11-30 interactions, the rest 2-10
  (excluded by the paper's "more than 10 orders" rule).

Same arguments -> byte-identical files (fixed JPEG settings, no timestamps, seeded numpy RNG).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..storage import atomic_path, write_table
from .demo_pictures import BACKGROUNDS, COLOURS, PATTERNS, SHAPES, render_product

JPEG_QUALITY = 90
SECOND_IMAGE_FRACTION = 0.15
IMAGE_SEPARATOR = ";"
VALUE_SEPARATOR = "|"
TAG_COLUMNS = ("category", "colour", "pattern", "occasion", "material", "season", "style")

CATEGORIES = tuple(SHAPES)

# Other tags, partly determined by the garment category (what such items usually are).
OCCASIONS = {
    "t-shirt": ("casual", "sport"),
    "dress": ("formal", "casual"),
    "skirt": ("casual", "formal"),
    "trousers": ("formal", "casual"),
    "shorts": ("sport", "casual"),
    "coat": ("formal", "casual"),
    "shoe": ("casual", "sport", "formal"),
    "handbag": ("formal", "casual"),
}
MATERIALS = {
    "t-shirt": ("cotton", "polyester"),
    "dress": ("silk", "cotton", "polyester"),
    "skirt": ("cotton", "denim", "wool"),
    "trousers": ("denim", "cotton", "wool"),
    "shorts": ("denim", "cotton", "polyester"),
    "coat": ("wool", "polyester"),
    "shoe": ("leather", "canvas"),
    "handbag": ("leather", "canvas"),
}
SEASONS = {
    "t-shirt": ("summer", "spring"),
    "dress": ("summer", "spring", "all-season"),
    "skirt": ("summer", "spring"),
    "trousers": ("all-season", "autumn"),
    "shorts": ("summer",),
    "coat": ("winter", "autumn"),
    "shoe": ("all-season",),
    "handbag": ("all-season",),
}
STYLES = ("minimal", "classic", "streetwear", "vintage", "bohemian", "sporty")
# Probability that an item lacks the category (empty cell).
MISSING_RATE = {"occasion": 0.05, "material": 0.10, "season": 0.20, "style": 0.15}
# Probability that an interaction follows the user's colour (category) preference.
PREFERENCE_STRENGTH = 0.9


def make_demo_catalogue(
    out_dir: str | os.PathLike,
    *,
    n_items: int = 300,
    n_users: int = 150,
    seed: int = 0,
    image_size: int = 160,
) -> dict[str, Any]:
    """Render and write the demo catalogue (see module docstring) into ``out_dir``.

    Returns a dict: ``out_dir``, ``manifest``, ``interactions``, ``images_dir`` (absolute path
    strings), ``n_items``, ``n_images``, ``n_users``, ``n_interactions``, ``manifest_columns``,
    ``tag_columns``, ``image_separator``, ``value_separator`` and ``ingest_options`` (a
    ``catalogue:`` mapping for :meth:`corrembed.ingest.IngestOptions.from_config`).
    """
    if n_items < 1 or n_users < 1 or image_size < 16:
        raise ValueError("make_demo_catalogue: need n_items >= 1, n_users >= 1, image_size >= 16")
    out = Path(out_dir).absolute()
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    # Independent streams, so that e.g. the image size changes no tag and no interaction.
    item_rng, image_rng, user_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))

    items = _draw_items(item_rng, n_items)
    n_images = 0
    for item in items:
        views = [item["item_id"]] + ([item["item_id"] + "_b"] if item["second_view"] else [])
        for view_index, stem in enumerate(views):
            picture = render_product(
                item["category"],
                item["colour"],
                item["pattern"],
                item["background"],
                rng=image_rng,
                image_size=image_size,
                variant=item["second_view"] if view_index else None,
            )
            with atomic_path(images_dir / f"{stem}.jpg") as tmp:
                picture.save(tmp, format="JPEG", quality=JPEG_QUALITY, optimize=False, subsampling=2)
            n_images += 1
        item["image"] = IMAGE_SEPARATOR.join(f"images/{stem}.jpg" for stem in views)

    manifest_columns = ["item_id", "image", *TAG_COLUMNS]
    manifest = pl.DataFrame(
        {c: [item[c] for item in items] for c in manifest_columns},
        schema={c: pl.String for c in manifest_columns},
    )
    write_table(out / "manifest.csv", manifest)

    interactions = _draw_interactions(user_rng, items, n_users)
    write_table(out / "interactions.csv", interactions)

    return {
        "out_dir": str(out),
        "manifest": str(out / "manifest.csv"),
        "interactions": str(out / "interactions.csv"),
        "images_dir": str(images_dir),
        "n_items": n_items,
        "n_images": n_images,
        "n_users": n_users,
        "n_interactions": interactions.height,
        "manifest_columns": manifest_columns,
        "tag_columns": list(TAG_COLUMNS),
        "image_separator": IMAGE_SEPARATOR,
        "value_separator": VALUE_SEPARATOR,
        "ingest_options": {
            "format": "wide",
            "item_column": "item_id",
            "image_column": "image",
            "image_separator": IMAGE_SEPARATOR,
            "value_separator": VALUE_SEPARATOR,
        },
    }


def _draw_items(rng: np.random.Generator, n_items: int) -> list[dict[str, Any]]:
    """Item attributes: category, colour, pattern, background uniform; other tags from category."""
    width = max(5, len(str(n_items)))
    colours = list(COLOURS)
    items = []
    for index in range(n_items):
        category = CATEGORIES[rng.integers(len(CATEGORIES))]
        item: dict[str, Any] = {
            "item_id": f"{index + 1:0{width}d}",
            "category": category,
            "colour": colours[rng.integers(len(colours))],
            "pattern": PATTERNS[rng.integers(len(PATTERNS))],
            "background": BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
            "occasion": _pick(rng, OCCASIONS[category]),
            "material": _pick(rng, MATERIALS[category]),
            "season": _pick(rng, SEASONS[category]),
        }
        n_styles = int(rng.integers(1, 4))
        styles = [STYLES[i] for i in sorted(rng.choice(len(STYLES), n_styles, replace=False))]
        if item["occasion"] == "sport" and "sporty" not in styles:
            styles.append("sporty")
        item["style"] = VALUE_SEPARATOR.join(styles)
        for column, rate in MISSING_RATE.items():
            if rng.random() < rate:
                item[column] = None
        roll = rng.random()
        item["second_view"] = (
            None if roll >= SECOND_IMAGE_FRACTION else "mirror" if roll < SECOND_IMAGE_FRACTION / 2 else "zoom"
        )
        items.append(item)
    return items


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[rng.integers(len(options))]


def _draw_interactions(rng: np.random.Generator, items: list[dict[str, Any]], n_users: int) -> pl.DataFrame:
    """Each interaction: a colour and a category, each a favourite with probability
    ``PREFERENCE_STRENGTH`` (else uniform), then an item of that colour and category: one the user
    has not had yet if possible, else a fresh one of a favourite colour and favourite category,
    else a repeat (of that colour and category, or of a favourite one). Only when the catalogue
    has none of these, an item of that colour. Pattern never enters the choice.
    """
    colours, categories = list(COLOURS), list(CATEGORIES)
    by_combination: dict[tuple[str, str], list[int]] = {}
    by_colour: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_combination.setdefault((item["colour"], item["category"]), []).append(index)
        by_colour.setdefault(item["colour"], []).append(index)
    width = max(4, len(str(n_users)))
    users, chosen = [], []
    for user in range(n_users):
        liked_colours = [colours[i] for i in rng.choice(len(colours), rng.integers(1, 3), replace=False)]
        liked_categories = [categories[i] for i in rng.choice(len(categories), rng.integers(1, 3), replace=False)]
        liked = [
            i
            for i, item in enumerate(items)
            if item["colour"] in liked_colours and item["category"] in liked_categories
        ]
        n = int(rng.integers(11, 31)) if rng.random() < 0.85 else int(rng.integers(2, 11))
        had: set[int] = set()
        for _ in range(n):
            colour = _preferred(rng, liked_colours, colours)
            category = _preferred(rng, liked_categories, categories)
            exact = by_combination.get((colour, category), [])
            same_colour = by_colour.get(colour, [])
            candidates = (
                [i for i in exact if i not in had]
                or [i for i in liked if i not in had]
                or exact
                or liked
                or [i for i in same_colour if i not in had]
                or same_colour
            )
            pick = candidates[rng.integers(len(candidates))]
            had.add(pick)
            users.append(f"u{user + 1:0{width}d}")
            chosen.append(items[pick]["item_id"])
    return pl.DataFrame({"user_id": users, "item_id": chosen}, schema={"user_id": pl.String, "item_id": pl.String})


def _preferred(rng: np.random.Generator, liked: list[str], every: list[str]) -> str:
    """A favourite with probability PREFERENCE_STRENGTH, else any value (uniformly)."""
    if rng.random() < PREFERENCE_STRENGTH:
        return liked[rng.integers(len(liked))]
    return every[rng.integers(len(every))]

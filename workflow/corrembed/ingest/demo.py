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

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from PIL import Image, ImageDraw, ImageOps

from ..storage import atomic_path, write_table

JPEG_QUALITY = 90
SUPERSAMPLE = 2  # draw at 2x and downscale: smooth edges without antialiasing support in ImageDraw
SECOND_IMAGE_FRACTION = 0.15
IMAGE_SEPARATOR = ";"
VALUE_SEPARATOR = "|"
TAG_COLUMNS = ("category", "colour", "pattern", "occasion", "material", "season", "style")

COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (30, 30, 32),
    "white": (238, 238, 232),
    "red": (196, 30, 40),
    "blue": (35, 70, 170),
    "green": (40, 130, 60),
    "yellow": (235, 200, 40),
    "pink": (235, 130, 175),
    "brown": (120, 72, 40),
}
PATTERNS = ("plain", "stripes", "dots", "checks")
BACKGROUNDS = ("white", "grey", "beige", "gradient")

# Silhouettes in unit coordinates (x right, y down), roughly centred on (0.5, 0.5). Each shape is
# a list of polygons filled with the garment's colour and pattern.
SHAPES: dict[str, list[list[tuple[float, float]]]] = {
    "t-shirt": [
        [
            (0.36, 0.18),
            (0.43, 0.23),
            (0.50, 0.25),
            (0.57, 0.23),
            (0.64, 0.18),
            (0.86, 0.31),
            (0.78, 0.43),
            (0.69, 0.38),
            (0.69, 0.86),
            (0.31, 0.86),
            (0.31, 0.38),
            (0.22, 0.43),
            (0.14, 0.31),
        ]
    ],
    "dress": [
        [
            (0.40, 0.10),
            (0.44, 0.17),
            (0.56, 0.17),
            (0.60, 0.10),
            (0.64, 0.30),
            (0.58, 0.43),
            (0.82, 0.90),
            (0.18, 0.90),
            (0.42, 0.43),
            (0.36, 0.30),
        ]
    ],
    "skirt": [
        [
            (0.34, 0.22),
            (0.66, 0.22),
            (0.66, 0.29),
            (0.80, 0.80),
            (0.20, 0.80),
            (0.34, 0.29),
        ]
    ],
    "trousers": [
        [
            (0.32, 0.10),
            (0.68, 0.10),
            (0.73, 0.91),
            (0.56, 0.91),
            (0.50, 0.38),
            (0.44, 0.91),
            (0.27, 0.91),
        ]
    ],
    "shorts": [
        [
            (0.26, 0.28),
            (0.74, 0.28),
            (0.80, 0.70),
            (0.55, 0.72),
            (0.50, 0.50),
            (0.45, 0.72),
            (0.20, 0.70),
        ]
    ],
    "coat": [
        [
            (0.38, 0.10),
            (0.50, 0.20),
            (0.62, 0.10),
            (0.78, 0.17),
            (0.88, 0.72),
            (0.77, 0.74),
            (0.72, 0.40),
            (0.73, 0.92),
            (0.27, 0.92),
            (0.28, 0.40),
            (0.23, 0.74),
            (0.12, 0.72),
            (0.22, 0.17),
        ]
    ],
    "shoe": [
        [
            (0.12, 0.52),
            (0.16, 0.38),
            (0.33, 0.40),
            (0.45, 0.50),
            (0.70, 0.55),
            (0.86, 0.61),
            (0.88, 0.70),
            (0.12, 0.70),
        ]
    ],
    "handbag": [
        [(0.24, 0.42), (0.76, 0.42), (0.82, 0.82), (0.18, 0.82)],
        # handle: a half ring above the body
        [(0.5 + 0.20 * math.cos(t), 0.43 - 0.22 * math.sin(t)) for t in np.linspace(0, math.pi, 24)]
        + [(0.5 + 0.15 * math.cos(t), 0.43 - 0.17 * math.sin(t)) for t in np.linspace(math.pi, 0, 24)],
    ],
}
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


def render_product(
    category: str,
    colour: str,
    pattern: str,
    background: str,
    *,
    rng: np.random.Generator,
    image_size: int = 160,
    variant: str | None = None,
) -> Image.Image:
    """One product picture (RGB, ``image_size`` square) with seeded jitter.

    ``variant``: ``None`` (main view), ``"mirror"`` (mirrored) or ``"zoom"`` (cropped closer).
    """
    size = image_size * SUPERSAMPLE
    base = np.array(COLOURS[colour], dtype=np.float64) + rng.normal(0.0, 6.0, 3)
    base_rgb = tuple(int(v) for v in np.clip(base, 0, 255))

    # Garment layer: base colour with the pattern in a contrasting shade, masked by the shape.
    garment = Image.new("RGB", (size, size), base_rgb)
    _draw_pattern(ImageDraw.Draw(garment), pattern, base_rgb, size, rng)
    mask = Image.new("L", (size, size), 0)
    outline = Image.new("L", (size, size), 0)
    polygons = _place(SHAPES[category], size, rng)
    mask_draw, outline_draw = ImageDraw.Draw(mask), ImageDraw.Draw(outline)
    for polygon in polygons:
        mask_draw.polygon(polygon, fill=255)
        outline_draw.polygon(polygon, outline=255, width=max(1, size // 110))

    picture = Image.composite(garment, _background(background, size, rng), mask)
    edge = tuple(int(v * 0.45) for v in base_rgb)
    picture.paste(edge, mask=outline)
    _draw_details(ImageDraw.Draw(picture), category, polygons, edge, size)

    if variant == "mirror":
        picture = ImageOps.mirror(picture)
    elif variant == "zoom":
        margin = int(size * rng.uniform(0.08, 0.14))
        picture = picture.crop((margin, margin, size - margin, size - margin))
    picture = picture.resize((image_size, image_size), Image.Resampling.LANCZOS)

    noisy = np.asarray(picture, dtype=np.float64) + rng.normal(0.0, 3.0, (image_size, image_size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="RGB")


def _place(
    shapes: list[list[tuple[float, float]]], size: int, rng: np.random.Generator
) -> list[list[tuple[float, float]]]:
    """Scale, rotate and shift unit-coordinate polygons into pixel coordinates."""
    scale = rng.uniform(0.82, 1.02)
    angle = math.radians(rng.uniform(-8.0, 8.0))
    shift = rng.uniform(-0.05, 0.05, 2)
    cos, sin = math.cos(angle), math.sin(angle)
    placed = []
    for polygon in shapes:
        xy = np.array(polygon, dtype=np.float64) - 0.5
        rotated = np.column_stack([xy[:, 0] * cos - xy[:, 1] * sin, xy[:, 0] * sin + xy[:, 1] * cos])
        pixels = (rotated * scale + 0.5 + shift) * size
        placed.append([(float(x), float(y)) for x, y in pixels])
    return placed


def _contrast(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A shade that stands out on ``rgb``: lighter for dark colours, darker for light ones."""
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    if luminance < 110:
        return tuple(int(v + (255 - v) * 0.65) for v in rgb)
    return tuple(int(v * 0.45) for v in rgb)


def _draw_pattern(
    draw: ImageDraw.ImageDraw,
    pattern: str,
    base: tuple[int, int, int],
    size: int,
    rng: np.random.Generator,
) -> None:
    ink = _contrast(base)
    period = int(size * rng.uniform(0.07, 0.11))
    offset = int(rng.integers(period))
    if pattern == "stripes":
        for y in range(-offset, size, period):
            draw.rectangle((0, y, size, y + period // 2), fill=ink)
    elif pattern == "dots":
        radius = period * 0.22
        for row, y in enumerate(range(-offset, size + period, period)):
            for x in range(-offset + (period // 2) * (row % 2), size + period, period):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)
    elif pattern == "checks":
        for row, y in enumerate(range(-offset, size, period)):
            for column, x in enumerate(range(-offset, size, period)):
                if (row + column) % 2 == 0:
                    draw.rectangle((x, y, x + period - 1, y + period - 1), fill=ink)
    elif pattern != "plain":
        raise ValueError(f"unknown pattern {pattern!r}; known: {PATTERNS}")


def _background(name: str, size: int, rng: np.random.Generator) -> Image.Image:
    tint = rng.normal(0.0, 4.0, 3)
    if name == "gradient":
        # Studio sweep: light at the top, darker and slightly blue towards the floor.
        t = np.linspace(0.0, 1.0, size)[:, None]
        top, bottom = np.array([236, 238, 242]) + tint, np.array([150, 158, 172]) + tint
        column = top * (1 - t) + bottom * t
        array = np.broadcast_to(column[:, None, :], (size, size, 3))
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), mode="RGB")
    colour = {"white": (250, 250, 250), "grey": (190, 190, 192), "beige": (226, 211, 186)}[name]
    return Image.new("RGB", (size, size), tuple(int(v) for v in np.clip(colour + tint, 0, 255)))


def _draw_details(
    draw: ImageDraw.ImageDraw,
    category: str,
    polygons: list[list[tuple[float, float]]],
    ink: tuple[int, int, int],
    size: int,
) -> None:
    """Small recognisable details in the outline colour (neckline, buttons, sole, seams)."""
    body = polygons[0]
    line = max(1, size // 90)
    if category in ("t-shirt", "dress"):
        draw.line(body[0:5] if category == "t-shirt" else body[0:4], fill=ink, width=line * 2)
    elif category == "coat":
        top, bottom = body[1], _midpoint(body[7], body[8])
        for k in range(1, 5):
            x = top[0] + (bottom[0] - top[0]) * k / 5
            y = top[1] + (bottom[1] - top[1]) * k / 5
            r = size * 0.012
            draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
        draw.line([top, bottom], fill=ink, width=line)
    elif category == "shoe":
        draw.line([body[-1], body[-2]], fill=ink, width=line * 4)  # sole
    elif category in ("trousers", "shorts", "skirt"):
        # waistband seam
        a, b = body[0], body[1]
        drop = size * 0.03
        draw.line([(a[0], a[1] + drop), (b[0], b[1] + drop)], fill=ink, width=line)


def _midpoint(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)

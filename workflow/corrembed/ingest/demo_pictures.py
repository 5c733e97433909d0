"""The demo catalogue's pictures: garment, shoe and bag silhouettes drawn with Pillow.

:func:`render_product` draws one product (a silhouette in a named colour and pattern on a studio
background, with seeded jitter of position, scale, rotation, colour and noise); the names it
knows (:data:`COLOURS`, :data:`PATTERNS`, :data:`BACKGROUNDS`, :data:`SHAPES`) are the demo's tag
values (:mod:`corrembed.ingest.demo`).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageOps

SUPERSAMPLE = 2  # draw at 2x and downscale: smooth edges without antialiasing support in ImageDraw

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

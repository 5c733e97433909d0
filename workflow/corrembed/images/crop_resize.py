"""Resize, then centre-crop, with Pillow, resampling only the pixels the crop keeps.

A model's preprocessing resizes the whole image (an 800 x 1000 photo decoded at 1/2 scale:
400 x 500 -> 256 x 320) and then throws a third of the result away (centre crop to 224 x 224).
Pillow can resample a sub-rectangle directly (``Image.resize(..., box=...)``), but its result
equals "resize, then crop" only when the resampling arithmetic is the same for every kept pixel.
:func:`resize_center_crop` uses the box exactly where that is provable and falls back otherwise,
so its output is always equal, pixel for pixel, to::

    F.center_crop(F.resize(image, resize_to, interpolation), [crop])

(torchvision's functional transforms on a PIL image) and the embedding identity does not change.

Why the box path is exact where it is used (Pillow's ``precompute_coeffs``): output pixel ``i``
along an axis of ``n`` input pixels resampled to ``o`` is centred at ``box0 + (i + 0.5) * scale``
with ``scale = (box1 - box0) / outputs``, and its filter taps are a function of that centre and
of ``scale`` alone. The crop keeps outputs ``start .. start + crop``. With the box
``(start * n / o, (start + crop) * n / o)`` both the centre and the scale are computed exactly
(no rounding) whenever ``n / o`` is a dyadic rational (denominator a power of two) and the box
edges fit a float32 (Pillow passes the box as C floats): then every kept pixel gets the same taps
as in the full resize. That holds on the shorter side for the usual 256-pixel resize (``n / 256``)
and on the longer side for common aspect ratios (4:5, 2:3, square); an axis where it does not hold
is resampled in full and cropped afterwards (still exact).

Pillow resamples in two passes (horizontal and vertical, with 8-bit rounding in between) and, in
recent versions, picks the order from the sizes (:func:`vertical_first`). The box call must take
the same order as the full resize; where it would not, the next smaller saving is tried. A
self-check (:func:`box_resize_agrees`) confirms both rules against the installed Pillow once per
process and switches the box path off if Pillow behaves differently.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

#: Pillow filters that resample through ``precompute_coeffs`` (the box argument is exact for
#: these; NEAREST takes another path and is never boxed).
_BOXABLE = {Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS}


def resized_size(size: tuple[int, int], resize_to: Sequence[int]) -> tuple[int, int]:
    """(width, height) of torchvision's ``F.resize(image, resize_to)`` for an image of ``size``
    (width, height): ``[s]`` sets the shorter side to ``s`` (the longer one truncated, as
    torchvision does), ``[h, w]`` sets both."""
    width, height = size
    if len(resize_to) == 2:
        return int(resize_to[1]), int(resize_to[0])
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = int(resize_to[0]), int(int(resize_to[0]) * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def center_crop_offset(length: int, crop: int) -> int:
    """First kept pixel of torchvision's centre crop of ``crop`` out of ``length``."""
    return int(round((length - crop) / 2.0))


def vertical_first(size: tuple[int, int], out: tuple[int, int]) -> bool:
    """Whether Pillow resamples vertically first when resizing ``size`` (width, height) to ``out``
    (with any box): when the rows it drops exceed twice the columns it drops. Measured on Pillow 13
    (every filter, with and without a box) and re-checked at run time by :func:`box_resize_agrees`."""
    return size[1] - out[1] > 2 * (size[0] - out[0])


def exact_box(length: int, resized: int, start: int, crop: int) -> tuple[float, float] | None:
    """The box edges (in input pixels) that resample outputs ``start .. start + crop`` of a
    ``length -> resized`` axis with exactly the full resize's taps, or None where that cannot be
    guaranteed (see the module docstring; also None for an axis that is not shrunk)."""
    if length <= resized:
        return None
    scale = Fraction(length, resized)
    if scale.denominator & (scale.denominator - 1):  # not a power of two: rounding somewhere
        return None
    edges = (start * scale, (start + crop) * scale, crop * scale)
    if any(Fraction(float(np.float32(float(edge)))) != edge for edge in edges):
        return None
    return float(edges[0]), float(edges[1])


def resize_center_crop(
    image: Image.Image, resize_to: Sequence[int], crop: int, interpolation: InterpolationMode
) -> Image.Image:
    """``F.center_crop(F.resize(image, resize_to, interpolation), [crop])``, equal pixel for pixel,
    resampling only the kept pixels where that is exact (see the module docstring).

    image: a PIL image (any mode ``F.resize`` accepts); resize_to: ``[shorter side]`` or
    ``[height, width]``; crop: side of the square centre crop. Returns a ``crop x crop`` image.
    """
    resample = _pil_filter(interpolation)
    plan = _box_plan(image.size, tuple(int(s) for s in resize_to), int(crop), resample)
    if plan is None or image.mode not in ("RGB", "L") or not box_resize_agrees():
        return _resize_then_crop(image, resize_to, crop, interpolation)
    return _boxed(image, plan, resample, crop)


def _pil_filter(interpolation: InterpolationMode) -> int:
    return F.pil_modes_mapping[interpolation]


def _resize_then_crop(
    image: Image.Image, resize_to: Sequence[int], crop: int, interpolation: InterpolationMode
) -> Image.Image:
    """The reference: torchvision's resize of the whole image, then its centre crop."""
    return F.center_crop(F.resize(image, list(resize_to), interpolation=interpolation), [crop])


def _boxed(image: Image.Image, plan: tuple, resample: int, crop: int) -> Image.Image:
    """The box call of a :func:`_box_plan`, then the integer crop of the axes it resampled in full."""
    out, box, left, top = plan
    resampled = image.resize(out, resample, box=box)
    if (left, top) == (0, 0) and out == (crop, crop):
        return resampled
    return resampled.crop((left, top, left + crop, top + crop))


@functools.lru_cache(maxsize=1024)
def _box_plan(
    size: tuple[int, int], resize_to: tuple[int, ...], crop: int, resample: int
) -> tuple[tuple[int, int], tuple[float, float, float, float], int, int] | None:
    """For one geometry: ``(out size, box, left, top)`` of the box call and of the integer crop
    that follows it, or None when only the full resize is exact (or saves nothing)."""
    if resample not in _BOXABLE:
        return None
    width, height = size
    full = resized_size(size, resize_to)
    if crop > min(full) or width <= full[0] or height <= full[1]:
        # torchvision pads (a crop larger than the image); upscaling (measured to take other
        # pass orders) and unchanged axes stay on the full path.
        return None
    left, top = center_crop_offset(full[0], crop), center_crop_offset(full[1], crop)
    x_box = exact_box(width, full[0], left, crop)
    y_box = exact_box(height, full[1], top, crop)
    order = vertical_first(size, full)
    # Most saving first: both axes boxed, then the horizontal one alone, then the vertical one.
    for xb, yb in ((x_box, y_box), (x_box, None), (None, y_box)):
        if xb is None and yb is None:
            continue
        out = (crop if xb is not None else full[0], crop if yb is not None else full[1])
        if vertical_first(size, out) != order:
            continue  # Pillow would take the other pass order: different rounding in between
        xs = xb if xb is not None else (0.0, float(width))
        ys = yb if yb is not None else (0.0, float(height))
        return out, (xs[0], ys[0], xs[1], ys[1]), 0 if xb is not None else left, 0 if yb is not None else top
    return None


@functools.lru_cache(maxsize=1)
def box_resize_agrees() -> bool:
    """Whether the installed Pillow gives the box path exactly the full path's pixels on a few
    noise images chosen to exercise both pass orders and a one-axis box (run once per process;
    False switches the box path off, so a Pillow that computes differently costs speed, never
    pixels)."""
    rng = np.random.default_rng(20261201)
    cases = [
        ((400, 500), [256], 224, InterpolationMode.BILINEAR),  # both axes boxed
        ((500, 400), [256], 224, InterpolationMode.BICUBIC),
        ((375, 500), [256], 224, InterpolationMode.BICUBIC),  # 3:4: only the shorter side boxed
        ((260, 1000), [256], 224, InterpolationMode.BILINEAR),  # vertical pass first
        ((1000, 260), [256], 224, InterpolationMode.BILINEAR),
    ]
    checked = 0
    for size, resize_to, crop, interpolation in cases:
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        resample = _pil_filter(interpolation)
        plan = _box_plan(size, tuple(resize_to), crop, resample)
        if plan is None:
            continue
        boxed = _boxed(image, plan, resample, crop)
        reference = _resize_then_crop(image, resize_to, crop, interpolation)
        if not np.array_equal(np.asarray(boxed), np.asarray(reference)):
            return False
        checked += 1
    return checked > 0

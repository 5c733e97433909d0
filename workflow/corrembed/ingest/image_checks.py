"""Checking catalogue images: can each file be used, and what is it (size, bytes hash, mode)?

:func:`check_image` reads a file, hashes its bytes and decodes it with
:func:`corrembed.images.decode.read_image`, the embed stage's decoder; :func:`check_images` checks many
files on a thread pool (Pillow releases the GIL while decoding). A bad file never raises: the
failure is the check's ``reason`` and ``kind`` (the keywords of :mod:`corrembed.images.decode`, plus
``too_small``).

Two depths (``catalogue.image_check``):

- ``reduced`` (default): header, size, and a decode at reduced scale: a JPEG is decoded by libjpeg
  at 1/8 scale (``read_image(reduce_to=1)``, the decode the ``pil-reduced`` embed decoder uses),
  which skips most of the inverse DCT but still entropy-decodes the whole compressed stream, so
  truncated and corrupt data fail here as in a full decode. Other formats are decoded in full.
  Several times cheaper per product photo than ``full``.
- ``full``: every image decoded at full size (what the ``pil`` embed decoder does).

Either way an image that fails only later, in the embed stage, is set aside there with the same
``kind`` (:mod:`corrembed.images.batches`), never stopping the job.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..images.decode import DEFAULT_MAX_PIXELS, ImageReadError, read_image

TOO_SMALL = "too_small"

#: ``reduce_to`` of the reduced check: any size will do, so libjpeg's smallest scale (1/8).
CHECK_REDUCE_TO = 1


@dataclass(frozen=True)
class ImageCheck:
    """Outcome of reading and decoding one image file.

    ``reason`` is None for a usable image (then width, height, sha256, mode are set; width and
    height are those of the upright image, EXIF orientation applied); ``kind`` is the reason's
    keyword (see :mod:`corrembed.images.decode`).
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
    path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, min_side: int = 1, full: bool = False
) -> ImageCheck:
    """Read ``path``, hash its bytes and decode it to RGB with :func:`corrembed.images.decode.read_image`
    (the embed stage's decoder): a JPEG at 1/8 scale, or every image in full with ``full``.
    Width and height are the upright image's full size either way.

    Never raises for a bad file: the failure becomes ``reason`` ("file not found",
    "empty file (0 bytes)", "not a recognised image format", "truncated or corrupt image: ...",
    "image too large: ...", "image too small: ...") and ``kind``.
    """
    path = str(path)
    try:
        decoded = read_image(path, max_pixels=max_pixels, reduce_to=None if full else CHECK_REDUCE_TO)
    except ImageReadError as error:
        return ImageCheck(path, reason=error.reason, kind=error.kind)
    width, height = decoded.size
    if min(width, height) < min_side:
        return ImageCheck(
            path,
            reason=f"image too small: {width} x {height} pixels, shorter side under "
            f"catalogue.min_image_side = {min_side}",
            kind=TOO_SMALL,
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
    full: bool = False,
) -> dict[str, ImageCheck]:
    """:func:`check_image` for each distinct path, ``threads`` at a time; path -> check."""
    distinct = list(dict.fromkeys(paths))

    def check(path: str) -> ImageCheck:
        return check_image(path, max_pixels=max_pixels, min_side=min_side, full=full)

    if threads <= 1 or len(distinct) <= 1:
        return {p: check(p) for p in distinct}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(distinct, pool.map(check, distinct)))

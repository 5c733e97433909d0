"""Decoding catalogue images into RGB: the one place both ingest and embed open image files.

:func:`load_rgb` turns any file Pillow can decode into an 8-bit RGB image, the same way at ingest
(which checks every image once) and at embedding time, so an image that passed ingest embeds,
and embeds the way it was checked:

- multi-frame files (animated GIF / WebP / APNG, multi-page TIFF): the first frame;
- EXIF orientation applied (a photo taken sideways is embedded upright);
- transparency (RGBA, LA, palette with a transparent colour) composited onto white, the usual
  product-photo background, instead of Pillow's default of dropping alpha (which turns
  transparent areas into whatever colour the hidden pixels happen to hold, often black);
- 16-bit and 32-bit grayscale (``I;16``, ``I``, ``F``) scaled from their actual range of the
  format (0..65535 for 16-bit) to 0..255, instead of Pillow's clipping at 255 (which turns most
  16-bit photos white);
- CMYK (including Adobe's inverted CMYK JPEGs, which Pillow's decoder un-inverts), YCbCr, LAB,
  1-bit and palette images through Pillow's own conversion.

Failures raise :class:`ImageReadError` with a short ``reason`` (``kind``: a stable keyword used
in reports) and never any other exception for a bad file.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

#: Default decompression-bomb guard: images with more pixels are set aside, never decoded.
#: Pillow's own default guard (``Image.MAX_IMAGE_PIXELS``, ~89 Mpx) is of the same order.
DEFAULT_MAX_PIXELS = 89_478_485

_EXIF_ORIENTATION = 0x0112
# EXIF orientations that turn the image by 90 degrees (width and height swap).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)

#: Background colour transparent pixels are composited onto.
BACKGROUND = (255, 255, 255)

# Reason keywords (the ``kind`` of an ImageReadError), stable for reports and tests.
NOT_FOUND = "missing"
NOT_A_FILE = "not_a_file"
UNREADABLE = "unreadable_file"
EMPTY = "empty_file"
NOT_AN_IMAGE = "not_an_image"
TOO_LARGE = "too_large"
CORRUPT = "corrupt_image"


class ImageReadError(Exception):
    """A file that cannot be decoded into an RGB image.

    Attributes:
        kind: stable keyword (missing, not_a_file, unreadable_file, empty_file, not_an_image,
            too_large, corrupt_image).
        reason: human-readable explanation (what is wrong with the file).
    """

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    """An image decoded by :func:`read_image`.

    rgb: the 8-bit RGB image (orientation applied, first frame), at ``1 / scale`` of the file's
    size; data: the file's bytes; source_mode: Pillow mode of the file (``"RGBA"``, ``"I;16"``,
    ``"CMYK"``, ...); n_frames: frames in the file (>1: animated, the first one is used);
    exif_transposed: whether an EXIF orientation other than "normal" was applied;
    size: (width, height) of the upright image at full scale (what the file holds, whatever
    ``scale``); scale: the JPEG DCT scale denominator the file was decoded at (1, 2, 4 or 8;
    1 = full decode, see :func:`read_image`'s ``reduce_to``).
    """

    rgb: Image.Image
    data: bytes
    source_mode: str
    n_frames: int
    exif_transposed: bool
    size: tuple[int, int] = (0, 0)
    scale: int = 1


#: What Pillow's plugins raise for malformed files (a zoo of exception types).
_PILLOW_FAILURES = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    TypeError,
    KeyError,
    IndexError,
    ZeroDivisionError,
    MemoryError,
)


def _file_bytes(path: str) -> bytes:
    """The file's bytes; ImageReadError for a missing, unreadable or empty file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ImageReadError(NOT_FOUND, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(NOT_A_FILE, "not a file (a directory)") from None
    except OSError as exc:
        raise ImageReadError(UNREADABLE, f"cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise ImageReadError(EMPTY, "empty file (0 bytes)")
    return data


def read_image(
    path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, reduce_to: int | None = None
) -> DecodedImage:
    """Read and decode ``path`` into RGB (see the module docstring for the conversions).

    max_pixels: images whose width x height exceeds this are refused before decoding. Pillow's
        own process-wide guard (``Image.MAX_IMAGE_PIXELS``) is raised to ``max_pixels`` when
        that is larger, and switched off for ``None`` (no limit: for files already checked, as
        in the embed stage), so the configured limit is the effective one.
    reduce_to: None decodes every pixel. A number of pixels asks libjpeg, for a JPEG file, for the
        smallest DCT scale (1/2, 1/4 or 1/8; Pillow's ``Image.draft``) that still leaves the
        shorter side at least ``reduce_to`` pixels (:func:`jpeg_scale`). libjpeg then skips most
        of the inverse DCT and the colour conversion of the dropped resolution, but still reads
        and entropy-decodes the whole compressed stream, so truncated or corrupt data fails as in
        a full decode. Other formats, and JPEGs too small for a smaller scale, are decoded in full
        (exactly as with None).
    Raises ImageReadError (never another exception) for a file that cannot be used.
    """
    data = _file_bytes(str(path))
    _raise_pillow_guard_to(max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageReadError(
                    TOO_LARGE,
                    f"image too large: {width} x {height} = {width * height} pixels exceeds "
                    f"catalogue.max_image_pixels = {max_pixels} (a decompression-bomb guard; raise "
                    "it if such images are genuine)",
                )
            n_frames = int(getattr(image, "n_frames", 1) or 1)
            if n_frames > 1:
                image.seek(0)
            scale = 1
            if reduce_to is not None and image.format == "JPEG":
                scale = jpeg_scale((width, height), reduce_to)
                if scale > 1:
                    # Same mode: only the DCT scale changes, never the colour conversion.
                    image.draft(image.mode, (reduce_to, reduce_to))
            image.load()  # the decode: truncated data fails here, not at open()
            source_mode = image.mode
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            transposed = orientation not in (None, 1)
            upright = ImageOps.exif_transpose(image) if transposed else image
            # An RGB decode is used as it is: leaving the block does not free a loaded image, and
            # a copy of a full-size photo costs as much as half its decode.
            rgb = upright if upright.mode == "RGB" else to_rgb(upright)
            full_size = (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)
    except ImageReadError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageReadError(NOT_AN_IMAGE, "not a recognised image format") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(TOO_LARGE, f"image too large to decode safely: {exc}") from None
    except _PILLOW_FAILURES as exc:
        raise ImageReadError(CORRUPT, f"truncated or corrupt image: {exc}") from None
    return DecodedImage(
        rgb=rgb,
        data=data,
        source_mode=source_mode,
        n_frames=n_frames,
        exif_transposed=transposed,
        size=full_size,
        scale=scale,
    )


def load_rgb(
    path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, reduce_to: int | None = None
) -> Image.Image:
    """The file's 8-bit RGB image, upright, first frame; ImageReadError when it cannot be used
    (``reduce_to``: see :func:`read_image`)."""
    return read_image(path, max_pixels=max_pixels, reduce_to=reduce_to).rgb


def jpeg_scale(size: tuple[int, int], reduce_to: int) -> int:
    """The DCT scale denominator (1, 2, 4 or 8) :func:`read_image` decodes a ``size`` JPEG at for
    ``reduce_to``: the largest whose decoded shorter side, ``ceil(side / scale)``, is still at least
    ``reduce_to`` (Pillow's ``JpegImageFile.draft`` rule)."""
    fits = min(size) // max(int(reduce_to), 1)
    return next(s for s in (8, 4, 2, 1) if fits >= s or s == 1)


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of a decoded image: alpha composited onto white, high-bit-depth
    grayscale rescaled, everything else through Pillow's ``convert("RGB")``."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _rescale_gray(image)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _rescale_gray(image: Image.Image) -> Image.Image:
    """16/32-bit grayscale -> 8-bit RGB. Integer images scale by their format's full range (so
    a dark 16-bit photo stays dark); float images by their own min..max."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
    elif image.mode.startswith("I;16"):
        low, high = 0.0, 65535.0
    else:  # "I": 32-bit signed; real files use 16 bits or fewer of it
        low, high = 0.0, max(65535.0, float(values.max()))
    span = high - low if high > low else 1.0
    scaled = np.clip(np.rint((values - low) * (255.0 / span)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled).convert("RGB")


def _raise_pillow_guard_to(max_pixels: int | None) -> None:
    # Pillow refuses (DecompressionBombError) images over 2 x MAX_IMAGE_PIXELS inside open(),
    # before our own check can see the size; a configured limit above Pillow's must win.
    if Image.MAX_IMAGE_PIXELS is None:
        return
    if max_pixels is None:
        Image.MAX_IMAGE_PIXELS = None
    elif Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels

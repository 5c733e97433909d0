"""Images: decoding a file to RGB, the exact resize-and-crop, and the embed stage's batches.

- :mod:`.decode` :func:`read_image` / :func:`load_rgb`, the one decoder ingest and embed share
  (EXIF orientation, alpha on white, 16-bit and palette images, size guard, failure keywords);
- :mod:`.crop_resize` a resize-then-center-crop that equals torchvision's pixels, done in one
  Pillow call where that is exact;
- :mod:`.batches` the embed input pipeline (needs torch): :class:`Preprocess`, the image
  dataset, collation and the on-device conversion and normalisation.

Names are loaded on first use, so ``corrembed.images.decode`` does not import torch.

Examples
--------
>>> from corrembed.images import resized_size
>>> resized_size((800, 1000), [256])
(256, 320)
"""

from importlib import import_module

#: Public name -> the module (in this package) that defines it.
_EXPORTS = {
    **dict.fromkeys(["DecodedImage", "ImageReadError", "load_rgb", "read_image"], "decode"),
    **dict.fromkeys(["resize_center_crop", "resized_size"], "crop_resize"),
    **dict.fromkeys(
        ["DECODERS", "ImageFileDataset", "Preprocess", "batch_to_device", "collate_images", "failed_images"],
        "batches",
    ),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Load a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)

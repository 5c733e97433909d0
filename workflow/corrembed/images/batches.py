"""The embed stage's input pipeline: image files -> normalised float batches on the device.

A model's preprocessing (torchvision's ``ImageClassification``: resize, centre crop, to float,
normalise) is split in two so that the expensive per-image part runs in DataLoader workers and
the rest runs batched on the device:

- per image, in a worker (:class:`ImageFileDataset`): decode, resize (shorter side), centre
  crop -> ``uint8`` (3, crop, crop). uint8 batches are 4x smaller to pin and copy than float.
- per batch, on the device (:meth:`Preprocess.normalize`): ``uint8 -> float / 255``, then
  ``(x - mean) / std``; element-wise, so bit-identical to the per-image transform.

Decoders (part of the embedding identity, since they give slightly different pixels):

- ``pil``: :func:`corrembed.images.decode.load_rgb` (ingest's decoder), Pillow resize. The transform
  is then exactly the weights' ``transforms()`` (the resize resamples only the pixels the centre
  crop keeps where that gives the same pixels: :mod:`corrembed.images.crop_resize`).
- ``pil-reduced``: the ``pil`` path, but a JPEG is decoded by libjpeg at the smallest DCT scale
  (1/2, 1/4, 1/8) that leaves its shorter side at least the model's resize target
  (:func:`corrembed.images.decode.read_image` with ``reduce_to``, the decode ingest's default check uses
  too), then resized as in ``pil``. An 800 x 1000 photo for a 256-pixel resize decodes at 1/2
  scale: 3-5x less CPU per image; pixels differ slightly from a full decode (a different
  embedding identity). Other formats and small JPEGs take the ``pil`` path unchanged.
- ``torchvision``: JPEG files (3- or 1-component) are decoded by ``torchvision.io.decode_jpeg``
  (on a CUDA device: batched nvJPEG in the main process; on the CPU: in the workers), EXIF
  orientation applied, then resized and cropped as tensors (antialiased). Any other file, and
  any JPEG the decoder rejects, goes through the ``pil`` path.

An image that cannot be decoded here (ingest's default check decodes JPEGs at reduced scale only,
and a file may change after ingest) never stops the job: its dataset item is ``("failed", zeros,
(kind, reason))`` with the :mod:`corrembed.images.decode` keywords, :func:`failed_images` lists the
batch's failures, and the embed stage gives it no embedding (NaN in the shard, nothing cached;
the score stage excludes it and the summary counts it).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode
from torchvision.io import decode_jpeg as _torchvision_decode_jpeg

from ..errors import CorrEmbedError
from ..models.preprocess import Preprocessing
from .decode import ImageReadError, load_rgb

DECODERS = ("pil", "pil-reduced", "torchvision")
#: The kind of a dataset item whose file could not be decoded.
FAILED = "failed"
#: Decoders whose images go through Pillow (reduced-scale JPEG decode or not).
PIL_DECODERS = {"pil": False, "pil-reduced": True}
_EXIF_ORIENTATION = 0x0112
_JPEG_MAGIC = b"\xff\xd8\xff"


#: The batches' preprocessing is the models' one record (uint8 resize/crop per image, then
#: scale + normalise per batch); the name stays for the pipeline's callers.
Preprocess = Preprocessing


def decode_jpeg(data, **kwargs):
    """``torchvision.io.decode_jpeg`` without its per-call DeprecationWarning (torchvision 0.29
    deprecates its decoders in favour of TorchCodec; they still work and are what we use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _torchvision_decode_jpeg(data, **kwargs)


def apply_exif_orientation(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """(..., H, W) tensor turned upright for an EXIF orientation 1-8, as
    ``PIL.ImageOps.exif_transpose`` does (1 or unknown values: unchanged)."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-1).flip(-2)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-1, -2)
    if orientation == 6:
        return torch.rot90(image, k=-1, dims=(-2, -1))
    if orientation == 7:
        return image.transpose(-1, -2).flip(-1).flip(-2)
    if orientation == 8:
        return torch.rot90(image, k=1, dims=(-2, -1))
    return image


def jpeg_orientation(data: bytes) -> int | None:
    """The EXIF orientation of a JPEG that ``decode_jpeg`` handles like Pillow (3-component
    YCbCr/RGB or 1-component grayscale); None for anything else (not a JPEG, CMYK, unreadable
    header), which then takes the Pillow path. Reads the header only."""
    if not data.startswith(_JPEG_MAGIC):
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                return None
            return int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001 -- any header problem: let the Pillow path report it
        return None


def read_pil_pixels(path: str, preprocess: Preprocess, *, reduced: bool = False) -> torch.Tensor:
    """The ``pil`` path for one file: uint8 (3, crop, crop); ImageReadError when unreadable.

    reduced: decode a JPEG at the smallest DCT scale that keeps its shorter side at least
    ``preprocess.resize_size`` (the ``pil-reduced`` decoder), then resize as without it.
    """
    # Ingest already applied the size guard to these files: no limit here.
    rgb = load_rgb(path, max_pixels=None, reduce_to=preprocess.resize_size if reduced else None)
    return preprocess.pil_pixels(rgb)


def _failed(preprocess: Preprocess, error: ImageReadError) -> tuple[str, torch.Tensor, tuple[str, str]]:
    """The dataset item of an image that cannot be decoded: zero pixels (never embedded)."""
    crop = preprocess.crop_size
    return FAILED, torch.zeros((3, crop, crop), dtype=torch.uint8), (error.kind, error.reason)


class ImageFileDataset(Dataset):
    """Item ``i``: ``("pixels", uint8 (3, crop, crop), 1)`` for ``paths[i]``, or, with the
    torchvision decoder and ``decode_in_worker=False``, ``("jpeg", uint8 bytes (n,),
    orientation)`` for JPEGs, decoded later on the device (:func:`batch_to_device`), or
    ``("failed", zeros (3, crop, crop), (kind, reason))`` for a file that cannot be decoded."""

    def __init__(
        self, paths: Sequence[str], preprocess: Preprocess, *, decoder: str = "pil", decode_in_worker: bool = True
    ):
        if decoder not in DECODERS:
            raise CorrEmbedError(f"unknown decoder {decoder!r}; use one of {', '.join(DECODERS)}")
        self.paths = list(paths)
        self.preprocess = preprocess
        self.decoder = decoder
        self.decode_in_worker = decode_in_worker

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, Any]:
        try:
            return self._item(self.paths[index])
        except ImageReadError as error:
            return _failed(self.preprocess, error)

    def _item(self, path: str) -> tuple[str, torch.Tensor, int]:
        if self.decoder in PIL_DECODERS:
            return "pixels", read_pil_pixels(path, self.preprocess, reduced=PIL_DECODERS[self.decoder]), 1
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            data = b""
        orientation = jpeg_orientation(data)
        if orientation is None:
            return "pixels", read_pil_pixels(path, self.preprocess), 1
        encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if not self.decode_in_worker:
            return "jpeg", encoded, orientation
        try:
            decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB)
        except RuntimeError:
            return "pixels", read_pil_pixels(path, self.preprocess), 1
        return "pixels", self.preprocess.tensor_pixels(apply_exif_orientation(decoded, orientation)), 1


def collate_images(items: list[tuple[str, torch.Tensor, Any]]) -> dict[str, Any]:
    """Batch of dataset items -> ``{"size", "pixels": uint8 (k, 3, c, c) | None,
    "pixel_positions": int64 (k,), "jpegs": [bytes tensors], "jpeg_positions": int64 (m,),
    "orientations": [int], "failed": [(position, kind, reason)]}`` (positions: rows within the
    batch; failed images are among the pixels, as zeros)."""
    pixels = [(i, t) for i, (kind, t, _) in enumerate(items) if kind in ("pixels", FAILED)]
    jpegs = [(i, t, o) for i, (kind, t, o) in enumerate(items) if kind == "jpeg"]
    failed = [(i, *payload) for i, (kind, _, payload) in enumerate(items) if kind == FAILED]
    return {
        "failed": failed,
        "size": len(items),
        "pixels": torch.stack([t for _, t in pixels]) if pixels else None,
        "pixel_positions": torch.tensor([i for i, _ in pixels], dtype=torch.int64),
        "jpegs": [t for _, t, _ in jpegs],
        "jpeg_positions": torch.tensor([i for i, _, _ in jpegs], dtype=torch.int64),
        "orientations": [o for _, _, o in jpegs],
    }


def batch_to_device(
    batch: dict[str, Any],
    paths: Sequence[str],
    preprocess: Preprocess,
    device: torch.device,
    *,
    channels_last: bool = False,
) -> torch.Tensor:
    """A collated batch -> normalised float32 (b, 3, crop, crop) on ``device``.

    paths: the file of each row of this batch (for the Pillow fallback of JPEGs the device
    decoder rejects). Copies are non-blocking (the DataLoader pins memory on CUDA).
    """
    size = batch["size"]
    pixels = batch["pixels"]
    if not batch["jpegs"]:
        assert pixels is not None and pixels.shape[0] == size
        pixels = pixels.to(device, non_blocking=True)
    else:
        crop = preprocess.crop_size
        full = torch.empty((size, 3, crop, crop), dtype=torch.uint8, device=device)
        if pixels is not None:
            full[batch["pixel_positions"].to(device)] = pixels.to(device, non_blocking=True)
        decoded = _decode_jpegs_on(batch["jpegs"], device)
        for k, position in enumerate(batch["jpeg_positions"].tolist()):
            image = decoded[k]
            if image is None:  # the device decoder rejected this file
                try:
                    full[position] = read_pil_pixels(paths[position], preprocess).to(device)
                except ImageReadError as error:
                    full[position] = 0
                    batch["failed"].append((position, error.kind, error.reason))
            else:
                full[position] = preprocess.tensor_pixels(apply_exif_orientation(image, batch["orientations"][k]))
        pixels = full
    x = preprocess.normalize(pixels)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def failed_images(batch: dict[str, Any], paths: Sequence[str]) -> list[dict[str, Any]]:
    """The images of a collated batch that could not be decoded (after :func:`batch_to_device`):
    ``[{"position", "image", "kind", "reason"}]``, by position; ``paths``: the batch's files."""
    return [
        {"position": position, "image": paths[position], "kind": kind, "reason": reason}
        for position, kind, reason in sorted(batch["failed"])
    ]


def _decode_jpegs_on(jpegs: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """Decode a list of JPEG byte tensors on ``device`` (one batched call); when the batch
    fails, each file alone, None for the ones that still fail."""
    try:
        return list(decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        out: list[torch.Tensor | None] = []
        for data in jpegs:
            try:
                out.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                out.append(None)
        return out

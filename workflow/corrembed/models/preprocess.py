"""Preprocessing every source shares: resize the shorter side, centre crop, scale, normalise.

Every supported model's eval preprocessing has this form (torchvision's ``ImageClassification``,
timm's ``create_transform(is_training=False)``, open_clip's eval transform, CLIP image
processors), so a source describes its preprocessing as one :class:`Preprocessing` record:

- :meth:`Preprocessing.transform` is the per-image reference (PIL image or uint8 tensor ->
  float32 (3, crop, crop)), built from public ``torchvision.transforms.functional`` calls in the
  same order as torchvision's and timm's own transforms, so equal to them bit for bit;
- the embed stage applies the same record in two parts (:meth:`Preprocessing.pil_pixels` /
  :meth:`Preprocessing.tensor_pixels`: uint8 resize/crop in the DataLoader workers;
  :meth:`Preprocessing.normalize`: scale + normalise batched on the device);
- :meth:`Preprocessing.describe` is the plain dict written to ``meta.json``, and
  :meth:`Preprocessing.identity` the part of it that is in the embedding cache identity.

The config's ``transforms:`` overrides (validated by :func:`validate_transform_overrides`)
replace individual fields of the source's own preprocessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

from ..errors import ConfigError
from ..images.crop_resize import resize_center_crop
from .spec import reject_unknown_keys

TRANSFORM_KEYS = ("resize_size", "crop_size", "mean", "std", "interpolation")
#: The fields of a description that are part of the embedding cache identity, in this order.
IDENTITY_FIELDS = ("resize_size", "crop_size", "mean", "std", "interpolation", "antialias")

#: Preprocessing for torchvision checkpoints and random init: torchvision's classic ImageNet recipe.
DEFAULT_RESIZE_SIZE = 256
DEFAULT_CROP_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """A resolved eval preprocessing (see the module docstring).

    Attributes
    ----------
    resize_size : int
        Shorter side after resizing (pixels).
    crop_size : int
        Side of the square centre crop (pixels).
    mean, std : tuple of 3 floats
        Per-channel normalisation on the 0..1 scale.
    interpolation : str
        A ``torchvision.transforms.InterpolationMode`` value (``"bilinear"``, ``"bicubic"``, ...).
    antialias : bool or None
        Passed to ``F.resize`` for tensor inputs (PIL images are always antialiased).
    base : str
        Where the values come from (``"ResNet50_Weights.IMAGENET1K_V2.transforms()"``, ...).
    overrides : dict
        The config's ``transforms:`` overrides applied on top of ``base``.
    resize_mode : str
        ``"shortest"`` (resize the shorter side to ``resize_size``, keep the aspect ratio) or
        ``"squash"`` (resize to ``resize_size`` x ``resize_size``; open_clip's SigLIP models).
        Named in the description and identity only when not ``"shortest"``, so the records of
        every earlier model stay as they were.
    """

    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    antialias: bool | None
    base: str
    overrides: dict[str, Any] = field(default_factory=dict)
    resize_mode: str = "shortest"

    def with_overrides(self, overrides: Mapping[str, Any]) -> Preprocessing:
        """This preprocessing with validated ``transforms:`` overrides applied (and recorded)."""
        values = {key: tuple(value) if key in ("mean", "std") else value for key, value in overrides.items()}
        return replace(self, **values, overrides=dict(overrides))

    def describe(self) -> dict[str, Any]:
        """The plain-dict description written to ``meta.json`` (JSON-able; lists for mean/std)."""
        description = {
            "base": self.base,
            "resize_size": int(self.resize_size),
            "crop_size": int(self.crop_size),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "overrides": dict(self.overrides),
        }
        if self.resize_mode != "shortest":
            description["resize_mode"] = self.resize_mode
        return description

    def identity(self) -> dict[str, Any]:
        """The fields of :meth:`describe` that change pixels (:data:`IDENTITY_FIELDS`)."""
        description = self.describe()
        return {key: description[key] for key in (*IDENTITY_FIELDS, "resize_mode") if key in description}

    def transform(self) -> ReferenceTransform:
        """The per-image transform (:class:`ReferenceTransform`)."""
        return ReferenceTransform(self)

    @classmethod
    def from_transform(cls, transform: Any) -> Preprocessing:
        """The preprocessing of a :class:`ReferenceTransform`, or one read from the public
        attributes of a torchvision ``ImageClassification`` (``base`` then says so).

        Examples
        --------
        >>> from torchvision.models import ResNet50_Weights
        >>> p = Preprocessing.from_transform(ResNet50_Weights.IMAGENET1K_V2.transforms())
        >>> p.resize_size, p.crop_size, p.interpolation
        (232, 224, 'bilinear')
        >>> Preprocessing.from_transform(p.transform()) is p
        True
        """
        if isinstance(getattr(transform, "preprocessing", None), Preprocessing):
            return transform.preprocessing
        return cls(
            single_size(transform.resize_size),
            single_size(transform.crop_size),
            tuple(float(v) for v in transform.mean),
            tuple(float(v) for v in transform.std),
            InterpolationMode(transform.interpolation).value,
            transform.antialias,
            base=f"{type(transform).__name__} attributes",
            resize_mode=getattr(transform, "resize_mode", "shortest"),
        )

    # The embed stage applies the same record in two parts: uint8 resize/crop per image (in
    # the DataLoader workers), then scale + normalise per batch on the device.

    @property
    def interpolation_mode(self) -> InterpolationMode:
        """``interpolation`` as a torchvision ``InterpolationMode``."""
        return InterpolationMode(self.interpolation)

    @property
    def squash(self) -> bool:
        """Whether both sides are resized to ``resize_size`` (aspect ratio ignored)."""
        return self.resize_mode == "squash"

    @property
    def resize_to(self) -> list[int]:
        """The ``size`` argument of ``F.resize``: the shorter side, or both sides when squashing."""
        return [self.resize_size, self.resize_size] if self.squash else [self.resize_size]

    def pil_pixels(self, image: Image.Image) -> torch.Tensor:
        """RGB PIL image -> resized, centre-cropped uint8 (3, crop, crop) (Pillow resize; only the
        kept pixels are resampled where that gives the same pixels, see :mod:`corrembed.images.crop_resize`)."""
        return F.pil_to_tensor(resize_center_crop(image, self.resize_to, self.crop_size, self.interpolation_mode))

    def tensor_pixels(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 (3, H, W) tensor (any device) -> resized, centre-cropped uint8 (3, crop, crop)."""
        image = F.resize(image, self.resize_to, interpolation=self.interpolation_mode, antialias=True)
        return F.center_crop(image, [self.crop_size]).contiguous()

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (b, 3, crop, crop) -> float32, scaled to 0..1 and normalised (same ops, in the
        same order, as ``ImageClassification``, so equal bit for bit)."""
        return F.normalize(F.convert_image_dtype(pixels, torch.float), mean=list(self.mean), std=list(self.std))


class ReferenceTransform(torch.nn.Module):
    """Per-image eval transform of a :class:`Preprocessing`: PIL image or uint8 (3, H, W) tensor ->
    float32 (3, crop_size, crop_size).

    The steps are those of torchvision's ``ImageClassification`` (``F.resize`` of the shorter
    side, ``F.center_crop``, ``F.pil_to_tensor``, ``F.convert_image_dtype``, ``F.normalize``),
    which timm's and open_clip's eval transforms also compute (their ``ToTensor`` divides by 255
    the same way). The attributes mirror ``ImageClassification``'s public ones (``resize_size``
    and ``crop_size`` as one-element lists, ``interpolation`` an ``InterpolationMode``); they
    are read-only views of :attr:`preprocessing`, the one record.
    """

    def __init__(self, preprocessing: Preprocessing):
        """See the class docstring."""
        super().__init__()
        self.preprocessing = preprocessing

    # ImageClassification's public attributes, read from the one record.
    resize_size = property(lambda self: [int(self.preprocessing.resize_size)])
    crop_size = property(lambda self: [int(self.preprocessing.crop_size)])
    mean = property(lambda self: list(self.preprocessing.mean))
    std = property(lambda self: list(self.preprocessing.std))
    interpolation = property(lambda self: self.preprocessing.interpolation_mode)
    antialias = property(lambda self: self.preprocessing.antialias)
    resize_mode = property(lambda self: self.preprocessing.resize_mode)

    def forward(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """Apply the transform to one image (see the class docstring)."""
        size = self.resize_size * 2 if self.resize_mode == "squash" else self.resize_size
        image = F.resize(image, size, interpolation=self.interpolation, antialias=self.antialias)
        image = F.center_crop(image, self.crop_size)
        if not isinstance(image, torch.Tensor):
            image = F.pil_to_tensor(image)
        image = F.convert_image_dtype(image, torch.float)
        return F.normalize(image, mean=self.mean, std=self.std)

    def __repr__(self) -> str:
        """The preprocessing's values."""
        p = self.preprocessing
        return (
            f"ReferenceTransform(resize_size={p.resize_size}, crop_size={p.crop_size}, mean={list(p.mean)}, "
            f"std={list(p.std)}, interpolation={p.interpolation}, antialias={p.antialias})"
        )


def imagenet_default(base: str = "ImageNet default (resize 256, center crop 224, ImageNet mean/std)") -> Preprocessing:
    """Torchvision's classic recipe: resize 256, centre crop 224, bilinear, ImageNet mean/std."""
    return Preprocessing(
        DEFAULT_RESIZE_SIZE,
        DEFAULT_CROP_SIZE,
        IMAGENET_MEAN,
        IMAGENET_STD,
        InterpolationMode.BILINEAR.value,
        True,
        base,
    )


def validate_transform_overrides(overrides: Any, model_name: str) -> dict[str, Any]:
    """Validate a spec's ``transforms:`` mapping.

    Parameters
    ----------
    overrides : mapping
        ``resize_size``/``crop_size`` (positive ints), ``mean``/``std`` (one number or three),
        ``interpolation`` (an ``InterpolationMode`` value, case- and ``_``/``-``-insensitive).
    model_name : str
        The model, named in errors.

    Returns
    -------
    dict
        Normalised values: ints, lists of 3 floats, the interpolation's canonical value.
    """
    where = f"model {model_name!r} transforms"
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(TRANSFORM_KEYS)}, got {overrides!r}")
    reject_unknown_keys(overrides, TRANSFORM_KEYS, where)
    clean: dict[str, Any] = {}
    for key in ("resize_size", "crop_size"):
        if key in overrides:
            value = overrides[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{where}: {key} must be a positive integer (pixels), got {value!r}")
            clean[key] = int(value)
    for key in ("mean", "std"):
        if key in overrides:
            clean[key] = _three_floats(overrides[key], f"{where}: {key}", positive=key == "std")
    if "interpolation" in overrides:
        clean["interpolation"] = interpolation_mode(overrides["interpolation"], where).value
    return clean


def _three_floats(value: Any, where: str, *, positive: bool) -> list[float]:
    """One number or three (R, G, B) -> a list of 3 floats; ConfigError otherwise."""
    values = [value] * 3 if isinstance(value, int | float) and not isinstance(value, bool) else value
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        floats = []
    if len(floats) != 3 or (positive and min(floats) <= 0):
        need = "positive numbers" if positive else "numbers"
        raise ConfigError(f"{where} must be one or three (R, G, B) {need}, got {value!r}")
    return floats


def interpolation_mode(name: Any, where: str) -> InterpolationMode:
    """An ``InterpolationMode`` from its value or name (``"bicubic"``, ``"BICUBIC"``, ``InterpolationMode``).

    Raises
    ------
    ConfigError
        Naming ``where`` and the valid values.
    """
    if isinstance(name, InterpolationMode):
        return name
    modes = {m.value: m for m in InterpolationMode}
    key = str(name).lower().replace("_", "-")
    if key not in modes:
        raise ConfigError(f"{where}: unknown interpolation {name!r}; use one of {', '.join(modes)}")
    return modes[key]


def single_size(size: Any) -> int:
    """``224``, ``[224]`` or ``(3, 224, 224)``-style sizes -> the (last) side as an int."""
    if isinstance(size, list | tuple):
        return int(size[-1])
    return int(size)

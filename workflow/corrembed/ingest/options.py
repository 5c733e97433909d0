"""How to read a catalogue manifest: :class:`IngestOptions` (config ``catalogue:``), validated.

The options say which layout the manifest has (wide or long), where item ids, image paths and tags
are, how tag values are normalized, and what to do with unusable or duplicate images. Invalid
values raise :class:`~corrembed.errors.ConfigError` naming the ``catalogue.*`` key.
"""

from __future__ import annotations

import codecs
import dataclasses
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..images.decode import DEFAULT_MAX_PIXELS

FORMATS = ("wide", "long")
ON_UNREADABLE = ("reject", "fail")
DUPLICATE_IMAGES = ("keep", "drop")
VALUE_NORMALIZATIONS = ("strip", "casefold")
IMAGE_CHECKS = ("reduced", "full")
#: A correlation of similarities needs at least 3 items (2 compared items per anchor).
MIN_ITEMS = 3


@dataclass(frozen=True)
class IngestOptions:
    """How to read a catalogue manifest.

    Attributes:
        format: ``"wide"`` (one column per category) or ``"long"`` (item/category/value rows).
        item_column: column holding the item id.
        image_column: column holding image paths (relative to the manifest's folder or
            absolute). Not used for images when ``image_template`` is set, but still never a tag
            column. ``None``: no image column.
        image_template: e.g. ``"images/{id}.jpg"``; placeholders are manifest column names
            (format specs such as ``{id:0>5}`` work on the string value). Overrides
            ``image_column``.
        image_separator: separator of several image paths in one cell (``None``: one per cell).
            Default ``";"``.
        tag_columns: wide format: the tag category columns (default: every column except the
            item and image columns).
        category_column, value_column: long format: the category and value columns.
        value_separator: wide format: separator of several values in one cell (``None``: none).
        exclude_categories: categories (wide: columns) that are not tags.
        on_unreadable: ``"reject"`` (record and go on) or ``"fail"`` (raise ManifestError).
        normalize_values: any of ``"strip"`` (remove surrounding whitespace of tag values) and
            ``"casefold"`` (merge values of a category equal up to case and surrounding
            whitespace). Default: none (values verbatim; variants are reported).
        duplicate_images: byte-identical images of different items: ``"keep"`` (report them)
            or ``"drop"`` (set aside every copy after the first item's).
        max_image_pixels: images with more pixels are set aside without being decoded (a
            decompression-bomb guard); ``None``: no limit.
        min_image_side: images whose shorter side is below this many pixels are set aside.
        encoding: text encoding of a CSV manifest (Python codec name).
        image_check: ``"reduced"`` (default: header, size, and a JPEG decoded at 1/8 scale, which
            still entropy-decodes the whole stream and so catches truncated or corrupt data;
            other formats decoded in full) or ``"full"`` (every image decoded at full size, as
            the ``pil`` decoder of the embed stage does). See :mod:`corrembed.ingest.image_checks`.

    Examples
    --------
    >>> options = IngestOptions.from_config({"manifest": "catalogue.csv", "format": "long"})
    >>> options.format, options.category_column, options.value_separator
    ('long', 'category', '|')
    >>> IngestOptions.from_config({"formt": "long"})
    Traceback (most recent call last):
    ...
    corrembed.errors.ConfigError: catalogue: unknown option(s) ['formt']; valid options are ...
    """

    format: str = "wide"
    item_column: str = "item_id"
    image_column: str | None = "image"
    image_template: str | None = None
    image_separator: str | None = ";"
    tag_columns: tuple[str, ...] | None = None
    category_column: str = "category"
    value_column: str = "value"
    value_separator: str | None = "|"
    exclude_categories: tuple[str, ...] = ()
    on_unreadable: str = "reject"
    normalize_values: tuple[str, ...] = ()
    duplicate_images: str = "keep"
    max_image_pixels: int | None = DEFAULT_MAX_PIXELS
    min_image_side: int = 1
    encoding: str = "utf-8"
    image_check: str = "reduced"

    # Keys of the config's ``catalogue:`` mapping that are not reading options (the manifest's
    # location); from_config ignores them.
    NON_OPTION_KEYS = frozenset({"manifest"})

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"catalogue.format must be one of {FORMATS}, got {self.format!r}")
        if self.image_check not in IMAGE_CHECKS:
            raise ConfigError(f"catalogue.image_check must be one of {IMAGE_CHECKS}, got {self.image_check!r}")
        if self.on_unreadable not in ON_UNREADABLE:
            raise ConfigError(f"catalogue.on_unreadable must be one of {ON_UNREADABLE}, got {self.on_unreadable!r}")
        for name in ("item_column", "category_column", "value_column"):
            _require_nonempty_str(name, getattr(self, name))
        for name in ("image_column", "image_template", "image_separator", "value_separator"):
            value = getattr(self, name)
            if value is not None:
                _require_nonempty_str(name, value)
        if self.image_column is None and self.image_template is None:
            raise ConfigError(
                "catalogue: no image source; set catalogue.image_column (a manifest column of "
                "image paths) or catalogue.image_template (e.g. 'images/{id}.jpg')"
            )
        if self.image_template is not None:
            template_fields(self.image_template)  # validates the template's syntax
        # Lists from YAML become tuples so options stay hashable and immutable.
        if self.tag_columns is not None:
            object.__setattr__(self, "tag_columns", _str_tuple("tag_columns", self.tag_columns))
            if self.format == "long":
                raise ConfigError(
                    "catalogue.tag_columns applies to the wide format only; in the long format "
                    "categories come from catalogue.category_column"
                )
        object.__setattr__(self, "exclude_categories", _str_tuple("exclude_categories", self.exclude_categories))
        normalize = _str_tuple("normalize_values", self.normalize_values)
        bad = [n for n in normalize if n not in VALUE_NORMALIZATIONS]
        if bad:
            raise ConfigError(
                f"catalogue.normalize_values: unknown normalization(s) {bad}; valid ones are "
                f"{list(VALUE_NORMALIZATIONS)}"
            )
        object.__setattr__(self, "normalize_values", tuple(dict.fromkeys(normalize)))
        if self.duplicate_images not in DUPLICATE_IMAGES:
            raise ConfigError(
                f"catalogue.duplicate_images must be one of {DUPLICATE_IMAGES}, got {self.duplicate_images!r}"
            )
        if self.max_image_pixels is not None and (
            isinstance(self.max_image_pixels, bool)
            or not isinstance(self.max_image_pixels, int)
            or self.max_image_pixels < 1
        ):
            raise ConfigError(
                f"catalogue.max_image_pixels must be a positive integer (pixels) or null, got {self.max_image_pixels!r}"
            )
        if (
            isinstance(self.min_image_side, bool)
            or not isinstance(self.min_image_side, int)
            or (self.min_image_side < 1)
        ):
            raise ConfigError(f"catalogue.min_image_side must be an integer >= 1, got {self.min_image_side!r}")
        _require_nonempty_str("encoding", self.encoding)
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(
                f"catalogue.encoding {self.encoding!r} is not a known text encoding; use e.g. utf-8, cp1252 or latin-1"
            ) from None

    @classmethod
    def from_config(cls, catalogue: Mapping[str, Any] | None) -> IngestOptions:
        """Options from the config's ``catalogue:`` mapping (keys = attribute names).

        The key ``manifest`` (the file's location) is ignored; any other unknown key raises
        ConfigError listing the valid ones.
        """
        catalogue = dict(catalogue or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in catalogue if k not in valid and k not in cls.NON_OPTION_KEYS)
        if unknown:
            raise ConfigError(
                f"catalogue: unknown option(s) {unknown}; valid options are {valid} "
                f"(plus {sorted(cls.NON_OPTION_KEYS)})"
            )
        return cls(**{k: v for k, v in catalogue.items() if k in valid})


def _require_nonempty_str(name: str, value: Any) -> None:
    if not isinstance(value, str) or value == "":
        raise ConfigError(f"catalogue.{name} must be a non-empty string, got {value!r}")


def _str_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"catalogue.{name} must be a list of strings, got {value!r}")
    items = tuple(value)
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(f"catalogue.{name} must be a list of strings, got {value!r}")
    return items


def template_fields(template: str) -> list[str]:
    """Column names used by an image template; ConfigError for malformed templates."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"catalogue.image_template {template!r} is malformed: {exc}") from exc
    fields = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit() or any(c in name for c in ".[]"):
            raise ConfigError(
                f"catalogue.image_template {template!r}: placeholder {{{name}}} must be a "
                "manifest column name, e.g. 'images/{id}.jpg'"
            )
        fields.append(name)
    return fields

"""The normalized catalogue ingest writes, and the readers later stages use.

Tables (see :mod:`corrembed.ingest` for their content): ``images.parquet`` (:data:`IMAGES_SCHEMA`),
``tags.parquet`` (:data:`TAGS_SCHEMA`), ``rejects.csv`` (:data:`REJECTS_SCHEMA`; ``action`` is
:data:`SET_ASIDE` or :data:`KEPT`). :func:`read_catalogue` reads the first two back;
:func:`read_interactions` reads a (user, item) interactions log restricted to catalogue items.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import polars as pl

from ..errors import ManifestError
from .manifest import read_table_as_strings, require_columns

# rejects.csv actions
SET_ASIDE = "set_aside"
KEPT = "kept"

IMAGES_SCHEMA = {
    "item_id": pl.String,
    "image": pl.String,
    "image_rank": pl.Int32,
    "width": pl.Int32,
    "height": pl.Int32,
    "sha256": pl.String,
    "listed_as": pl.String,
    "outside_manifest_folder": pl.Boolean,
}
TAGS_SCHEMA = {"item_id": pl.String, "category": pl.String, "value": pl.String}
REJECTS_SCHEMA = {
    "item_id": pl.String,
    "image": pl.String,
    "reason": pl.String,
    "kind": pl.String,
    "action": pl.String,
}
# Columns every later stage relies on (read_catalogue checks these).
CATALOGUE_IMAGE_COLUMNS = ("item_id", "image", "image_rank", "width", "height", "sha256")


def read_catalogue(images_path: str | os.PathLike, tags_path: str | os.PathLike) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read an ingested catalogue: (images table, tags table) with the documented schemas.

    Parameters
    ----------
    images_path, tags_path : path
        The ingest stage's ``images.parquet`` and ``tags.parquet``.

    Returns
    -------
    images, tags : polars DataFrame
        :data:`CATALOGUE_IMAGE_COLUMNS` (item_id, image str; image_rank, width, height int32;
        sha256 str) and item_id, category, value (str).

    Raises
    ------
    ManifestError
        When a file is missing or lacks the catalogue columns.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> from corrembed.ingest import ingest_catalogue
    >>> folder = Path(tempfile.mkdtemp())
    >>> for k in range(3):
    ...     Image.new("RGB", (32, 24), (90 * k, 60, 30)).save(folder / f"{k}.png")
    >>> pl.DataFrame({"item_id": ["0", "1", "2"], "image": [f"{k}.png" for k in range(3)],
    ...               "colour": ["red", "blue", "red"]}).write_csv(folder / "manifest.csv")
    >>> _ = ingest_catalogue(folder / "manifest.csv", images_out=folder / "images.parquet",
    ...                      tags_out=folder / "tags.parquet", rejects_out=folder / "rejects.csv")
    >>> images, tags = read_catalogue(folder / "images.parquet", folder / "tags.parquet")
    >>> images.select("item_id", "width", "height").rows()[0], tags.rows()[1]
    (('0', 32, 24), ('1', 'colour', 'blue'))
    """
    tables = []
    core_images = {c: IMAGES_SCHEMA[c] for c in CATALOGUE_IMAGE_COLUMNS}
    for path, schema in ((images_path, core_images), (tags_path, TAGS_SCHEMA)):
        path = Path(path)
        if not path.is_file():
            raise ManifestError(f"catalogue file {path} does not exist; run the ingest stage")
        try:
            table = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise ManifestError(
                f"cannot read catalogue file {path} (damaged: {exc}); delete it and rerun the same command: "
                "Snakemake then reruns rule ingest, which rebuilds it"
            ) from exc
        require_columns(table, list(schema), path, "catalogue format; re-run the ingest stage")
        tables.append(table.select([pl.col(c).cast(t) for c, t in schema.items()]))
    return tables[0], tables[1]


class Interactions(NamedTuple):
    """An interactions log restricted to catalogue items.

    Attributes:
        table: polars DataFrame with string columns user_id, item_id, in file order; repeated
            (user, item) rows are kept (a user may order an item twice).
        n_unknown_items: rows dropped because their item id is empty or not in the catalogue.
        unknown_examples: up to 5 of those item ids (first seen; "" for an empty id).
        n_rows: data rows in the file (0 for an empty log).
    """

    table: pl.DataFrame
    n_unknown_items: int
    unknown_examples: tuple[str, ...] = ()
    n_rows: int = 0


def read_interactions(
    path: str | os.PathLike,
    item_ids: Iterable[str],
    *,
    user_column: str = "user_id",
    item_column: str = "item_id",
) -> Interactions:
    """Read a (user, item) interactions log (CSV or Parquet), ids as strings.

    Rows whose item is empty or not in ``item_ids`` (the catalogue's kept items) are dropped,
    counted and exemplified. An empty log (0 bytes, or a header without rows) gives an empty
    table (the tags stage then falls back to catalogue weights and says so). Raises
    ManifestError for a missing file, an unsupported suffix, missing columns or rows without a
    user id (per-user statistics cannot place them).
    """
    path = Path(path)
    empty = pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String})
    if path.is_file() and path.stat().st_size == 0 and path.suffix.lower() == ".csv":
        return Interactions(table=empty, n_unknown_items=0)
    table = read_table_as_strings(path, what="interactions log")
    if table.height == 0 and not {user_column, item_column} <= set(table.columns):
        return Interactions(table=empty, n_unknown_items=0)
    require_columns(table, [user_column, item_column], path, "interactions log: user and item")
    table = table.select(pl.col(user_column).alias("user_id"), pl.col(item_column).alias("item_id"))
    no_user = table.with_row_index("row", offset=1).filter(
        pl.col("user_id").is_null() | (pl.col("user_id").str.strip_chars() == "")
    )
    if no_user.height:
        raise ManifestError(
            f"interactions log {path}: {no_user.height} row(s) have an empty {user_column!r} "
            f"(first: data row {no_user['row'][0]}); remove them or give them a user id"
        )
    known = pl.Series("item_id", list(dict.fromkeys(item_ids)), dtype=pl.String)
    is_known = pl.col("item_id").is_in(known.implode())
    kept = table.filter(is_known)
    unknown = table.filter(~is_known.fill_null(False))["item_id"].fill_null("")
    return Interactions(
        table=kept,
        n_unknown_items=table.height - kept.height,
        unknown_examples=tuple(unknown.unique(maintain_order=True).head(5).to_list()),
        n_rows=table.height,
    )

"""Precomputed embeddings: read the user's file, check it against the catalogue, write the embed outputs.

A ``source: precomputed`` model (:mod:`corrembed.models.precomputed_source`) skips the weights
and embed steps: :func:`write_precomputed_embeddings` writes the same
``results/embeddings/{model}/part-00000.parquet`` and ``meta.json`` (an
:class:`~corrembed.records.EmbeddingMeta` with the throughput fields empty) that the embed stage
writes, so scoring, diagnostics and the summary treat the model like any other.

File formats (by suffix):

- ``.parquet``: the first column holds the ids; the others are either one list column (the
  vectors) or one numeric column per dimension;
- ``.npy``: a 2-d array, with the ids in a separate file (``ids:``; one per line, or a ``.npy``);
- ``.npz``: arrays ``ids`` (n,) and ``embeddings`` (n, d).

Every mismatch names the file: an empty file, rows of another length, NaN/inf values and
duplicate ids stop; catalogue items without a row are listed, set aside (NaN rows, excluded by
the score stage) and counted, or stop with ``on_missing: fail``; ids that are not in the
catalogue are counted.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CorrEmbedError
from ..models import ModelSpec, parse_model_spec
from ..records import EmbeddingMeta
from .cache import embedding_identity, identity_key
from .store import EmbeddingShardWriter, shard_name

META_NAME = "meta.json"
#: Ids listed in a message before "... (+N more)".
SHOWN = 10
#: The kind of a catalogue image set aside because the file has no row for it.
MISSING_KIND = "missing_embedding"


class PrecomputedError(CorrEmbedError):
    """A precomputed embeddings file that does not fit the catalogue or cannot be read."""


@dataclass(frozen=True)
class PrecomputedFile:
    """The rows of a precomputed embeddings file.

    Attributes
    ----------
    path : Path
        The file.
    ids : list of str
        One id per row (unique).
    matrix : ndarray
        (n, d) float32, finite.
    """

    path: Path
    ids: list[str]
    matrix: np.ndarray


def _listed(values: list[str]) -> str:
    more = f" ... (+{len(values) - SHOWN} more)" if len(values) > SHOWN else ""
    return ", ".join(map(str, values[:SHOWN])) + more


def _parquet_rows(path: Path) -> tuple[list[str], np.ndarray]:
    """Ids and (n, d) vectors of a Parquet file (see the module docstring)."""
    table = pq.read_table(path)
    if table.num_columns < 2:
        raise PrecomputedError(
            f"{path}: expected an id column and a vector column (or one column per dimension), found columns "
            f"{table.column_names}"
        )
    ids = [str(v) for v in table.column(0).to_pylist()]
    rest = table.select(table.column_names[1:])
    if rest.num_columns == 1 and pa.types.is_list(rest.schema[0].type) | pa.types.is_fixed_size_list(
        rest.schema[0].type
    ):
        rows = rest.column(0).to_pylist()
        lengths = Counter(len(r) if r is not None else 0 for r in rows)
        if len(lengths) > 1:
            common = lengths.most_common(1)[0][0]
            odd = [ids[i] for i, r in enumerate(rows) if (len(r) if r is not None else 0) != common]
            raise PrecomputedError(
                f"{path}: column {rest.column_names[0]!r} has vectors of different lengths ({dict(lengths)}); "
                f"{len(odd)} row(s) differ from the common length {common}: {_listed(odd)}"
            )
        matrix = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
        return ids, matrix
    for field in rest.schema:
        if not (pa.types.is_floating(field.type) or pa.types.is_integer(field.type)):
            raise PrecomputedError(
                f"{path}: column {field.name!r} is {field.type}; after the id column ({table.column_names[0]!r}) "
                "give one list column or numeric columns only (one per dimension)"
            )
    matrix = np.column_stack([rest.column(k).to_numpy(zero_copy_only=False) for k in range(rest.num_columns)])
    return ids, matrix.astype(np.float64)


def _npy_ids(path: Path) -> list[str]:
    if path.suffix.lower() == ".npy":
        return [str(v) for v in np.load(path, allow_pickle=False).tolist()]
    return path.read_text(encoding="utf-8").splitlines()


def read_precomputed(
    path: str | os.PathLike, *, ids: str | os.PathLike | None = None, model_name: str = "model"
) -> PrecomputedFile:
    """Read and check a precomputed embeddings file (formats: the module docstring).

    Parameters
    ----------
    path : path
        ``.parquet``, ``.npy`` or ``.npz``.
    ids : path or None
        For ``.npy``: the ids, one per line (or a ``.npy`` of strings).
    model_name : str
        Named in errors.

    Returns
    -------
    PrecomputedFile

    Raises
    ------
    PrecomputedError
        For an unreadable or empty file, rows of another length, ids that do not match the rows
        in number, duplicate ids, or NaN/inf values (each naming the file and the ids).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> np.savez(folder / "e.npz", ids=np.array(["a", "b"]), embeddings=np.eye(2, 3))
    >>> read_precomputed(folder / "e.npz").matrix.shape
    (2, 3)
    """
    path = Path(path)
    where = f"model {model_name!r}: {path}"
    try:
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            row_ids, matrix = _parquet_rows(path)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if not {"ids", "embeddings"} <= set(archive.files):
                    raise PrecomputedError(f"{path}: expected arrays 'ids' and 'embeddings', found {archive.files}")
                row_ids, matrix = [str(v) for v in archive["ids"].tolist()], archive["embeddings"]
        elif suffix == ".npy":
            if ids is None:
                raise PrecomputedError(f"{path}: a .npy file needs its ids ('ids:' in the model's config)")
            matrix, row_ids = np.load(path, allow_pickle=False), _npy_ids(Path(ids))
        else:
            raise PrecomputedError(f"{path}: unknown format {suffix!r}; use .parquet, .npy (+ ids) or .npz")
    except PrecomputedError as exc:
        raise PrecomputedError(f"model {model_name!r}: {exc}") from None
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise PrecomputedError(f"{where}: cannot read it ({type(exc).__name__}: {exc})") from exc
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise PrecomputedError(f"{where}: holds no embeddings (shape {matrix.shape}); expected (rows, dimensions)")
    if len(row_ids) != matrix.shape[0]:
        raise PrecomputedError(f"{where}: {matrix.shape[0]} rows but {len(row_ids)} ids ({ids or 'ids'})")
    duplicates = sorted(k for k, n in Counter(row_ids).items() if n > 1)
    if duplicates:
        raise PrecomputedError(f"{where}: {len(duplicates)} duplicate id(s): {_listed(duplicates)}")
    bad = ~np.isfinite(matrix.astype(np.float64)).all(axis=1)
    if bad.any():
        rows = [row_ids[i] for i in np.flatnonzero(bad)]
        raise PrecomputedError(f"{where}: {len(rows)} row(s) hold NaN or inf values: {_listed(rows)}")
    return PrecomputedFile(path, row_ids, matrix.astype(np.float32))


def catalogue_keys(images: pl.DataFrame, key: str, file_ids: list[str]) -> list[str | None]:
    """For each catalogue image, the file id that is its row (None: no row).

    ``key: item`` matches the image's ``item_id``; ``key: image`` its path, exactly or, for file
    ids that are relative paths, as the path's ending (``images/1.jpg`` matches
    ``/data/shop/images/1.jpg``).
    """
    known = set(file_ids)
    if key == "item":
        return [v if v in known else None for v in images.get_column("item_id").cast(pl.String).to_list()]
    keys: list[str | None] = []
    relative = [i for i in file_ids if not os.path.isabs(i)]
    for image in images.get_column("image").cast(pl.String).to_list():
        if image in known:
            keys.append(image)
            continue
        posix = Path(image).as_posix()
        keys.append(next((i for i in relative if posix.endswith("/" + Path(i).as_posix())), None))
    return keys


def match_catalogue(
    rows: PrecomputedFile, images: pl.DataFrame, *, key: str, on_missing: str, model_name: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """The catalogue-ordered (n_images, d) float32 matrix of a file's rows, and what did not match.

    Returns
    -------
    matrix : ndarray
        One row per ``images`` row; NaN for images the file has no row for.
    report : dict
        ``{n_file_rows, n_matched_rows, n_unknown_ids, unknown_ids (first few), set_aside}``;
        ``set_aside`` lists ``{image, item_id, kind, reason}`` per image without a row.

    Raises
    ------
    PrecomputedError
        When nothing matches (the key is probably the other one), or, with ``on_missing: fail``,
        when any catalogue item lacks a row (the items listed).
    """
    keys = catalogue_keys(images, key, rows.ids)
    matched = {k for k in keys if k is not None}
    unknown = [i for i in rows.ids if i not in matched]
    where = f"model {model_name!r}: {rows.path}"
    if not matched:
        other = "image" if key == "item" else "item"
        raise PrecomputedError(
            f"{where}: none of its {len(rows.ids)} ids (e.g. {_listed(rows.ids[:3])}) is a catalogue "
            f"{'item id' if key == 'item' else 'image path'} (key: {key}); is it key: {other}?"
        )
    item_ids = images.get_column("item_id").cast(pl.String).to_list()
    paths = images.get_column("image").cast(pl.String).to_list()
    missing = [i for i, k in enumerate(keys) if k is None]
    if missing and on_missing == "fail":
        names = sorted({item_ids[i] for i in missing})
        raise PrecomputedError(
            f"{where}: {len(names)} catalogue item(s) have no row (key: {key}, on_missing: fail): {_listed(names)}. "
            "Add them to the file, or set on_missing: exclude to score without them."
        )
    index = {k: r for r, k in enumerate(rows.ids)}
    matrix = np.full((len(keys), rows.matrix.shape[1]), np.nan, dtype=np.float32)
    present = [i for i, k in enumerate(keys) if k is not None]
    matrix[present] = rows.matrix[[index[keys[i]] for i in present]]
    set_aside = [
        {"image": paths[i], "item_id": item_ids[i], "kind": MISSING_KIND, "reason": f"no row in {rows.path}"}
        for i in missing
    ]
    report = {
        "n_file_rows": len(rows.ids),
        "n_matched_rows": len(matched),
        "n_unknown_ids": len(unknown),
        "unknown_ids": unknown[:SHOWN],
        "set_aside": set_aside,
    }
    return matrix, report


def write_precomputed_embeddings(
    images: pl.DataFrame, spec: Any, out_dir: str | os.PathLike, *, model_name: str = "model"
) -> dict[str, Any]:
    """Write a precomputed model's ``part-00000.parquet`` and ``meta.json`` into ``out_dir``.

    Parameters
    ----------
    images : DataFrame
        The catalogue's ``images.parquet`` (``item_id``, ``image``), in its order.
    spec : ModelSpec or mapping
        A ``source: precomputed`` model.
    out_dir : path
        ``results/embeddings/{model}``.

    Returns
    -------
    dict
        The :class:`~corrembed.records.EmbeddingMeta` as written, with ``source`` and
        ``precomputed`` (the file, its counts and the first ids not in the catalogue).
    """
    spec: ModelSpec = parse_model_spec(spec, model_name=model_name)
    if spec.source != "precomputed":
        raise PrecomputedError(f"model {spec.name!r}: source {spec.source!r} is not precomputed")
    rows = read_precomputed(spec.weights.path, ids=spec.options.get("ids"), model_name=spec.name)
    matrix, report = match_catalogue(
        rows, images, key=spec.options["key"], on_missing=spec.options["on_missing"], model_name=spec.name
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_NAME).unlink(missing_ok=True)
    with EmbeddingShardWriter(out / shard_name(0), dim=matrix.shape[1]) as writer:
        writer.write(images.get_column("item_id").cast(pl.String), images.get_column("image").cast(pl.String), matrix)
    identity = embedding_identity(spec, {}, precision="precomputed", decoder="none")
    set_aside = report.pop("set_aside")
    meta = EmbeddingMeta(
        model=spec.name,
        arch=spec.arch,
        weights={"configured": None, "resolved": str(spec.weights.path), "kind": "precomputed"},
        layer=spec.layer,
        identity=identity,
        identity_key=identity_key(identity),
        precision="precomputed",
        decoder="none",
        dtype="float32",
        dim=int(matrix.shape[1]),
        n_images=images.height,
        n_embedded=0,
        images_set_aside=set_aside,
        extra={"source": "precomputed", "precomputed": {"file": str(rows.path), **report}},
    )
    meta.write(out / META_NAME)
    return meta.to_dict()

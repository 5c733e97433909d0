"""Checked reads of the files a later stage trusts without recomputing them.

The merged embeddings (``results/embeddings/{model}/part-00000.parquet`` + ``meta.json``) and the
tag vectors (``results/tags/{weighting}/vectors.npz``) are read with their metadata checked: the
file opens, its rows and dimension agree with what the writer recorded (meta.json's ``n_images``
and ``dim``, whose ``schema_version`` :class:`~corrembed.records.EmbeddingMeta` checks), the sparse
matrix is well-formed. A damaged file stops the stage with a :class:`DamagedOutputError` naming
it, the rule that rebuilds it and what to delete. (The catalogue tables are checked by
:func:`corrembed.catalogue.read_catalogue`, which names the ingest rule.)
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CorrEmbedError
from ..records import EmbeddingMeta
from ..tags import TagVectors, load_tag_vectors
from .store import Embeddings, read_embeddings

META_NAME = "meta.json"


class DamagedOutputError(CorrEmbedError):
    """A file an earlier stage wrote is damaged or does not match its metadata."""


def rebuild_hint(path: Path, rule: str, also: tuple[Path, ...] = ()) -> str:
    """``delete X (and Y) and rerun the same command: Snakemake then reruns rule R``."""
    files = " and ".join(str(p) for p in (path, *also))
    return (
        f"delete {files} and rerun the same command: Snakemake then reruns rule {rule}, which rebuilds it "
        "(the embedding cache keeps the embed jobs cheap)"
    )


def checked_embeddings(shard: str | os.PathLike) -> Embeddings:
    """:func:`~corrembed.embed.store.read_embeddings` of a merged embeddings file, after
    checking it against the ``meta.json`` beside it (rows, dimension, schema version).

    Raises
    ------
    DamagedOutputError
        The file cannot be opened or decoded, or its rows or dimension differ from meta.json's;
        the message names the file and rule ``merge_embeddings``.
    """
    shard = Path(shard)
    meta_path = shard.parent / META_NAME
    hint = rebuild_hint(shard, f"merge_embeddings for model {shard.parent.name!r}", (meta_path,))
    meta = EmbeddingMeta.read(meta_path) if meta_path.exists() else None
    try:
        parquet = pq.ParquetFile(shard)
        rows = parquet.metadata.num_rows
        dim = parquet.schema_arrow.field("embedding").type.list_size
    except FileNotFoundError:
        raise DamagedOutputError(f"merged embeddings {shard} do not exist; rerun the same command") from None
    except (OSError, pa.ArrowException, KeyError, AttributeError) as exc:
        raise DamagedOutputError(
            f"merged embeddings {shard} are damaged ({type(exc).__name__}: {exc}); {hint}"
        ) from exc
    if meta is not None:
        if meta.n_images is not None and rows != meta.n_images:
            raise DamagedOutputError(
                f"merged embeddings {shard} hold {rows} rows, {meta_path} says {meta.n_images}; {hint}"
            )
        if meta.dim and dim != meta.dim:
            raise DamagedOutputError(
                f"merged embeddings {shard} are {dim}-dimensional, {meta_path} says {meta.dim}; {hint}"
            )
    try:
        embeddings = read_embeddings([shard])
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise DamagedOutputError(
            f"merged embeddings {shard} cannot be decoded ({type(exc).__name__}: {exc}); {hint}"
        ) from exc
    if len(embeddings) != rows:
        raise DamagedOutputError(f"merged embeddings {shard} decode to {len(embeddings)} rows, not {rows}; {hint}")
    return embeddings


def checked_tag_vectors(path: str | os.PathLike) -> TagVectors:
    """:func:`~corrembed.tags.load_tag_vectors`, with the file's arrays checked for consistency.

    Raises
    ------
    DamagedOutputError
        The ``.npz`` cannot be read, lacks an array, or its matrix, item ids and slot names do not
        fit together; the message names the file and rule ``tags``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "binary" / "vectors.npz"
    >>> bad.parent.mkdir()
    >>> _ = bad.write_bytes(b"PK garbage")
    >>> try:
    ...     checked_tag_vectors(bad)
    ... except DamagedOutputError as error:
    ...     print("rule tags for weighting 'binary'" in str(error))
    True
    """
    path = Path(path)
    hint = rebuild_hint(path, f"tags for weighting {path.parent.name!r}")
    if not path.is_file():
        raise DamagedOutputError(f"tag vectors {path} do not exist; rerun the same command")
    try:
        vectors = load_tag_vectors(path)
        vectors.matrix.check_format(full_check=True)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DamagedOutputError(f"tag vectors {path} are damaged ({type(exc).__name__}: {exc}); {hint}") from exc
    n_items, n_slots = vectors.matrix.shape
    if len(vectors.item_ids) != n_items or len(vectors.slot_category) != n_slots or len(vectors.slot_value) != n_slots:
        raise DamagedOutputError(
            f"tag vectors {path}: a {n_items} x {n_slots} matrix with {len(vectors.item_ids)} item ids and "
            f"{len(vectors.slot_category)} slot names; {hint}"
        )
    if not np.isfinite(vectors.matrix.data).all() or (vectors.matrix.data < 0).any():
        raise DamagedOutputError(f"tag vectors {path} hold negative or non-finite weights; {hint}")
    return vectors

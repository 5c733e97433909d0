"""Files a later stage trusts are read with their metadata checked; a damaged one is named with its rule."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from corrembed.embed.checked_reads import DamagedOutputError, checked_embeddings, checked_tag_vectors
from corrembed.embed.store import read_embeddings
from corrembed.errors import ManifestError
from corrembed.ingest.catalogue import read_catalogue
from corrembed.tags import TagVectors, save_tag_vectors
from test_embed_incremental import _make_images, _run


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    work = tmp_path_factory.mktemp("merged")
    images = _make_images(work / "img", 6, seed=7)
    _run(images, work / "mnv3", work / "cache")
    return work / "mnv3"


def _copy(merged, tmp_path):
    target = tmp_path / "mnv3"
    target.mkdir()
    for name in ("part-00000.parquet", "meta.json"):
        (target / name).write_bytes((merged / name).read_bytes())
    return target


def test_sound_embeddings_read_as_the_plain_reader_reads_them(merged):
    checked = checked_embeddings(merged / "part-00000.parquet")
    plain = read_embeddings(merged)
    assert np.array_equal(checked.vectors, plain.vectors) and list(checked.item_ids) == list(plain.item_ids)


@pytest.mark.parametrize("damage", ["truncated", "garbage_footer", "rows", "dim", "missing"])
def test_damaged_embeddings_name_the_file_and_the_rule(merged, tmp_path, damage):
    folder = _copy(merged, tmp_path)
    shard, meta_path = folder / "part-00000.parquet", folder / "meta.json"
    data = shard.read_bytes()
    meta = json.loads(meta_path.read_text())
    if damage == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "garbage_footer":
        shard.write_bytes(data[:-100] + b"\x07" * 92 + data[-8:])
    elif damage == "rows":
        meta_path.write_text(json.dumps({**meta, "n_images": meta["n_images"] + 1}))
    elif damage == "dim":
        meta_path.write_text(json.dumps({**meta, "dim": meta["dim"] + 1}))
    else:
        shard.unlink()
    with pytest.raises(DamagedOutputError) as caught:
        checked_embeddings(shard)
    text = str(caught.value)
    assert str(shard) in text
    if damage != "missing":
        assert "rule merge_embeddings for model 'mnv3'" in text and f"delete {shard}" in text


def test_future_schema_version_of_meta_is_refused(merged, tmp_path):
    folder = _copy(merged, tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(Exception, match="99") as caught:
        checked_embeddings(folder / "part-00000.parquet")
    assert "meta.json" in str(caught.value)


def _vectors(tmp_path):
    matrix = sp.csr_matrix(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]))
    vectors = TagVectors(matrix, np.array(["a", "b"]), np.array(["c", "c", "d"]), np.array(["x", "y", "z"]))
    path = tmp_path / "binary" / "vectors.npz"
    save_tag_vectors(path, vectors)
    return path, vectors


def test_sound_tag_vectors_round_trip(tmp_path):
    path, vectors = _vectors(tmp_path)
    loaded = checked_tag_vectors(path)
    assert (loaded.matrix != vectors.matrix).nnz == 0 and list(loaded.item_ids) == ["a", "b"]


@pytest.mark.parametrize("damage", ["truncated", "slots", "indices"])
def test_damaged_tag_vectors_name_the_file_and_the_rule(tmp_path, damage):
    path, vectors = _vectors(tmp_path)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        with np.load(path) as z:
            arrays = dict(z)
        if damage == "slots":
            arrays["slot_value"] = arrays["slot_value"][:2]
        else:
            arrays["indices"] = arrays["indices"] + 7  # columns beyond the matrix
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    with pytest.raises(DamagedOutputError) as caught:
        checked_tag_vectors(path)
    assert str(path) in str(caught.value) and "rule tags for weighting 'binary'" in str(caught.value)


def test_damaged_catalogue_table_names_the_ingest_rule(tmp_path):
    images = tmp_path / "images.parquet"
    tags = tmp_path / "tags.parquet"
    pl.DataFrame({"item_id": ["a"], "category": ["c"], "value": ["v"]}).write_parquet(tags)
    images.write_bytes(b"PAR1 not really parquet PAR1")
    with pytest.raises(ManifestError) as caught:
        read_catalogue(images, tags)
    assert str(images) in str(caught.value) and "rule ingest" in str(caught.value)

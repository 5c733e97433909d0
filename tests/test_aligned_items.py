"""aligned_items: the one place embeddings meet tag rows (score stage and diagnostics), against a
slow, obvious per-item loop."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from corrembed.embed.store import Embeddings
from corrembed.score.aligned import aligned_items
from corrembed.tags import TagVectors


@st.composite
def catalogues(draw):
    n_items = draw(st.integers(4, 9))
    images_per_item = draw(st.lists(st.integers(1, 3), min_size=n_items, max_size=n_items))
    item_of_image = np.repeat(np.arange(n_items), images_per_item)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    vectors = rng.standard_normal((item_of_image.size, 3)).astype(np.float32)
    # Some image embeddings are unusable (all zeros or NaN), but at least 3 items keep one.
    bad = rng.random(item_of_image.size) < 0.3
    bad[np.searchsorted(item_of_image, [0, 1, 2])] = False
    vectors[bad & (rng.random(item_of_image.size) < 0.5)] = 0.0
    vectors[bad & ~(vectors == 0).all(axis=1)] = np.nan
    ids = np.array([f"i{k}" for k in range(n_items)])
    embeddings = Embeddings(
        item_ids=ids[item_of_image].astype(object),
        images=np.array([f"{k}.jpg" for k in range(item_of_image.size)], dtype=object),
        vectors=vectors,
    )
    tags = TagVectors(
        sp.csr_matrix((rng.random((n_items, 4)) < 0.5).astype(np.float64)),
        ids,
        np.array(["c"] * 4),
        np.array(["v0", "v1", "v2", "v3"]),
    )
    return embeddings, tags, draw(st.sampled_from(["first", "mean"]))


@settings(max_examples=60, deadline=None)
@given(catalogues())
def test_rows_are_each_items_usable_images_and_its_tag_row(case):
    embeddings, tags, mode = case
    items = aligned_items(embeddings, tags, mode)
    expected_ids, expected_rows = [], []
    for item in tags.item_ids:  # the obvious loop: an item's usable images, in image order
        mine = [v for i, v in zip(embeddings.item_ids, embeddings.vectors) if i == item and np.isfinite(v).all()]
        mine = [v for v in mine if np.any(v != 0)]
        if mine:
            row = mine[0] if mode == "first" else np.mean(np.asarray(mine, dtype=np.float64), axis=0)
            if np.any(row != 0):
                expected_ids.append(item)
                expected_rows.append(row)
    assert items.item_ids.tolist() == expected_ids
    np.testing.assert_allclose(items.embeddings, np.asarray(expected_rows), rtol=1e-6, atol=1e-6)
    position = {item: k for k, item in enumerate(tags.item_ids.tolist())}
    expected_tags = tags.matrix[[position[i] for i in expected_ids]]
    assert (items.tags.matrix != expected_tags).nnz == 0
    assert items.usable.n_excluded_items == len(tags.item_ids) - len(expected_ids)


def test_a_file_path_reads_the_same_as_the_embeddings(tmp_path):
    from corrembed.embed.store import EmbeddingShardWriter, read_embeddings

    ids = np.array(["a", "b", "c", "d"])
    with EmbeddingShardWriter(tmp_path / "part-00000.parquet", dim=2) as writer:
        writer.write(ids, [f"{i}.jpg" for i in ids], np.array([[1, 0], [0, 0], [0, 1], [1, 1]], np.float32))
    tags = TagVectors(sp.csr_matrix(np.eye(4)), ids, np.array(["c"] * 4), ids)
    from_path = aligned_items(tmp_path / "part-00000.parquet", tags)
    from_memory = aligned_items(read_embeddings(tmp_path), tags)
    assert from_path.item_ids.tolist() == from_memory.item_ids.tolist() == ["a", "c", "d"]
    assert np.array_equal(from_path.embeddings, from_memory.embeddings)

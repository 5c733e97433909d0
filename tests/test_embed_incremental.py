"""The incremental embedding cache: forward passes are counted, so reuse is proven, not assumed.

A grown catalogue embeds only its new images, changed bytes re-embed, run settings and output
deletion re-embed nothing, and everything in the embedding identity (precision, transforms,
checkpoint content) gets its own cache.
"""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from corrembed.embed import embed_images
from corrembed.embed import forward as embed_module
from corrembed.embed.cache import EmbeddingCache, embedding_identity, identity_key
from corrembed.embed.store import read_embeddings
from corrembed.models import build_transform, parse_model_spec
from corrembed.storage import file_sha256
from test_embed_shards import ForwardCounter

SPEC = {"arch": "mobilenet_v3_small", "weights": None, "transforms": {"resize_size": 72, "crop_size": 64}}


def _make_images(folder, count, seed):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(count):
        path = folder / f"i{seed}-{k:02d}.png"
        Image.fromarray(rng.integers(0, 256, (int(rng.integers(40, 90)), 70, 3), dtype=np.uint8)).save(path)
        rows.append({"item_id": f"s{seed}-{k}", "image": str(path), "sha256": file_sha256(path)})
    return pl.DataFrame(rows)


def _run(images, out, cache, **kwargs):
    kwargs.setdefault("batch_size", 4)
    return embed_images(
        images,
        SPEC,
        out,
        model_name="mnv3",
        torch_home=None,
        device="cpu",
        cache_dir=cache,
        progress=lambda line: None,
        **kwargs,
    )


@pytest.fixture()
def base(tmp_path):
    return _make_images(tmp_path / "img", 20, seed=0)


def test_growth_by_k_images_embeds_only_those(base, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = ForwardCounter(monkeypatch)
    meta = _run(base, tmp_path / "out", cache)
    assert first.images == 20 and meta["n_embedded"] == 20
    before = read_embeddings(tmp_path / "out")

    added = _make_images(tmp_path / "img", 3, seed=1)
    grown = pl.concat([base.head(10), added, base.tail(10)])  # new images anywhere in the order
    counter = ForwardCounter(monkeypatch)
    meta = _run(grown, tmp_path / "out", cache)
    assert counter.images == 3 and meta["n_embedded"] == 3 and meta["n_from_cache"] == 20
    after = read_embeddings(tmp_path / "out")
    assert list(after.item_ids) == grown["item_id"].to_list()
    old_rows = np.r_[0:10, 13:23]
    assert np.array_equal(after.vectors[old_rows], before.vectors)  # reused bit for bit
    fresh = _run(grown, tmp_path / "fresh", tmp_path / "fresh_cache")
    assert fresh["n_embedded"] == 23
    np.testing.assert_allclose(after.vectors, read_embeddings(tmp_path / "fresh").vectors, rtol=1e-5, atol=1e-6)


def test_changed_bytes_re_embed_and_duplicates_embed_once(base, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _run(base, tmp_path / "out", cache)
    before = read_embeddings(tmp_path / "out").vectors
    changed = base["image"][4]
    Image.fromarray(np.full((60, 70, 3), 200, np.uint8)).save(changed)
    table = base.with_columns(sha256=pl.Series([file_sha256(p) for p in base["image"]]))
    duplicate = table.head(1).with_columns(item_id=pl.lit("copy-of-first"))
    counter = ForwardCounter(monkeypatch)
    meta = _run(pl.concat([table, duplicate]), tmp_path / "out", cache)
    assert counter.images == 1 and meta["n_embedded"] == 1
    after = read_embeddings(tmp_path / "out").vectors
    assert not np.allclose(after[4], before[4], rtol=1e-2, atol=0)
    assert np.array_equal(np.delete(after[:20], 4, axis=0), np.delete(before, 4, axis=0))
    assert np.array_equal(after[20], after[0])


def test_run_settings_and_deleted_outputs_re_embed_nothing(base, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _run(base, tmp_path / "out", cache)
    shutil.rmtree(tmp_path / "out")
    built = []
    monkeypatch.setattr(embed_module, "build_model", lambda *a, **k: built.append(1))
    counter = ForwardCounter(monkeypatch)
    meta = _run(base, tmp_path / "out", cache, batch_size=7, num_workers=1, shards=2, channels_last=True)
    assert counter.images == 0 and built == [] and meta["n_from_cache"] == 20
    assert meta["images_per_second"] is None
    assert pq.read_table(tmp_path / "out" / "part-00000.parquet").num_rows == 20


def test_identity_changes_get_their_own_cache(base, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    fp32 = _run(base.head(6), tmp_path / "a", cache)
    counter = ForwardCounter(monkeypatch)
    bf16 = _run(base.head(6), tmp_path / "b", cache, precision="bf16")
    assert counter.images == 6 and bf16["identity_key"] != fp32["identity_key"]
    assert bf16["precision"] == "bf16" and fp32["precision"] == "fp32"
    a, b = read_embeddings(tmp_path / "a").vectors, read_embeddings(tmp_path / "b").vectors
    assert not np.array_equal(a, b)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.98  # bf16 autocast: close to fp32, not equal

    def key(spec, **kwargs):
        parsed = parse_model_spec(spec, model_name="m")
        options = {"precision": "fp32", "decoder": "pil", **kwargs}
        return identity_key(embedding_identity(parsed, build_transform(parsed)[1], **options))

    assert key(SPEC) == fp32["identity_key"]
    assert key(SPEC, decoder="torchvision") != key(SPEC)
    assert key({**SPEC, "transforms": {"resize_size": 72, "crop_size": 56}}) != key(SPEC)
    assert key({**SPEC, "layer": "output"}) != key(SPEC)
    checkpoint = tmp_path / "m.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), checkpoint)
    first = key({**SPEC, "weights": str(checkpoint)})
    assert key({**SPEC, "weights": str(checkpoint)}) == first
    torch.save(torch.nn.Linear(2, 3).state_dict(), checkpoint)  # same path, other content
    assert key({**SPEC, "weights": str(checkpoint)}) != first


def test_cache_fetch_across_segments_and_row_groups(tmp_path):
    identity = {"test": 1}
    cache = EmbeddingCache(tmp_path, identity)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((700, 5)).astype(np.float32)
    shas = [f"h{k}" for k in range(700)]
    with cache.writer(5, segment_rows=300) as writer:
        for start in range(0, 700, 50):
            writer.add(shas[start : start + 50], vectors[start : start + 50])
    assert len(sorted(cache.directory.glob("seg-*.parquet"))) == 3
    reopened = EmbeddingCache(tmp_path, identity)
    order = rng.permutation(700)[:400]
    assert np.array_equal(reopened.fetch([shas[i] for i in order]), vectors[order])
    assert reopened.missing(["h3", "new", "h5", "new"]) == ["new"]

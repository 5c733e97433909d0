"""Sharded extraction: shard ranges, split + merge equals the unsharded run bit for bit (fp32,
CPU), merge refuses shards that do not fit the catalogue, and a job that fails after k batches
leaves nothing complete-looking while its finished batches are reused by the rerun.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from corrembed import models
from corrembed.embed import RunSettings, embed_images, embed_shard, merge_embedding_shards, shard_meta_path
from corrembed.embed.cache import EmbeddingCache
from corrembed.embed.shards import SHARD_GRANULE, parse_shard_id, shard_bounds, shard_id
from corrembed.errors import CorrEmbedError

#: The real forward, captured before any test patches it (counters must not stack).
REAL_FORWARD = models.FeatureExtractor.forward
SPEC = {"arch": "resnet18", "weights": None, "transforms": {"resize_size": 72, "crop_size": 64}}
#: The same, parsed once (what embed_shard takes).
PARSED = models.parse_model_spec(SPEC, model_name="r18")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> pl.DataFrame:
    """24 generated JPEGs of varied sizes (some grayscale)."""
    folder = tmp_path_factory.mktemp("shard_jpegs")
    rng = np.random.default_rng(1)
    rows = []
    for k in range(24):
        h, w = int(rng.integers(50, 140)), int(rng.integers(50, 140))
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        if k % 5 == 2:
            image = image.convert("L")
        path = folder / f"s{k:02d}.jpg"
        image.save(path, quality=85)
        rows.append({"item_id": f"item-{k // 2}", "image": str(path)})
    return pl.DataFrame(rows)


class ForwardCounter:
    """Counts images through FeatureExtractor.forward; optionally fails after ``fail_after`` calls."""

    def __init__(self, monkeypatch, fail_after: int | None = None):
        self.images = 0
        self.calls = 0
        original = REAL_FORWARD
        counter = self

        def forward(module, x):
            if fail_after is not None and counter.calls >= fail_after:
                raise RuntimeError("simulated crash")
            counter.calls += 1
            counter.images += x.shape[0]
            return original(module, x)

        monkeypatch.setattr(models.FeatureExtractor, "forward", forward)


def _embedding_bytes(path) -> tuple[list, list, bytes]:
    table = pq.read_table(path)
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    return table.column("item_id").to_pylist(), table.column("image").to_pylist(), flat.tobytes()


@given(st.integers(0, 5000), st.integers(1, 12))
def test_shard_bounds_cover_rows_in_order(n_rows, n_shards):
    bounds = shard_bounds(n_rows, n_shards)
    assert len(bounds) == n_shards
    assert bounds[0][0] == 0 and bounds[-1][1] == n_rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(start <= stop for start, stop in bounds)
    sizes = [stop - start for start, stop in bounds]
    if n_rows >= 4 * SHARD_GRANULE * n_shards:
        assert all(start % SHARD_GRANULE == 0 for start, _ in bounds)
        assert max(sizes) - min(sizes) <= 2 * SHARD_GRANULE
    else:
        assert max(sizes) - min(sizes) <= 1
        assert min(sizes) > 0 or n_rows < n_shards


def test_shard_ids():
    assert shard_id(1, 4) == "00001-of-00004" and parse_shard_id("00001-of-00004") == (1, 4)
    for bad in ("1-of-4", "00004-of-00004", "00001-of-00004.parquet"):
        with pytest.raises(ValueError):
            parse_shard_id(bad)


def test_split_and_merge_equal_unsharded_bit_for_bit(catalogue, tmp_path):
    whole = embed_images(
        catalogue,
        SPEC,
        tmp_path / "one",
        model_name="r18",
        torch_home=None,
        batch_size=4,
        device="cpu",
        progress=lambda line: None,
    )
    split = embed_images(
        catalogue,
        SPEC,
        tmp_path / "three",
        model_name="r18",
        torch_home=None,
        batch_size=4,
        device="cpu",
        shards=3,
        progress=lambda line: None,
    )
    one = _embedding_bytes(tmp_path / "one" / "part-00000.parquet")
    three = _embedding_bytes(tmp_path / "three" / "part-00000.parquet")
    assert one[0] == three[0] == catalogue["item_id"].to_list()
    assert one[1] == three[1] == catalogue["image"].to_list()
    assert one[2] == three[2] and len(one[2]) == 24 * 512 * 4
    assert whole["n_images"] == split["n_images"] == 24 and split["shards"] == 3
    assert [(r["start"], r["stop"]) for r in split["shard_records"]] == [(0, 8), (8, 16), (16, 24)]
    assert whole["identity_key"] == split["identity_key"]


def test_merge_refuses_shards_that_do_not_fit(catalogue, tmp_path):
    cache = tmp_path / "cache"
    paths = [tmp_path / f"shard-{shard_id(k, 2)}.parquet" for k in range(2)]
    for k, path in enumerate(paths):
        embed_shard(
            catalogue,
            PARSED,
            path,
            torch_home=None,
            cache_dir=cache,
            shard=(k, 2),
            settings=RunSettings(batch_size=6, device="cpu"),
            progress=lambda line: None,
        )
    with pytest.raises(CorrEmbedError, match="expected 0 of 2"):
        merge_embedding_shards(catalogue, paths[::-1], tmp_path / "out")
    grown = pl.concat([catalogue, catalogue.head(2).with_columns(pl.lit("new").alias("item_id"))])
    with pytest.raises(CorrEmbedError, match="re-run the embed jobs"):
        merge_embedding_shards(grown, paths, tmp_path / "out")
    assert not (tmp_path / "out" / "meta.json").exists()
    assert not (tmp_path / "out" / "part-00000.parquet").exists()
    meta = merge_embedding_shards(catalogue, paths, tmp_path / "out")
    assert meta["n_images"] == 24 and meta["n_embedded"] == 24 and meta["n_from_cache"] == 0


def test_more_shards_than_images(catalogue, tmp_path):
    images = catalogue.head(2)
    meta = embed_images(
        images,
        SPEC,
        tmp_path,
        model_name="r18",
        torch_home=None,
        batch_size=4,
        device="cpu",
        shards=3,
        progress=lambda line: None,
    )
    assert meta["n_images"] == 2 and meta["dim"] == 512
    assert [(r["start"], r["stop"]) for r in meta["shard_records"]] == [(0, 1), (1, 1), (1, 2)]
    assert pq.read_table(tmp_path / "part-00000.parquet").num_rows == 2


def test_failed_job_leaves_no_complete_looking_output_and_rerun_redoes_only_the_rest(catalogue, tmp_path, monkeypatch):
    settings = RunSettings(batch_size=4, device="cpu", segment_rows=8)
    reference = tmp_path / "reference.parquet"
    embed_shard(
        catalogue,
        PARSED,
        reference,
        torch_home=None,
        cache_dir=tmp_path / "c0",
        settings=settings,
        progress=lambda line: None,
    )

    shard = tmp_path / "shards" / "shard-00000-of-00001.parquet"
    cache = tmp_path / "cache"
    crash = ForwardCounter(monkeypatch, fail_after=3)  # 3 batches of 4 succeed, the 4th fails
    with pytest.raises(RuntimeError, match="simulated crash"):
        embed_shard(
            catalogue, PARSED, shard, torch_home=None, cache_dir=cache, settings=settings, progress=lambda line: None
        )
    assert crash.images == 12
    # Nothing that looks like a finished shard; only complete cache segments (no temp files).
    assert not shard.exists() and not shard_meta_path(shard).exists()
    assert [p.name for p in shard.parent.iterdir()] == []
    (key_dir,) = [p for p in cache.iterdir()]
    assert all(not p.name.startswith(".") for p in key_dir.iterdir())
    finished = len(EmbeddingCache(cache, json.loads((key_dir / "identity.json").read_text())))
    # The batch in flight when the crash came (one batch of look-ahead) may be lost, no more.
    assert finished in (8, 12)

    rerun = ForwardCounter(monkeypatch)
    meta = embed_shard(
        catalogue, PARSED, shard, torch_home=None, cache_dir=cache, settings=settings, progress=lambda line: None
    )
    assert rerun.images == 24 - finished
    assert meta["n_embedded"] == 24 - finished and meta["n_from_cache"] == finished
    assert _embedding_bytes(shard) == _embedding_bytes(reference)

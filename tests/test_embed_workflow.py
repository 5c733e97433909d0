"""Sharded, cached embedding through the real ``snakemake`` command (tiny demo catalogue, CPU).

shards: 2 runs two embed jobs and a merge; changing the shard count or batch size later re-uses
every cached embedding (0 forward passes, identical bytes); changing precision re-embeds.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from workflow_runner import check, demo_config, random_model, snakemake, write_config

pytestmark = pytest.mark.slow

TARGET = "results/embeddings/mnv3/part-00000.parquet"


def _config(**embed):
    return demo_config(
        n_items=24,
        n_users=20,
        seed=2,
        weightings=None,
        embed={"batch_size": 4, "num_workers": 0, "device": "cpu", "threads": 1, **embed},
        models={"mnv3": random_model("mobilenet_v3_small", 72, 64)},
    )


def _meta(directory):
    return json.loads((directory / "results/embeddings/mnv3/meta.json").read_text())


def _vectors(directory):
    return pq.read_table(directory / TARGET).column("embedding").combine_chunks().flatten().to_numpy()


def test_shards_merge_cache_and_precision(tmp_path):
    write_config(tmp_path, _config(shards=2))
    check(snakemake(tmp_path, "--cores", "2", TARGET))
    shards = sorted(p.name for p in (tmp_path / "results/embeddings/mnv3/shards").iterdir())
    assert shards == [
        "shard-00000-of-00002.json",
        "shard-00000-of-00002.parquet",
        "shard-00001-of-00002.json",
        "shard-00001-of-00002.parquet",
    ]
    first = _meta(tmp_path)
    n = first["n_images"]
    assert first["shards"] == 2 and first["n_embedded"] == n and n >= 24
    assert (tmp_path / "results/cache/embeddings" / first["identity_key"] / "identity.json").exists()
    before = _vectors(tmp_path)
    # Run settings alone change nothing: Snakemake has nothing to do.
    write_config(tmp_path, _config(shards=2, batch_size=7))
    dry = check(snakemake(tmp_path, "--cores", "1", "-n", TARGET))
    assert "Nothing to be done" in dry.stdout + dry.stderr

    write_config(tmp_path, _config(shards=3, batch_size=7))
    check(snakemake(tmp_path, "--cores", "2", TARGET))
    regrouped = _meta(tmp_path)
    assert regrouped["shards"] == 3 and regrouped["n_embedded"] == 0 and regrouped["n_from_cache"] == n
    assert regrouped["identity_key"] == first["identity_key"]
    assert _vectors(tmp_path).tobytes() == before.tobytes()

    write_config(tmp_path, _config(shards=3, precision="bf16"))
    check(snakemake(tmp_path, "--cores", "2", TARGET))
    bf16 = _meta(tmp_path)
    assert bf16["precision"] == "bf16" and bf16["n_embedded"] == n
    assert bf16["identity_key"] != first["identity_key"]

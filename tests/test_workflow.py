"""The whole workflow through the real ``snakemake`` command, on a tiny generated catalogue.

Random-init torchvision models on CPU (no weights to download). Checks every documented
output and its columns, and that a second run has nothing to do.
"""

from __future__ import annotations

import json

import polars as pl
import pyarrow.parquet as pq
import pytest

from corrembed.deployment.recommend import SUMMARY_DEPLOYMENT_COLUMNS
from corrembed.summary.table import SUMMARY_COLUMNS
from workflow_runner import check, demo_config, random_model, snakemake, write_config

pytestmark = pytest.mark.slow

TINY = demo_config(
    n_items=48,
    n_users=40,
    seed=3,
    embed={"batch_size": 16, "num_workers": 0, "device": "auto", "threads": 2},
    models={
        "resnet18_random": {"arch": "resnet18", "weights": None},
        "mnv3_random": random_model("mobilenet_v3_small", 128, 112),
    },
    scoring={"anchors": "all", "bootstrap": 200},
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_workflow")
    write_config(directory, TINY)
    first = check(snakemake(directory, "--cores", "2"))
    return directory, first


def test_all_outputs_exist_with_documented_columns(tiny_run):
    directory, _ = tiny_run
    results = directory / "results"
    summary = pl.read_csv(results / "summary.csv")
    # The deployment study is on by default: its recommendation columns follow the documented ones.
    assert tuple(summary.columns) == SUMMARY_COLUMNS + SUMMARY_DEPLOYMENT_COLUMNS
    assert summary.height == 4  # 2 models x 2 weightings
    assert set(summary["weighting"]) == {"binary", "entropy"}
    assert summary.filter(pl.col("headline"))["weighting"].unique().to_list() == ["entropy"]
    assert summary["n_items"].unique().to_list() == [48]
    assert summary["corrembed"].is_finite().all()
    assert (summary["ci_low"] <= summary["corrembed"]).all()
    assert (summary["corrembed"] <= summary["ci_high"]).all()
    assert summary["imagenet_acc1"].is_null().all()  # random init has no ImageNet figures

    for plot in ("corrembed_vs_imagenet.png", "corrembed_vs_imagenet.svg"):
        assert (results / "plots" / plot).stat().st_size > 1000

    for model, dim in (("resnet18_random", 512), ("mnv3_random", 1024)):
        shard = pq.read_table(results / "embeddings" / model / "part-00000.parquet")
        assert shard.column_names == ["item_id", "image", "embedding"]
        assert str(shard.schema.field("embedding").type) == f"fixed_size_list<element: float>[{dim}]"
        meta = json.loads((results / "embeddings" / model / "meta.json").read_text())
        for key in ("model", "arch", "weights", "layer", "dim", "transforms", "device", "dtype", "images_per_second"):
            assert key in meta, key
        assert meta["dim"] == dim

    categories = pl.read_csv(results / "tags" / "entropy" / "categories.csv")
    assert {"category", "n_values", "entropy", "normalized_entropy", "weight", "source"} <= set(categories.columns)
    assert set(categories["source"]) == {"interactions"}
    score = json.loads((results / "scores" / "resnet18_random" / "entropy.json").read_text())
    assert score["n_anchors"] == 48
    per_anchor = pl.read_parquet(results / "scores" / "resnet18_random" / "entropy.per_anchor.parquet")
    assert per_anchor.height == 48
    images = pl.read_parquet(results / "catalogue" / "images.parquet")
    assert images["item_id"].n_unique() == 48
    for log in ("ingest.log", "summary.log", "plots.log", "embed/mnv3_random.log"):
        assert (directory / "logs" / log).exists(), log


def test_second_run_has_nothing_to_do(tiny_run):
    directory, _ = tiny_run
    again = check(snakemake(directory, "--cores", "2", "--dry-run"))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_stops_at_once_naming_the_key(tmp_path):
    write_config(tmp_path, {**TINY, "scoring": {"anchors": "some", "bootsrap": 3}})
    result = snakemake(tmp_path, "--cores", "1", "--dry-run")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "bootsrap" in output
    assert not (tmp_path / "results").exists()

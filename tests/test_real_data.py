"""Real data: the workflow on a subset of ../shared/data/fashion-product-224 (human tags).

Runs the real ``snakemake`` command with the configuration of
``examples/fashion-product-224.yaml`` on a seeded subset of the catalogue: the pretrained
mobilenet_v2 checkpoint (../shared/weights, mean=std=0.5) and the same architecture with random
weights. The pretrained model must score clearly above the random one, which must score above the
controls; the controls must be within +-0.03 of 0 (include_self: false).
"""

from __future__ import annotations

import polars as pl
import pytest
import yaml

from conftest import REPO
from workflow_runner import check, snakemake, write_config

pytestmark = pytest.mark.slow

N_ITEMS = 800
CONTROLS = ("control_random", "control_shuffled_embeddings", "control_shuffled_tags")


@pytest.fixture(scope="module")
def real_summary(tmp_path_factory, fashion_dir, mobilenet_checkpoint):
    directory = tmp_path_factory.mktemp("real_data")
    manifest = pl.read_csv(fashion_dir / "tags.csv", infer_schema_length=0)
    subset = manifest.sample(N_ITEMS, seed=7, shuffle=True)
    subset.write_csv(directory / "subset.csv")
    config = yaml.safe_load((REPO / "examples" / "fashion-product-224.yaml").read_text())
    config["catalogue"]["manifest"] = str(directory / "subset.csv")
    config["catalogue"]["image_template"] = str(fashion_dir / "images" / "{id}.jpg")
    config["models"]["mobilenet_v2_coral"]["weights"] = str(mobilenet_checkpoint)
    config["scoring"]["anchors"] = "all"
    write_config(directory, config)
    check(snakemake(directory, "--cores", "2"))
    return pl.read_csv(directory / "results" / "summary.csv")


def test_pretrained_beats_random_init_beats_controls(real_summary):
    headline = real_summary.filter(pl.col("headline"))
    assert headline["weighting"].unique().to_list() == ["binary"]  # no interactions log
    scores = dict(zip(headline["model"], headline["corrembed"]))
    print("\nreal-data CorrEmbed (binary tags, all anchors):", scores)
    print(real_summary.select("model", "weighting", "corrembed", "ci_low", "ci_high",
                              "allpairs_pearson", "anchor_spearman", "allpairs_spearman",
                              *CONTROLS))
    pretrained, random_init = scores["mobilenet_v2_coral"], scores["mobilenet_v2_random"]
    assert pretrained > random_init + 0.05
    pretrained_row = headline.filter(pl.col("model") == "mobilenet_v2_coral")
    random_row = headline.filter(pl.col("model") == "mobilenet_v2_random")
    assert pretrained_row["ci_low"][0] > random_row["ci_high"][0]  # intervals do not overlap
    for row in headline.iter_rows(named=True):
        for control in CONTROLS:
            assert abs(row[control]) < 0.03, (row["model"], control, row[control])
            assert row["corrembed"] > row[control] + 0.03


def test_every_real_item_was_scored(real_summary):
    assert real_summary["n_items"].unique().to_list() == [N_ITEMS]
    assert real_summary["n_anchors"].unique().to_list() == [N_ITEMS]
    assert real_summary["n_rejected"].unique().to_list() == [0]

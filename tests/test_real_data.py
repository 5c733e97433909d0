"""Real data: the workflow on a subset of ../shared/data/fashion-product-224 (human tags).

Runs the real ``snakemake`` command with the configuration of
``examples/fashion-product-224.yaml`` on a seeded subset of the catalogue: the pretrained
mobilenet_v2 checkpoint (../shared/weights, mean=std=0.5) and the timm EfficientNet-Lite0
checkpoint, each with its random-init twin (the example's Lite1/Lite2 are left out to keep the
test short). Each pretrained model must score clearly above its random twin, which must score above
the controls; the controls must be within +-0.03 of 0 (include_self: false).
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
    lite0 = config["models"]["efficientnet_lite0"]
    lite0["weights"] = str(mobilenet_checkpoint.parent / "tf_efficientnet_lite0_imagenet.safetensors")
    keep = ("mobilenet_v2_coral", "mobilenet_v2_random", "efficientnet_lite0")
    config["models"] = {name: config["models"][name] for name in keep}
    config["models"]["efficientnet_lite0_random"] = {"source": "timm", "arch": "tf_efficientnet_lite0", "weights": None}
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
    pairs = (("mobilenet_v2_coral", "mobilenet_v2_random"), ("efficientnet_lite0", "efficientnet_lite0_random"))
    for pretrained, random_init in pairs:
        assert scores[pretrained] > scores[random_init] + 0.05
        pretrained_row = headline.filter(pl.col("model") == pretrained)
        random_row = headline.filter(pl.col("model") == random_init)
        assert pretrained_row["ci_low"][0] > random_row["ci_high"][0]  # intervals do not overlap
    sources = dict(zip(headline["model"], headline["source"]))
    assert sources["efficientnet_lite0"] == "timm" and sources["mobilenet_v2_coral"] == "torchvision"
    kinds = dict(zip(headline["model"], headline["imagenet_acc1_kind"].fill_null("")))
    assert kinds["efficientnet_lite0"] == "config" and kinds["efficientnet_lite0_random"] == ""
    for row in headline.iter_rows(named=True):
        for control in CONTROLS:
            assert abs(row[control]) < 0.03, (row["model"], control, row[control])
            assert row["corrembed"] > row[control] + 0.03


def test_every_real_item_was_scored(real_summary):
    assert real_summary["n_items"].unique().to_list() == [N_ITEMS]
    assert real_summary["n_anchors"].unique().to_list() == [N_ITEMS]
    assert real_summary["n_rejected"].unique().to_list() == [0]

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
def real_run(tmp_path_factory, fashion_dir, mobilenet_checkpoint):
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
    # One layer sweep keeps the test short (the example sweeps three models).
    for name in ("mobilenet_v2_random", "efficientnet_lite0"):
        config["models"][name].pop("layers", None)
    config["scoring"]["anchors"] = "all"
    write_config(directory, config)
    check(snakemake(directory, "--cores", "2"))
    return directory


@pytest.fixture(scope="module")
def real_summary(real_run):
    return pl.read_csv(real_run / "results" / "summary.csv")


@pytest.fixture(scope="module")
def real_layer_sweep(real_run):
    return pl.read_csv(real_run / "results" / "diagnostics" / "models" / "mobilenet_v2_coral" / "layers.csv")


def test_pretrained_beats_random_init_beats_controls(real_summary):
    headline = real_summary.filter(pl.col("headline"))
    assert headline["weighting"].unique().to_list() == ["binary"]  # no interactions log
    scores = dict(zip(headline["model"], headline["corrembed"]))
    print("\nreal-data CorrEmbed (binary tags, all anchors):", scores)
    print(
        real_summary.select(
            "model",
            "weighting",
            "corrembed",
            "ci_low",
            "ci_high",
            "allpairs_pearson",
            "anchor_spearman",
            "allpairs_spearman",
            *CONTROLS,
        )
    )
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


def test_layer_sweep_on_real_data(real_summary, real_layer_sweep):
    sweep = real_layer_sweep.filter(pl.col("weighting") == "binary")
    print("\nreal-data layer sweep (mobilenet_v2_coral, binary):")
    print(sweep.select("layer", "relative_depth", "dim", "corrembed", "ci_low", "ci_high"))
    assert sweep["relative_depth"].is_sorted() and sweep.height == 9
    # The headline layer's row is the headline score (same embeddings, items, anchors).
    headline = real_summary.filter((pl.col("model") == "mobilenet_v2_coral") & (pl.col("weighting") == "binary"))
    row = sweep.filter(pl.col("headline")).row(0, named=True)
    assert row["layer"] == "penultimate"
    assert row["corrembed"] == pytest.approx(headline["corrembed"][0], abs=1e-6)
    # Early blocks see edges and colour, not product type: a pretrained network's first blocks
    # agree far less with the tags than its last ones.
    scores = dict(zip(sweep["layer"], sweep["corrembed"]))
    assert scores["features.2"] < scores["penultimate"] - 0.1

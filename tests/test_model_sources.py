"""Model sources beside torchvision: timm, open_clip, Hugging Face (corrembed.models).

Oracles: each library's own preprocessing and forward functions (timm's create_transform and
forward_head(pre_logits=True), open_clip's eval transform and encode_image, the image
processor and get_image_features), called independently on real product photos; the
published accuracy tables read with the csv module; real ImageNet weights in ../shared/weights.
Models other than the real-weights checkpoints are tiny random-init ones built offline here.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from conftest import SHARED, require_shared
from corrembed.embed import embed_images
from corrembed.embed.cache import embedding_identity, identity_key
from corrembed.errors import ConfigError, WeightsUnavailableError
from corrembed.models import (
    MissingExtraError,
    build_extractor,
    build_model,
    build_transform,
    imagenet_acc1_kind,
    imagenet_metadata,
    parse_model_spec,
)
from corrembed.models.checks import check_model_spec
from corrembed.models.weights import ensure_weights

timm = pytest.importorskip("timm")
open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

WEIGHTS = SHARED / "weights"
IMAGES = SHARED / "data" / "fashion-product-224" / "images"
LITES = {0: 75.1, 1: 76.7, 2: 77.6}


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    """Six real product photos."""
    require_shared(IMAGES)
    return sorted(IMAGES.glob("*.jpg"))[:6]


@pytest.fixture(scope="module")
def open_clip_dir(tmp_path_factory) -> Path:
    """A tiny random-init open_clip model saved as a ``local-dir:`` folder (config + safetensors)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("open_clip") / "tiny"
    folder.mkdir()
    model_cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 40, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
    }
    preprocess_cfg = {"mean": [0.48, 0.46, 0.41], "std": [0.27, 0.26, 0.28], "interpolation": "bicubic"}
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg})
    )
    torch.manual_seed(1)
    save_file(open_clip.CLIP(**model_cfg).state_dict(), str(folder / "open_clip_model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    """A tiny random-init transformers CLIPModel + CLIPImageProcessor saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("hf") / "tiny-clip"
    config = transformers.CLIPConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "vocab_size": 64,
            "max_position_embeddings": 16,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "image_size": 40,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(2)
    transformers.CLIPModel(config).save_pretrained(folder)
    transformers.CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 40, "width": 40}).save_pretrained(
        folder
    )
    return folder


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _images_table(paths: list[Path]) -> pl.DataFrame:
    return pl.DataFrame({"item_id": [p.stem for p in paths], "image": [str(p) for p in paths]})


# --------------------------------------------------------------------------- start-up stops


@pytest.mark.parametrize(
    ("source", "package", "extra"),
    [("timm", "timm", "timm"), ("open_clip", "open_clip", "open_clip"), ("huggingface", "transformers", "huggingface")],
)
def test_missing_extra_names_the_install_command(monkeypatch, source, package, extra):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(MissingExtraError) as err:
        parse_model_spec({"source": source, "arch": "x/y", "weights": None}, model_name="m1")
    assert "'m1'" in str(err.value) and f"pip install 'corrembed[{extra}]'" in str(err.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"source": "timm", "arch": "tf_efficientnet_lite9", "weights": None},
            ["tf_efficientnet_lite0", "timm.list_models"],
        ),
        ({"source": "open_clip", "arch": "ViT-B-33", "weights": None}, ["ViT-B-32", "open_clip.list_models"]),
        ({"source": "timmm", "arch": "x", "weights": None}, ["did you mean 'timm'", "torchvision, timm, open_clip"]),
    ],
    ids=["timm", "open_clip", "source"],
)
def test_unknown_model_name_lists_close_matches(spec, expected):
    with pytest.raises(ConfigError) as err:
        check_model_spec(spec, model_name="typo")
    assert "'typo'" in str(err.value)
    for text in expected:
        assert text in str(err.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"source": "timm", "arch": "convnext_tiny.fb_in99k", "weights": "pretrained"},
            ["'fb_in99k'", "fb_in22k_ft_in1k", "fb_in1k"],
        ),
        (
            {"source": "open_clip", "arch": "ViT-B-32", "weights": "openai2"},
            ["'openai2'", "openai", "laion2b_s34b_b79k"],
        ),
    ],
    ids=["timm", "open_clip"],
)
def test_unknown_pretrained_tag_lists_valid_tags(spec, expected):
    with pytest.raises(ConfigError) as err:
        check_model_spec(spec, model_name="tag")
    for text in expected:
        assert text in str(err.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"source": "timm", "arch": "test_efficientnet", "weights": None, "layer": "embedding"}, "block:N"),
        ({"source": "timm", "arch": "test_efficientnet", "weights": None, "layer": "block:40"}, "block:0"),
        ({"source": "open_clip", "arch": "ViT-B-32", "weights": None, "layer": "cls"}, "pre_projection"),
        ({"source": "open_clip", "arch": "RN50", "weights": "openai", "layer": "pre_projection"}, "ModifiedResNet"),
        (
            {"source": "huggingface", "arch": "org/model", "weights": "pretrained", "layer": "penultimate"},
            "mean_tokens",
        ),
        (
            {"source": "timm", "arch": "test_efficientnet", "weights": None, "trust_remote_code": True},
            "unknown key 'trust_remote_code'",
        ),
    ],
    ids=["timm-name", "timm-index", "open_clip-name", "open_clip-rn50", "huggingface-name", "wrong-key"],
)
def test_layer_or_key_not_available_for_the_source(spec, expected):
    with pytest.raises(ConfigError, match="'lay'") as err:
        check_model_spec(spec, model_name="lay")
    assert expected in str(err.value)


def test_embedding_layer_needs_a_clip_style_hf_model(tmp_path):
    folder = tmp_path / "vit"
    transformers.ViTModel(
        transformers.ViTConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=8,
        )
    ).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    with pytest.raises(ConfigError, match="get_image_features"):
        check_model_spec({"source": "huggingface", "arch": str(folder), "weights": "pretrained"}, model_name="v")
    record = check_model_spec(
        {"source": "huggingface", "arch": str(folder), "weights": "pretrained", "layer": "cls"}, model_name="v"
    )
    assert record["transforms"]["resize_mode"] == "squash"


def test_remote_code_is_never_trusted_by_default(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "corrembed-custom", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}})
    )
    with pytest.raises(ConfigError, match="trust_remote_code: true"):
        check_model_spec({"source": "huggingface", "arch": str(folder), "weights": "pretrained"}, model_name="c")


# --------------------------------------------------------------------------- timm, real weights


@pytest.mark.parametrize("n", sorted(LITES))
def test_timm_checkpoints_load_strictly_and_match_timms_own_penultimate(n, photos, tmp_path):
    checkpoint = require_shared(WEIGHTS / f"tf_efficientnet_lite{n}_imagenet.safetensors")
    arch = f"tf_efficientnet_lite{n}"
    spec = {"source": "timm", "arch": arch, "weights": str(checkpoint)}
    assert check_model_spec(spec, model_name="lite")["kind"] == "checkpoint"
    meta = embed_images(
        _images_table(photos), spec, tmp_path, model_name="lite", torch_home=None, device="cpu", batch_size=4
    )
    ours = pl.read_parquet(tmp_path / "part-00000.parquet")["embedding"].to_numpy()
    ours = np.stack(ours) if ours.dtype == object else ours
    # timm alone: its own model, checkpoint loading, data config and transform.
    model = timm.create_model(arch, pretrained=False, checkpoint_path=str(checkpoint)).eval()
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model), is_training=False)
    with torch.inference_mode():
        x = torch.stack([transform(_rgb(p)) for p in photos])
        expected = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    assert ours.shape == (len(photos), 1280) and meta["dim"] == 1280
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)
    # The checkpoint is a real classifier: confident, varied top-1 classes on the photos.
    assert model(x).softmax(-1).max(-1).values.mean() > 0.3


def test_timm_checkpoint_of_another_arch_names_mismatched_keys():
    checkpoint = require_shared(WEIGHTS / "tf_efficientnet_lite0_imagenet.safetensors")
    with pytest.raises(ConfigError) as err:
        check_model_spec(
            {"source": "timm", "arch": "tf_efficientnet_lite2", "weights": str(checkpoint)}, model_name="l"
        )
    assert "does not fit timm tf_efficientnet_lite2" in str(err.value) and "shape mismatch" in str(err.value)


def test_timm_block_layer_is_pooled_forward_intermediates(photos):
    spec = parse_model_spec(
        {"source": "timm", "arch": "test_efficientnet", "weights": None, "layer": "block:2"}, model_name="t"
    )
    model = build_model(spec)
    transform, _ = build_transform(spec)
    x = torch.stack([transform(_rgb(p)) for p in photos[:2]])
    with torch.inference_mode():
        expected = model.forward_intermediates(x, indices=[2], intermediates_only=True)[0].mean(dim=(2, 3))
        torch.testing.assert_close(build_extractor(spec, model)(x), expected, rtol=0, atol=0)


# --------------------------------------------------------------------------- accuracy tables


def _csv_rows(name: str) -> list[dict]:
    path = Path(__file__).resolve().parents[1] / "workflow" / "corrembed" / "data" / name
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_timm_accuracy_from_the_published_table_by_name_and_tag():
    row = next(r for r in _csv_rows("timm-results-imagenet.csv") if r["model"] == "tf_efficientnet_lite0.in1k")
    spec = parse_model_spec(
        {"source": "timm", "arch": "tf_efficientnet_lite0", "weights": "pretrained"}, model_name="model"
    )
    values = imagenet_metadata(spec)
    assert values["acc1"] == float(row["top1"]) and values["acc5"] == float(row["top5"])
    assert imagenet_acc1_kind(spec) == "supervised"
    checkpoint = {
        "source": "timm",
        "arch": "tf_efficientnet_lite0",
        "weights": str(WEIGHTS / "x.safetensors"),
        "imagenet": {"acc1": 75.1},
    }
    assert imagenet_metadata(parse_model_spec(checkpoint, model_name="c", check_files=False))["acc1"] == 75.1
    assert imagenet_acc1_kind(parse_model_spec(checkpoint, model_name="c", check_files=False)) == "config"


def test_open_clip_accuracy_is_zero_shot_from_its_table():
    row = next(
        r for r in _csv_rows("open_clip-zeroshot-results.csv") if (r["name"], r["pretrained"]) == ("ViT-B-32", "openai")
    )
    spec = parse_model_spec({"source": "open_clip", "arch": "ViT-B-32", "weights": "openai"}, model_name="model")
    assert imagenet_metadata(spec)["acc1"] == pytest.approx(100 * float(row["ImageNet 1k"]))
    assert imagenet_acc1_kind(spec) == "zero-shot"
    assert (
        imagenet_acc1_kind(
            parse_model_spec({"source": "open_clip", "arch": "ViT-B-32", "weights": None}, model_name="model")
        )
        == ""
    )


# --------------------------------------------------------------------------- open_clip, Hugging Face


def test_open_clip_preprocessing_and_embedding_equal_open_clips_own(open_clip_dir, photos):
    spec = parse_model_spec(
        {"source": "open_clip", "arch": "tiny", "weights": f"local-dir:{open_clip_dir}"}, model_name="oc"
    )
    own_model, _, own_transform = open_clip.create_model_and_transforms(f"local-dir:{open_clip_dir}")
    transform, description = build_transform(spec)
    x = torch.stack([transform(_rgb(p)) for p in photos])
    expected_x = torch.stack([own_transform(Image.open(p)) for p in photos])
    assert torch.equal(x, expected_x) and description["crop_size"] == 40
    with torch.inference_mode():
        torch.testing.assert_close(
            build_extractor(spec, build_model(spec))(x), own_model.eval().encode_image(x), rtol=0, atol=0
        )
        pre = parse_model_spec(
            {"source": "open_clip", "arch": "tiny", "weights": f"local-dir:{open_clip_dir}", "layer": "pre_projection"},
            model_name="oc",
        )
        pooled = build_extractor(pre, build_model(pre))(x)
        # The projection of the pre-projection features is the embedding.
        torch.testing.assert_close(pooled @ own_model.visual.proj, own_model.encode_image(x), rtol=1e-5, atol=1e-5)


def test_huggingface_preprocessing_and_embedding_equal_transformers_own(hf_dir, photos):
    spec = parse_model_spec({"source": "huggingface", "arch": str(hf_dir), "weights": "pretrained"}, model_name="hf")
    images = [_rgb(p) for p in photos]
    processor = transformers.AutoImageProcessor.from_pretrained(hf_dir, backend="pil")
    expected_x = processor(images=images, return_tensors="pt")["pixel_values"]
    transform, _ = build_transform(spec)
    x = torch.stack([transform(image) for image in images])
    assert torch.equal(x, expected_x)
    reference = transformers.CLIPModel.from_pretrained(hf_dir).eval()
    with torch.inference_mode():
        expected = reference.get_image_features(pixel_values=x)
        expected = expected if isinstance(expected, torch.Tensor) else expected.pooler_output
        torch.testing.assert_close(build_extractor(spec, build_model(spec))(x), expected, rtol=0, atol=0)
        hidden = reference.vision_model(pixel_values=x).last_hidden_state
        for layer, value in (("cls", hidden[:, 0]), ("mean_tokens", hidden[:, 1:].mean(1))):
            other = parse_model_spec(
                {"source": "huggingface", "arch": str(hf_dir), "weights": "pretrained", "layer": layer}, model_name="hf"
            )
            torch.testing.assert_close(build_extractor(other, build_model(other))(x), value, rtol=0, atol=0)


def test_identity_names_source_library_and_changes_with_each_part(open_clip_dir, hf_dir):
    def key(raw):
        spec = parse_model_spec(raw, model_name="m")
        return identity_key(embedding_identity(spec, build_transform(spec)[1], precision="fp32", decoder="pil"))

    base = {"source": "open_clip", "arch": "tiny", "weights": f"local-dir:{open_clip_dir}"}
    spec = parse_model_spec(base, model_name="m")
    identity = embedding_identity(spec, build_transform(spec)[1], precision="fp32", decoder="pil")
    assert identity["source"] == "open_clip" and identity["weights"]["open_clip"] == open_clip.__version__
    keys = {
        key(base),
        key({**base, "layer": "pre_projection"}),
        key({**base, "transforms": {"crop_size": 32}}),
        key({"source": "timm", "arch": "test_efficientnet", "weights": None}),
        key({"source": "timm", "arch": "test_efficientnet", "weights": None, "layer": "output"}),
        key({"source": "huggingface", "arch": str(hf_dir), "weights": "pretrained"}),
        key({"source": "huggingface", "arch": str(hf_dir), "weights": None}),
    }
    assert len(keys) == 7
    assert key(base) == key(dict(reversed(list(base.items()))))


# --------------------------------------------------------------------------- weights step offline


@pytest.mark.parametrize(
    ("spec", "what"),
    [
        (
            {"source": "timm", "arch": "tf_efficientnet_lite0", "weights": "pretrained"},
            "timm/tf_efficientnet_lite0.in1k",
        ),
        (
            {"source": "open_clip", "arch": "ViT-B-32", "weights": "hf-hub:timm/vit_base_patch32_clip_224.openai"},
            "hf-hub:timm/vit_base_patch32_clip_224.openai",
        ),
        (
            {"source": "huggingface", "arch": "patrickjohncyh/fashion-clip", "weights": "pretrained"},
            "patrickjohncyh/fashion-clip",
        ),
    ],
    ids=["timm", "open_clip", "huggingface"],
)
def test_weights_step_offline_stops_within_seconds_naming_the_model(spec, what, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    started = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        ensure_weights(spec, tmp_path / "torch", model_name="hub_model", timeout=3)
    assert time.monotonic() - started < 15
    message = str(err.value)
    assert "'hub_model'" in message and what in message and str(tmp_path / "torch" / "huggingface") in message
    assert "snakemake results/weights/hub_model.json" in message and "HF_HUB_OFFLINE" in message


# --------------------------------------------------------------------------- plot


def test_plot_fits_supervised_points_only_and_marks_zero_shot(tmp_path):
    from scipy import stats

    from corrembed.summary.plots import plot_corrembed_vs_imagenet

    rows = [
        ("a", 70.0, 0.20, "supervised"),
        ("b", 75.0, 0.25, "config"),
        ("c", 80.0, 0.26, "supervised"),
        ("clip", 63.3, 0.45, "zero-shot"),
        ("rand", None, 0.05, ""),
    ]
    summary = pl.DataFrame(
        {
            "model": [r[0] for r in rows],
            "imagenet_acc1": [r[1] for r in rows],
            "corrembed": [r[2] for r in rows],
            "imagenet_acc1_kind": [r[3] for r in rows],
        },
        schema_overrides={"imagenet_acc1": pl.Float64},
    ).with_columns(
        ci_low=pl.col("corrembed") - 0.01,
        ci_high=pl.col("corrembed") + 0.01,
        headline=True,
        weighting=pl.lit("binary"),
        weight_source=pl.lit("binary"),
        control_random=0.0,
        control_shuffled_embeddings=0.0,
        control_shuffled_tags=0.0,
    )
    svg = tmp_path / "f.svg"
    plot_corrembed_vs_imagenet(summary, [svg])
    text = svg.read_text()
    r = stats.linregress([70.0, 75.0, 80.0], [0.20, 0.25, 0.26]).rvalue  # the three supervised points
    assert f"supervised top-1 only, Pearson r = {r:.2f} (n = 3)" in text
    assert "zero-shot ImageNet top-1" in text and "clip" in text


# --------------------------------------------------------------------------- the whole workflow


@pytest.mark.slow
def test_every_source_runs_through_the_workflow(tmp_path, open_clip_dir, hf_dir):
    from workflow_runner import check, demo_config, snakemake, write_config

    config = demo_config(
        n_items=24,
        n_users=20,
        seed=3,
        weightings=None,
        embed={"batch_size": 8, "num_workers": 0, "device": "cpu", "threads": 1},
        models={
            "timm_tiny": {
                "source": "timm",
                "arch": "test_efficientnet",
                "weights": None,
                "transforms": {"resize_size": 72, "crop_size": 64},
            },
            "clip_tiny": {"source": "open_clip", "arch": "tiny", "weights": f"local-dir:{open_clip_dir}"},
            "hf_tiny": {"source": "huggingface", "arch": str(hf_dir), "weights": "pretrained", "layer": "mean_tokens"},
        },
        scoring={"bootstrap": 20},
    )
    write_config(tmp_path, config)
    check(snakemake(tmp_path, "--cores", "2"))
    summary = pl.read_csv(tmp_path / "results" / "summary.csv")
    assert sorted(set(zip(summary["model"], summary["source"]))) == [
        ("clip_tiny", "open_clip"),
        ("hf_tiny", "huggingface"),
        ("timm_tiny", "timm"),
    ]
    assert summary["corrembed"].is_finite().all() and summary["n_items"].unique().to_list() == [24]
    meta = json.loads((tmp_path / "results" / "embeddings" / "clip_tiny" / "meta.json").read_text())
    assert meta["dim"] == 16 and meta["identity"]["source"] == "open_clip"
    # Rerunning with nothing changed does nothing (params of every source are stable).
    rerun = check(snakemake(tmp_path, "--cores", "1", "--dry-run"))
    assert "Nothing to be done" in rerun.stdout + rerun.stderr

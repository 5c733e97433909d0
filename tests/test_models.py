"""corrembed.models: spec resolution, checkpoints, layers, transforms, ImageNet metadata.

Oracles: torchvision's own modules called by hand (the layer outputs), the affine relation
between normalizations (transform overrides), torchvision's published metadata and the
parameter counts it states (ImageNet metadata).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import (
    RegNet_Y_400MF_Weights,
    ResNet50_Weights,
    get_model,
    mobilenet_v2,
    resnet18,
)
from torchvision.transforms import InterpolationMode

from corrembed.errors import ConfigError
from corrembed.models import (
    FeatureExtractor,
    build_model,
    build_transform,
    imagenet_metadata,
    parse_model_spec,
    pool_features,
)


def _x(size: int = 64, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def resnet18_random():
    return build_model(parse_model_spec({"arch": "resnet18", "weights": None}, model_name="model"))


# --------------------------------------------------------------------------- spec errors


def test_unknown_arch_lists_close_matches():
    with pytest.raises(ConfigError) as err:
        parse_model_spec({"arch": "resnet5", "weights": None}, model_name="mymodel")
    message = str(err.value)
    assert "'mymodel'" in message and "'resnet5'" in message
    assert "resnet50" in message and "list_models" in message


def test_unknown_weights_lists_valid_ones():
    with pytest.raises(ConfigError) as err:
        parse_model_spec({"arch": "resnet50", "weights": "IMAGENET1K_V3"}, model_name="r50")
    message = str(err.value)
    for valid in ("IMAGENET1K_V1", "IMAGENET1K_V2", "DEFAULT", "ResNet50_Weights"):
        assert valid in message


def test_weights_must_be_explicit():
    with pytest.raises(ConfigError, match="weights: null"):
        parse_model_spec({"arch": "resnet50"}, model_name="r50")


def test_unknown_spec_key_is_reported():
    with pytest.raises(ConfigError, match="did you mean 'layer'"):
        parse_model_spec({"arch": "resnet18", "weights": None, "layr": "output"}, model_name="m")


@pytest.mark.parametrize("written", ["DEFAULT", "default", "IMAGENET1K_V2", "ResNet50_Weights.IMAGENET1K_V2"])
def test_enum_names_resolve(written):
    spec = parse_model_spec({"arch": "resnet50", "weights": written}, model_name="r50")
    assert spec.weights.kind == "torchvision"
    assert spec.weights.enum is ResNet50_Weights.IMAGENET1K_V2
    assert spec.weights.resolved == "ResNet50_Weights.IMAGENET1K_V2"
    assert spec.weights.configured == written


def test_missing_checkpoint_is_config_error(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ConfigError, match="nope.pth"):
        parse_model_spec({"arch": "resnet18", "weights": str(missing)}, model_name="m")


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_of_other_arch_names_missing_keys(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(ConfigError) as err:
        build_model(parse_model_spec({"arch": "resnet34", "weights": str(path)}, model_name="r34"))
    message = str(err.value)
    assert "'r34'" in message and "r18.pth" in message and "resnet34" in message
    assert "missing" in message and "layer1.2.conv1.weight" in message


def test_checkpoint_with_other_head_names_shape_mismatch(tmp_path):
    path = tmp_path / "mnv2_10.pth"
    torch.save(mobilenet_v2(num_classes=10).state_dict(), path)
    with pytest.raises(ConfigError) as err:
        build_model(parse_model_spec({"arch": "mobilenet_v2", "weights": str(path)}, model_name="m"))
    message = str(err.value)
    assert "shape mismatch" in message and "classifier.1.weight" in message
    assert "(10, 1280)" in message and "(1000, 1280)" in message


def test_checkpoint_with_unexpected_keys(tmp_path):
    state = resnet18().state_dict()
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pt"
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"1 unexpected: extra\.weight"):
        build_model(parse_model_spec({"arch": "resnet18", "weights": str(path)}, model_name="m"))


def test_non_state_dict_checkpoint(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        build_model(parse_model_spec({"arch": "resnet18", "weights": str(path)}, model_name="m"))


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix"])
def test_checkpoint_wrappings_load_exactly(tmp_path, wrap):
    source = resnet18()
    state = source.state_dict()
    payload = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state},
        "module_prefix": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    path = tmp_path / "ckpt.pth"
    torch.save(payload, path)
    model = build_model(parse_model_spec({"arch": "resnet18", "weights": str(path)}, model_name="m"))
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not model.training


def test_random_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = build_model(parse_model_spec({"arch": "resnet18", "weights": None}, model_name="model"))
    b = build_model(parse_model_spec({"arch": "resnet18", "weights": None}, model_name="model"))
    assert torch.equal(torch.rand(3), expected_next)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# --------------------------------------------------------------------------- layers


@pytest.mark.parametrize(
    ("arch", "dim", "size"),
    [
        ("resnet50", 2048, 64),
        ("vit_b_16", 768, 224),
        ("mobilenet_v2", 1280, 64),
        ("mobilenet_v3_large", 1280, 64),
        ("efficientnet_b0", 1280, 64),
        ("convnext_tiny", 768, 64),
        ("squeezenet1_0", 512, 64),
    ],
)
def test_penultimate_dims(arch, dim, size):
    extractor = FeatureExtractor(
        build_model(parse_model_spec({"arch": arch, "weights": None}, model_name="model")), "penultimate"
    )
    with torch.inference_mode():
        features = extractor(_x(size, batch=2))
    assert features.shape == (2, dim) and features.dtype == torch.float32


def test_penultimate_resnet18_equals_manual_forward(resnet18_random):
    m = resnet18_random
    x = _x(64, batch=3)
    with torch.inference_mode():
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        h = m.layer4(m.layer3(m.layer2(m.layer1(h))))
        expected = torch.flatten(m.avgpool(h), 1)
        got = FeatureExtractor(m, "penultimate")(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_penultimate_mobilenet_v2_equals_features_pool_flatten():
    m = build_model(parse_model_spec({"arch": "mobilenet_v2", "weights": None}, model_name="model"))
    x = _x(64, batch=2, seed=1)
    with torch.inference_mode():
        expected = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(m.features(x), 1), 1)
        got = FeatureExtractor(m, "penultimate")(x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_penultimate_squeezenet_is_pooled_input_of_final_conv():
    m = build_model(parse_model_spec({"arch": "squeezenet1_0", "weights": None}, model_name="model"))
    extractor = FeatureExtractor(m, "penultimate")
    assert extractor.classifier_name == "classifier.1"
    x = _x(64, batch=2, seed=2)
    with torch.inference_mode():
        expected = m.features(x).mean(dim=(2, 3))
        got = extractor(x)
    torch.testing.assert_close(got, expected)


def test_output_layer_is_logits(resnet18_random):
    x = _x(64, batch=2, seed=3)
    with torch.inference_mode():
        torch.testing.assert_close(FeatureExtractor(resnet18_random, "output")(x), resnet18_random(x), rtol=0, atol=0)


def test_graph_node_layer_is_global_average_pooled(resnet18_random):
    m = resnet18_random
    x = _x(64, batch=2, seed=4)
    with torch.inference_mode():
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        expected = m.layer3(m.layer2(m.layer1(h))).mean(dim=(2, 3))
        got = FeatureExtractor(m, "layer3.1.relu_1")(x)
        by_module_name = FeatureExtractor(m, "layer3")(x)
    assert got.shape == (2, 256)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(by_module_name, got, rtol=0, atol=0)


def test_swin_channels_last_node_pools_over_space():
    # Swin's "norm" node is (b, H, W, C); pooled over H, W it is exactly the head's input.
    m = build_model(parse_model_spec({"arch": "swin_t", "weights": None}, model_name="model"))
    x = _x(64, batch=2, seed=5)
    with torch.inference_mode():
        at_norm = FeatureExtractor(m, "norm")(x)
        penultimate = FeatureExtractor(m, "penultimate")(x)
    assert at_norm.shape == (2, 768)
    torch.testing.assert_close(at_norm, penultimate, rtol=1e-5, atol=1e-5)


def test_unknown_layer_lists_last_nodes(resnet18_random):
    with pytest.raises(ConfigError) as err:
        FeatureExtractor(resnet18_random, "layer9", model_name="r18")
    with pytest.raises(ConfigError, match="'layer3.1.relu_9'"):
        FeatureExtractor(resnet18_random, "layer3.1.relu_9")
    message = str(err.value)
    assert "'r18'" in message and "'layer9'" in message
    for node in ("layer4.1.relu_1", "avgpool", "flatten", "fc"):
        assert node in message
    assert "get_graph_node_names" in message


def test_pool_features_shapes():
    maps = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    np.testing.assert_allclose(pool_features(maps).numpy(), maps.numpy().mean(axis=(2, 3)))
    np.testing.assert_allclose(pool_features(maps, channels_last=True).numpy(), maps.numpy().mean(axis=(1, 2)))
    tokens = torch.ones(2, 7, 3)
    assert pool_features(tokens).shape == (2, 21)


# --------------------------------------------------------------------------- transforms


def test_enum_transforms_are_the_weights_own():
    transform, description = build_transform(
        parse_model_spec({"arch": "resnet50", "weights": "IMAGENET1K_V2"}, model_name="model")
    )
    assert description["resize_size"] == 232 and description["crop_size"] == 224
    assert description["interpolation"] == "bilinear"
    assert description["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert description["base"] == "ResNet50_Weights.IMAGENET1K_V2.transforms()"
    assert description["overrides"] == {}
    # Same pixels as torchvision's own preset, bit for bit, on a PIL image and a uint8 tensor.
    own = ResNet50_Weights.IMAGENET1K_V2.transforms()
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (301, 257, 3), dtype=np.uint8))
    assert torch.equal(transform(image), own(image))
    tensor = torch.from_numpy(rng.integers(0, 256, (3, 190, 260), dtype=np.uint8))
    assert torch.equal(transform(tensor), own(tensor))


def test_checkpoint_transform_overrides_mean_std(tmp_path):
    path = tmp_path / "mnv2.pth"
    torch.save(mobilenet_v2().state_dict(), path)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8))
    plain, plain_description = build_transform(
        parse_model_spec(
            {"arch": "mobilenet_v2", "weights": str(path), "transforms": {"mean": 0.0, "std": 1.0}}, model_name="model"
        )
    )
    half, description = build_transform(
        parse_model_spec(
            {"arch": "mobilenet_v2", "weights": str(path), "transforms": {"mean": 0.5, "std": [0.5, 0.5, 0.5]}},
            model_name="model",
        )
    )
    assert description["mean"] == [0.5] * 3 and description["std"] == [0.5] * 3
    assert description["overrides"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert description["resize_size"] == 256 and description["crop_size"] == 224
    # Normalize(0.5, 0.5) maps [0, 1] onto [-1, 1]: exactly 2 x - 1 of the unnormalized tensor.
    x01 = plain(image)
    assert x01.shape == (3, 224, 224) and 0 <= x01.min() and x01.max() <= 1
    torch.testing.assert_close(half(image), 2 * x01 - 1, rtol=0, atol=1e-6)


def test_random_init_transform_size_and_interpolation_overrides():
    transform, description = build_transform(
        parse_model_spec(
            {
                "arch": "resnet18",
                "weights": None,
                "transforms": {"resize_size": 160, "crop_size": 128, "interpolation": "bicubic"},
            },
            model_name="model",
        )
    )
    assert description["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert (description["resize_size"], description["crop_size"]) == (160, 128)
    assert transform.interpolation is InterpolationMode.BICUBIC
    image = Image.new("RGB", (400, 200), (10, 20, 30))
    assert transform(image).shape == (3, 128, 128)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"interpolation": "cubic"}, "unknown interpolation"),
        ({"crop": 224}, "did you mean 'crop_size'"),
        ({"std": [0.5, 0.0, 0.5]}, "std must be"),
        ({"resize_size": 12.5}, "positive integer"),
    ],
)
def test_bad_transform_overrides(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_transform(
            parse_model_spec({"arch": "resnet18", "weights": None, "transforms": overrides}, model_name="m")
        )


# --------------------------------------------------------------------------- ImageNet metadata


def test_imagenet_metadata_from_weights_meta():
    values = imagenet_metadata(parse_model_spec({"arch": "resnet50", "weights": "IMAGENET1K_V2"}, model_name="model"))
    assert values == {"acc1": 80.858, "acc5": 95.434, "num_params": 25557032, "gflops": 4.089}
    v1 = imagenet_metadata(parse_model_spec({"arch": "resnet50", "weights": "IMAGENET1K_V1"}, model_name="model"))
    assert v1["acc1"] == 76.13


def test_imagenet_metadata_random_counts_parameters():
    values = imagenet_metadata(parse_model_spec({"arch": "resnet50", "weights": None}, model_name="model"))
    # torchvision's published count for the same architecture is an independent check.
    assert values == {
        "acc1": None,
        "acc5": None,
        "num_params": ResNet50_Weights.IMAGENET1K_V2.meta["num_params"],
        "gflops": None,
    }
    # RegNet builders cannot run on the meta device: the fallback must count the same way.
    regnet = imagenet_metadata(parse_model_spec({"arch": "regnet_y_400mf", "weights": None}, model_name="model"))
    assert regnet["num_params"] == RegNet_Y_400MF_Weights.IMAGENET1K_V1.meta["num_params"]


def test_imagenet_metadata_checkpoint_from_config(tmp_path):
    path = tmp_path / "mnv2.pth"
    torch.save(mobilenet_v2().state_dict(), path)
    values = imagenet_metadata(
        parse_model_spec(
            {"arch": "mobilenet_v2", "weights": str(path), "imagenet": {"acc1": 70.8, "gflops": 0.3}},
            model_name="model",
        )
    )
    expected_params = sum(p.numel() for p in get_model("mobilenet_v2").parameters())
    assert values == {"acc1": 70.8, "acc5": None, "num_params": expected_params, "gflops": 0.3}

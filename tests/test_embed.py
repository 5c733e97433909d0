"""corrembed.embed: end-to-end extraction into a shard plus meta.json.

Oracles: the model run image by image outside the DataLoader (same transform, same
extractor), a manual forward pass, and invariants of the real pretrained checkpoint
(MobileNetV2's penultimate features are averages of ReLU6 outputs, so lie in [0, 6]).
"""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from torchvision.models import resnet18

from corrembed.embed import embed_images, progress_line, resolve_device
from corrembed.embed.store import read_embeddings, read_meta
from corrembed.errors import ConfigError, CorrEmbedError
from corrembed.models import build_model, build_transform, parse_model_spec

# Small crops keep the CPU tests fast; the override path is exercised on the way.
RANDOM_R18 = {"arch": "resnet18", "weights": None, "transforms": {"resize_size": 128, "crop_size": 112}}
META_KEYS = {
    "model",
    "arch",
    "weights",
    "layer",
    "dim",
    "transforms",
    "device",
    "device_name",
    "dtype",
    "n_images",
    "seconds",
    "images_per_second",
    "peak_memory",
    "versions",
    "batch_size",
    "num_workers",
}


@pytest.fixture(scope="module")
def jpeg_images(tmp_path_factory) -> pl.DataFrame:
    """12 generated JPEGs of varied sizes and modes; ids deliberately not in sorted order."""
    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    ids, paths = [], []
    for k in range(12):
        h, w = int(rng.integers(60, 200)), int(rng.integers(60, 200))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if k % 4 == 1:
            image = image.convert("L")  # grayscale files must be converted to RGB
        path = folder / f"img{k:02d}.jpg"
        image.save(path, quality=90)
        ids.append(f"item-{(7 * k) % 12}")
        paths.append(str(path))
    return pl.DataFrame({"item_id": ids, "image": paths})


@pytest.fixture(scope="module")
def random_r18_run(jpeg_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("emb")
    lines: list[str] = []
    meta = embed_images(
        jpeg_images,
        RANDOM_R18,
        out,
        model_name="r18rand",
        torch_home=None,
        batch_size=5,
        device="cpu",
        progress=lines.append,
        log_every=1,
    )
    return out, meta, lines


def test_shard_columns_types_and_order(jpeg_images, random_r18_run):
    out, meta, _ = random_r18_run
    table = pq.read_table(out / "part-00000.parquet")
    assert table.schema.field("item_id").type == pa.string()
    assert table.schema.field("image").type == pa.string()
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 512)
    assert table.column("item_id").to_pylist() == jpeg_images["item_id"].to_list()
    assert table.column("image").to_pylist() == jpeg_images["image"].to_list()
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "part-00000.parquet"]


def test_embeddings_equal_image_by_image_oracle(jpeg_images, random_r18_run):
    out, _, _ = random_r18_run
    vectors = read_embeddings(out).vectors
    model = build_model(parse_model_spec(RANDOM_R18, model_name="model"))
    transform, _ = build_transform(parse_model_spec(RANDOM_R18, model_name="model"))
    with torch.inference_mode():
        rows = []
        for path in jpeg_images["image"]:
            x = transform(Image.open(path).convert("RGB")).unsqueeze(0)
            # Manual forward up to the pooled features, independent of FeatureExtractor's hook.
            h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
            h = model.layer4(model.layer3(model.layer2(model.layer1(h))))
            rows.append(torch.flatten(model.avgpool(h), 1)[0].numpy())
    np.testing.assert_allclose(vectors, np.stack(rows), rtol=1e-4, atol=1e-5)


def test_meta_describes_the_run(random_r18_run):
    out, meta, _ = random_r18_run
    assert read_meta(out) == json.loads(json.dumps(meta))
    assert META_KEYS <= meta.keys()
    assert meta["model"] == "r18rand" and meta["arch"] == "resnet18" and meta["layer"] == "penultimate"
    assert meta["weights"] == {"configured": None, "resolved": None, "kind": "random"}
    assert meta["dim"] == 512 and meta["n_images"] == 12 and meta["dtype"] == "float32"
    assert meta["device"] == "cpu" and meta["batch_size"] == 5 and meta["num_workers"] == 0
    assert meta["transforms"]["crop_size"] == 112 and meta["transforms"]["resize_size"] == 128
    assert meta["images_per_second"] > 0 and meta["seconds"] > 0
    assert meta["peak_memory"]["cpu_peak_rss_bytes"] > 10_000_000
    assert meta["peak_memory"]["cuda_max_allocated_bytes"] is None
    assert {"torch", "torchvision", "numpy", "python", "corrembed"} <= meta["versions"].keys()


def test_progress_lines(random_r18_run):
    _, _, lines = random_r18_run
    assert re.match(r"^r18rand: rows 0-12 of 12: 0 image\(s\) cached, 12 distinct to embed", lines[0])
    assert len(lines) == 4  # the cache line, then batches of 5, 5, 2
    pattern = re.compile(r"^r18rand: (\d+)/12 images \((\d+\.\d)%\), \d+\.\d img/s, ETA \d+ s$")
    done = [int(pattern.match(line).group(1)) for line in lines[1:]]
    assert done == [5, 10, 12]
    assert progress_line("m", 1234, 5000, 10.0) == "m: 1234/5000 images (24.7%), 123.4 img/s, ETA 31 s"


def test_cpu_runs_are_deterministic(jpeg_images, random_r18_run, tmp_path):
    out, _, _ = random_r18_run
    embed_images(
        jpeg_images,
        RANDOM_R18,
        tmp_path,
        model_name="r18rand",
        torch_home=None,
        batch_size=5,
        device="cpu",
        progress=lambda line: None,
    )
    first, second = read_embeddings(out).vectors, read_embeddings(tmp_path).vectors
    assert np.array_equal(first, second)


def test_enum_weights_from_cache_and_graph_node_layer(jpeg_images, tmp_path):
    cache = tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cache.parent.mkdir(parents=True)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        torch.save(resnet18().state_dict(), cache)
    spec = {"arch": "resnet18", "weights": "IMAGENET1K_V1", "layer": "layer2"}
    images = jpeg_images.head(3)
    meta = embed_images(
        images,
        spec,
        tmp_path / "out",
        model_name="r18v1",
        torch_home=tmp_path / "th",
        device="cpu",
        progress=lambda line: None,
    )
    assert meta["weights"] == {
        "configured": "IMAGENET1K_V1",
        "resolved": "ResNet18_Weights.IMAGENET1K_V1",
        "kind": "torchvision",
    }
    assert meta["transforms"]["base"] == "ResNet18_Weights.IMAGENET1K_V1.transforms()"
    assert meta["dim"] == 128 and meta["layer"] == "layer2"
    model = build_model(parse_model_spec(spec, model_name="model"), torch_home=tmp_path / "th")
    transform, _ = build_transform(parse_model_spec(spec, model_name="model"))
    with torch.inference_mode():
        x = torch.stack([transform(Image.open(p).convert("RGB")) for p in images["image"]])
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        expected = model.layer2(model.layer1(h)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(read_embeddings(tmp_path / "out").vectors, expected, rtol=1e-4, atol=1e-5)


def test_failed_run_leaves_no_stale_meta(jpeg_images, random_r18_run, tmp_path):
    out, _, _ = random_r18_run
    target = tmp_path / "emb"
    target.mkdir()
    (target / "meta.json").write_text((out / "meta.json").read_text())
    broken = pl.concat(
        [jpeg_images.head(2), pl.DataFrame({"item_id": ["gone"], "image": [str(tmp_path / "gone.jpg")]})]
    )
    with pytest.raises(CorrEmbedError, match="gone.jpg"):
        embed_images(
            broken, RANDOM_R18, target, model_name="m", torch_home=None, device="cpu", progress=lambda line: None
        )
    assert not (target / "meta.json").exists()
    assert not (target / "part-00000.parquet").exists()


def test_input_errors(jpeg_images, tmp_path):
    with pytest.raises(CorrEmbedError, match="'image'"):
        embed_images(jpeg_images.select("item_id"), RANDOM_R18, tmp_path, model_name="m", torch_home=None)
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:1")
        assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.slow
def test_real_checkpoint_on_real_images(mobilenet_checkpoint, fashion_dir, tmp_path):
    ids = sorted(p.stem for p in (fashion_dir / "images").glob("*.jpg"))[:6]
    images = pl.DataFrame({"item_id": ids, "image": [str(fashion_dir / "images" / f"{i}.jpg") for i in ids]})
    spec = {"arch": "mobilenet_v2", "weights": str(mobilenet_checkpoint), "transforms": {"mean": 0.5, "std": 0.5}}
    meta = embed_images(
        images,
        spec,
        tmp_path,
        model_name="mnv2",
        torch_home=None,
        batch_size=4,
        device="cpu",
        progress=lambda line: None,
    )
    assert meta["dim"] == 1280 and meta["weights"]["kind"] == "checkpoint"
    assert meta["transforms"]["mean"] == [0.5] * 3 and meta["transforms"]["std"] == [0.5] * 3
    emb = read_embeddings(tmp_path)
    assert list(emb.item_ids) == ids
    vectors = emb.vectors
    assert vectors.shape == (6, 1280) and np.isfinite(vectors).all()
    # Averages of ReLU6 activations: within [0, 6], and real features are not all zero.
    assert vectors.min() >= 0 and vectors.max() <= 6 and (vectors > 0).mean() > 0.3
    # The pretrained head applied to the stored features gives the model's own logits.
    model = build_model(parse_model_spec(spec, model_name="model"))
    transform, _ = build_transform(parse_model_spec(spec, model_name="model"))
    with torch.inference_mode():
        x = torch.stack([transform(Image.open(p).convert("RGB")) for p in images["image"]])
        logits = model(x)
        from_features = model.classifier(torch.from_numpy(np.array(vectors)))
    torch.testing.assert_close(from_features, logits, rtol=1e-4, atol=1e-4)
    # Pretrained features separate images far better than they collapse: distinct rows.
    assert np.linalg.matrix_rank(vectors.astype(np.float64)) == 6


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(jpeg_images, random_r18_run, tmp_path):
    out, _, _ = random_r18_run
    meta = embed_images(
        jpeg_images,
        RANDOM_R18,
        tmp_path,
        model_name="r18rand",
        torch_home=None,
        batch_size=5,
        device="cuda",
        num_workers=2,
        progress=lambda line: None,
    )
    assert meta["device"].startswith("cuda:") and meta["peak_memory"]["cuda_max_allocated_bytes"] > 0
    np.testing.assert_allclose(read_embeddings(tmp_path).vectors, read_embeddings(out).vectors, rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------- input pipeline


def test_split_preprocessing_equals_the_weights_transform_bit_for_bit(jpeg_images):
    from corrembed.images.batches import Preprocess, collate_images, read_pil_pixels

    transform, _ = build_transform(parse_model_spec({"arch": "resnet18", "weights": None}, model_name="model"))
    preprocess = Preprocess.from_transform(transform)
    paths = jpeg_images["image"].to_list()[:5]
    batch = collate_images([("pixels", read_pil_pixels(p, preprocess), 1) for p in paths])
    batched = preprocess.normalize(batch["pixels"])
    expected = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    assert batched.dtype == torch.float32 and torch.equal(batched, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_on_tensors_matches_pillow(orientation):
    from PIL import ImageOps

    from corrembed.images.batches import apply_exif_orientation

    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)
    assert np.array_equal(apply_exif_orientation(tensor, orientation).permute(1, 2, 0).numpy(), expected)


def test_torchvision_decoder_close_to_pil_and_falls_back(jpeg_images, tmp_path):
    from corrembed.images.batches import ImageFileDataset, Preprocess, jpeg_orientation

    png = tmp_path / "not_jpeg.png"
    Image.open(jpeg_images["image"][0]).save(png)
    rotated = tmp_path / "rotated.jpg"
    source = Image.open(jpeg_images["image"][2]).convert("RGB")
    exif = source.getexif()
    exif[0x0112] = 6
    source.save(rotated, quality=95, exif=exif.tobytes())
    paths = [*jpeg_images["image"].to_list()[:4], str(png), str(rotated)]
    assert jpeg_orientation(rotated.read_bytes()) == 6 and jpeg_orientation(png.read_bytes()) is None
    preprocess = Preprocess.from_transform(build_transform(parse_model_spec(RANDOM_R18, model_name="model"))[0])
    pil = ImageFileDataset(paths, preprocess, decoder="pil")
    tv = ImageFileDataset(paths, preprocess, decoder="torchvision")
    for k in range(len(paths)):
        kind, a, _ = pil[k]
        kind_tv, b, _ = tv[k]
        assert kind == kind_tv == "pixels" and a.shape == b.shape == (3, 112, 112)
        # Different JPEG decoder and resize: pixels agree to a few levels, not exactly.
        assert (a.float() - b.float()).abs().mean() < 3.0
    assert torch.equal(pil[4][1], tv[4][1])  # the PNG went through Pillow in both
    on_device = ImageFileDataset(paths, preprocess, decoder="torchvision", decode_in_worker=False)
    assert on_device[0][0] == "jpeg" and on_device[4][0] == "pixels" and on_device[5][2] == 6


def test_torchvision_decoder_end_to_end_on_cpu(jpeg_images, random_r18_run, tmp_path):
    out, _, _ = random_r18_run
    meta = embed_images(
        jpeg_images,
        RANDOM_R18,
        tmp_path,
        model_name="r18rand",
        torch_home=None,
        batch_size=5,
        device="cpu",
        decoder="torchvision",
        channels_last=True,
        progress=lambda line: None,
    )
    assert meta["decoder"] == "torchvision" and meta["channels_last"] is True
    a, b = read_embeddings(tmp_path).vectors, read_embeddings(out).vectors
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "options",
    [
        {"precision": "bf16", "channels_last": True},
        {"precision": "fp16"},
        {"decoder": "torchvision", "num_workers": 2},
        {"precision": "bf16", "compile": True},
    ],
)
def test_cuda_options_close_to_cpu_fp32(jpeg_images, random_r18_run, tmp_path, options):
    out, _, _ = random_r18_run
    meta = embed_images(
        jpeg_images,
        RANDOM_R18,
        tmp_path,
        model_name="r18rand",
        torch_home=None,
        batch_size=5,
        device="cuda",
        progress=lambda line: None,
        **options,
    )
    for key in ("precision", "decoder", "channels_last", "compile"):
        if key in options:
            assert meta[key] == options[key]
    a, b = read_embeddings(tmp_path).vectors, read_embeddings(out).vectors
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99, cosine.min()

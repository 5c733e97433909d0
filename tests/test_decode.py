"""Reduced-scale JPEG decoding (decoder pil-reduced, ingest's default check) and images the embed
stage cannot decode (set aside there, never crashing the job)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from corrembed.embed import embed_images
from corrembed.embed.cache import EmbeddingCache
from corrembed.embed.items import usable_item_embeddings
from corrembed.embed.store import read_embeddings
from corrembed.images.batches import ImageFileDataset, Preprocess, collate_images, failed_images, read_pil_pixels
from corrembed.images.decode import ImageReadError, jpeg_scale, read_image
from corrembed.ingest import ingest_catalogue
from corrembed.ingest.image_checks import check_image
from corrembed.models import build_transform, parse_model_spec
from corrembed.records import EmbeddingMeta
from corrembed.storage import file_sha256
from corrembed.summary.table import summary_table

SPEC = {"arch": "resnet18", "weights": None}


@pytest.fixture(scope="module")
def preprocess() -> Preprocess:
    transform, _ = build_transform(parse_model_spec(SPEC, model_name="model"))
    return Preprocess.from_transform(transform)  # resize 256, crop 224


@pytest.fixture(scope="module")
def photos(fashion_dir, tmp_path_factory) -> list[Path]:
    """Six real product photos upscaled to product size (800 x 1000 JPEG, quality 90)."""
    folder = tmp_path_factory.mktemp("photos")
    out = []
    for path in sorted((fashion_dir / "images").glob("*.jpg"))[:6]:
        target = folder / path.name
        Image.open(path).convert("RGB").resize((800, 1000), Image.BICUBIC).save(target, quality=90)
        out.append(target)
    return out


def _jpeg(path: Path, size, exif_orientation: int | None = None, colour=(180, 40, 90)) -> Path:
    image = Image.new("RGB", size, colour)
    image.paste((20, 200, 20), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    exif = Image.Exif()
    if exif_orientation is not None:
        exif[0x0112] = exif_orientation
    image.save(path, quality=92, exif=exif.tobytes())
    return path


# ------------------------------------------------------------------------------------------
# The scale rule
# ------------------------------------------------------------------------------------------


@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 600))
def test_jpeg_scale_is_the_smallest_scale_keeping_the_shorter_side(width, height, target):
    scale = jpeg_scale((width, height), target)
    assert scale in (1, 2, 4, 8)
    short = min(width, height)
    # Pillow's rule (JpegImageFile.draft): scale <= short // target, largest of 8, 4, 2, 1.
    assert scale == 1 or short / scale >= target
    assert math.ceil(short / scale) >= target or scale == 1
    assert scale == 8 or short // target < 2 * scale


def test_reduced_decode_sizes_and_full_size_upright(tmp_path):
    big = _jpeg(tmp_path / "big.jpg", (800, 1000))
    decoded = read_image(big, reduce_to=256)
    assert (decoded.scale, decoded.rgb.size, decoded.size) == (2, (400, 500), (800, 1000))
    assert read_image(big, reduce_to=100).scale == 8 and read_image(big, reduce_to=100).rgb.size == (100, 125)
    # EXIF rotation by 90 degrees: the upright full size has width and height swapped.
    rotated = read_image(_jpeg(tmp_path / "rot.jpg", (800, 1000), exif_orientation=6), reduce_to=200)
    assert rotated.exif_transposed and rotated.size == (1000, 800) and rotated.rgb.size == (250, 200)
    assert read_image(big).scale == 1 and read_image(big).size == (800, 1000)


def test_small_jpegs_and_other_formats_take_the_unchanged_path(tmp_path, preprocess):
    small = _jpeg(tmp_path / "small.jpg", (300, 400))  # 300 // 256 = 1: no smaller scale
    png = tmp_path / "big.png"
    Image.open(_jpeg(tmp_path / "b.jpg", (800, 1000))).save(png)
    for path in (small, png):
        reduced, full = read_image(path, reduce_to=256), read_image(path)
        assert reduced.scale == 1
        assert np.array_equal(np.asarray(reduced.rgb), np.asarray(full.rgb))
        assert torch.equal(read_pil_pixels(str(path), preprocess, reduced=True), read_pil_pixels(str(path), preprocess))


def test_reduced_pixels_are_close_to_the_full_decode_on_real_photos(photos, preprocess):
    for path in photos:
        full = read_pil_pixels(str(path), preprocess).float()
        reduced = read_pil_pixels(str(path), preprocess, reduced=True).float()
        assert full.shape == reduced.shape == (3, 224, 224)
        difference = (full - reduced).abs()
        assert 0 < difference.mean() < 1.0, path.name  # not the same decode, but under a level
        assert difference.max() <= 16, path.name
    dataset = ImageFileDataset([str(p) for p in photos], preprocess, decoder="pil-reduced")
    assert torch.equal(dataset[0][1], read_pil_pixels(str(photos[0]), preprocess, reduced=True))


# ------------------------------------------------------------------------------------------
# Ingest's check
# ------------------------------------------------------------------------------------------


def test_reduced_check_reports_full_sizes_and_catches_truncation(photos, tmp_path):
    for path in photos[:2]:
        reduced, full = check_image(path), check_image(path, full=True)
        assert reduced == full and (reduced.width, reduced.height) == (800, 1000)
    data = photos[0].read_bytes()
    for fraction in (0.3, 0.6, 0.95):
        truncated = tmp_path / f"truncated-{fraction}.jpg"
        truncated.write_bytes(data[: int(len(data) * fraction)])
        assert check_image(truncated).kind == check_image(truncated, full=True).kind == "corrupt_image"
    with pytest.raises(ImageReadError):
        read_image(truncated, reduce_to=1)


def _catalogue(root: Path, photos: list[Path]) -> Path:
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "image", "colour"])
        for k, path in enumerate(photos):
            writer.writerow([f"i{k}", str(path), ["red", "blue"][k % 2]])
    return root / "manifest.csv"


def test_ingest_outputs_equal_under_both_checks(photos, tmp_path):
    manifest = _catalogue(tmp_path, photos)
    outputs = {}
    for check in ("reduced", "full"):
        out = tmp_path / check
        report = ingest_catalogue(
            manifest,
            images_out=out / "images.parquet",
            tags_out=out / "tags.parquet",
            rejects_out=out / "rejects.csv",
            image_check=check,
            threads=2,
        )
        outputs[check] = (pl.read_parquet(out / "images.parquet"), (out / "rejects.csv").read_bytes(), report)
    assert outputs["reduced"][0].equals(outputs["full"][0])
    assert outputs["reduced"][1] == outputs["full"][1]
    assert outputs["reduced"][2] == outputs["full"][2]


# ------------------------------------------------------------------------------------------
# The embed stage sets aside what it cannot decode
# ------------------------------------------------------------------------------------------


def test_dataset_and_batch_report_undecodable_files(photos, tmp_path, preprocess):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photos[0].read_bytes()[:5000])
    paths = [str(photos[1]), str(broken), str(tmp_path / "gone.jpg")]
    for decoder in ("pil", "pil-reduced", "torchvision"):
        items = [ImageFileDataset(paths, preprocess, decoder=decoder)[k] for k in range(3)]
        assert [item[0] for item in items] == ["pixels", "failed", "failed"]
        assert not items[1][1].any() and items[2][2][0] == "missing" and items[1][2][0] == "corrupt_image"
        batch = collate_images(items)
        assert batch["pixels"].shape == (3, 3, 224, 224)
        assert [(f["image"], f["kind"]) for f in failed_images(batch, paths)] == [
            (str(broken), "corrupt_image"),
            (str(tmp_path / "gone.jpg"), "missing"),
        ]


def test_embed_job_sets_aside_an_image_broken_after_ingest(photos, tmp_path):
    images = pl.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(len(photos))],
            "image": [str(p) for p in photos],
            "sha256": [file_sha256(p) for p in photos],
        }
    )
    # After ingest: one photo truncated, one deleted (their ingest-time hashes stay in images).
    broken = Path(photos[2]).with_name("broken-copy.jpg")
    broken.write_bytes(photos[2].read_bytes()[: len(photos[2].read_bytes()) // 2])
    images = images.with_columns(
        pl.when(pl.col("item_id") == "i2").then(pl.lit(str(broken))).otherwise(pl.col("image")).alias("image")
    )
    images = images.with_columns(
        pl.when(pl.col("item_id") == "i4")
        .then(pl.lit(str(tmp_path / "deleted.jpg")))
        .otherwise(pl.col("image"))
        .alias("image")
    )
    spec = {**SPEC, "transforms": {"resize_size": 64, "crop_size": 56}}
    cache = tmp_path / "cache"
    meta = embed_images(
        images,
        spec,
        tmp_path / "out",
        model_name="r18",
        torch_home=None,
        cache_dir=cache,
        batch_size=4,
        decoder="pil-reduced",
        progress=lambda line: None,
    )
    record = EmbeddingMeta.read(tmp_path / "out" / "meta.json")
    assert record.to_dict() == meta
    assert [(r["image"], r["kind"]) for r in record.images_set_aside] == [
        (str(broken), "corrupt_image"),
        (str(tmp_path / "deleted.jpg"), "missing"),
    ]
    assert record.set_aside_by_kind == {"corrupt_image": 1, "missing": 1}
    embeddings = read_embeddings(tmp_path / "out")
    finite = np.isfinite(embeddings.vectors).all(axis=1)
    assert finite.tolist() == [True, True, False, True, False, True]
    assert np.isnan(embeddings.vectors[~finite]).all()
    # Not cached: the ingest-time hashes of the broken files are still missing from the cache.
    identity_cache = EmbeddingCache(cache, meta["identity"])
    assert identity_cache.missing(images["sha256"].to_list()) == images["sha256"].to_list()[2:5:2]
    # The score stage excludes them; the summary counts them by kind.
    usable = usable_item_embeddings(embeddings, images["item_id"].to_numpy(), "first")
    assert usable.n_excluded_images == 2 and usable.n_excluded_items == 2
    from corrembed.records import ScoreRecord

    score = ScoreRecord.from_report({"corrembed": 0.1}, model="r18", weighting="binary", n_excluded_embeddings=2)
    row = summary_table([score], {"r18": record}, {"r18": {}}, {"binary": "binary"}).row(0, named=True)
    assert row["embed_set_aside_by_kind"] == "corrupt_image=1;missing=1" and row["n_excluded_embeddings"] == 2
    assert row["decoder"] == "pil-reduced"


def test_pil_reduced_is_its_own_embedding_identity(photos, tmp_path):
    images = pl.DataFrame(
        {"item_id": ["a", "b"], "image": [str(p) for p in photos[:2]], "sha256": [file_sha256(p) for p in photos[:2]]}
    )
    spec = {**SPEC, "transforms": {"resize_size": 64, "crop_size": 56}}
    keys = {}
    for decoder in ("pil", "pil-reduced"):
        meta = embed_images(
            images,
            spec,
            tmp_path / decoder,
            model_name="r18",
            torch_home=None,
            cache_dir=tmp_path / "cache",
            decoder=decoder,
            progress=lambda line: None,
        )
        assert meta["n_embedded"] == 2 and meta["decoder"] == decoder  # nothing shared between them
        keys[decoder] = meta["identity_key"]
    assert keys["pil"] != keys["pil-reduced"]


def test_read_image_never_raises_other_errors_on_reduced_garbage(tmp_path):
    rng = np.random.default_rng(0)
    head = io.BytesIO()
    Image.new("RGB", (640, 480), (1, 2, 3)).save(head, format="JPEG")
    data = bytearray(head.getvalue())
    for k in range(30):
        mutated = bytearray(data)
        positions = rng.integers(200, len(mutated), size=8)
        mutated[positions[0] : positions[0] + 4] = rng.integers(0, 256, size=4, dtype=np.uint8).tobytes()
        path = tmp_path / f"m{k}.jpg"
        path.write_bytes(bytes(mutated))
        try:
            read_image(path, reduce_to=1)
        except ImageReadError as error:
            assert error.kind in ("corrupt_image", "not_an_image")

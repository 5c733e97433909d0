"""Messy catalogues: every bad input is set aside with a reason or stops the run with a message.

The corrupted-image corpus is generated here (a few bytes each, no binary fixtures). Oracles are
pixel values computed by hand, Pillow's own decoding of the plain RGB case, and a slow obvious
re-implementation of the manifest semantics for the property-based test.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from corrembed.embed.items import usable_item_embeddings
from corrembed.embed.store import Embeddings
from corrembed.errors import ConfigError, CorrEmbedError, ManifestError, ScoringError
from corrembed.images.batches import ImageFileDataset, Preprocess
from corrembed.images.decode import ImageReadError, load_rgb, read_image
from corrembed.ingest import (
    IngestOptions,
    check_image,
    ingest_catalogue,
    read_interactions,
)
from corrembed.models import build_transform, parse_model_spec
from corrembed.models.checks import check_model_spec
from corrembed.tags import catalogue_weights, category_table, interaction_weights, user_counts

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def _csv(path: Path, header: list[str], rows: list[list[str]], encoding="utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _ingest(manifest: Path, out: Path, min_items: int = 1, **options):
    report = ingest_catalogue(
        manifest,
        images_out=out / "images.parquet",
        tags_out=out / "tags.parquet",
        rejects_out=out / "rejects.csv",
        threads=1,
        min_items=min_items,
        **options,
    )
    images = pl.read_parquet(out / "images.parquet")
    tags = pl.read_parquet(out / "tags.parquet")
    rejects = pl.read_csv(out / "rejects.csv", infer_schema=False)
    return report, images, tags, rejects


def _tag_set(tags: pl.DataFrame) -> set[tuple[str, str, str]]:
    return set(tags.select("item_id", "category", "value").iter_rows())


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Generated images: odd modes, orientation, animation, and broken files."""
    d = tmp_path_factory.mktemp("corpus")
    files: dict[str, Path] = {}
    files["rgb"] = _save(Image.new("RGB", (8, 6), RED), d / "rgb.png")
    rgba = Image.new("RGBA", (8, 6), (10, 20, 30, 0))  # fully transparent, dark hidden colour
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    files["rgba"] = _save(rgba, d / "rgba.png")
    palette = Image.new("P", (8, 6), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    files["palette"] = _save(palette, d / "palette.png", transparency=0)
    files["gray"] = _save(Image.new("L", (8, 6), 77), d / "gray.png")
    gray16 = Image.fromarray(np.array([[0, 32768, 65535, 1000]], dtype=np.uint16))
    assert gray16.mode.startswith("I;16")
    files["gray16"] = _save(gray16, d / "gray16.png")
    files["cmyk"] = _save(Image.new("CMYK", (8, 6), (0, 255, 255, 0)), d / "cmyk.jpg", quality=100)
    # 8 wide x 4 high, left half red; EXIF orientation 6 = "rotate 90 degrees clockwise to view".
    sideways = Image.new("RGB", (8, 4), BLUE)
    sideways.paste(RED, (0, 0, 4, 4))
    exif = sideways.getexif()
    exif[0x0112] = 6
    files["exif"] = _save(sideways, d / "exif.jpg", exif=exif.tobytes(), quality=100)
    frames = [Image.new("RGB", (6, 6), c) for c in (RED, BLUE, WHITE)]
    files["gif"] = _save(frames[0], d / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    files["webp"] = _save(
        frames[0], d / "anim.webp", save_all=True, append_images=frames[1:], duration=50, lossless=True
    )
    files["big"] = _save(Image.new("1", (2000, 1500), 0), d / "big.png")  # 3 Mpx, a few hundred bytes
    files["tiny"] = _save(Image.new("RGB", (2, 3), BLUE), d / "tiny.png")
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 48), BLUE).save(jpeg, format="JPEG")
    files["truncated"] = d / "truncated.jpg"
    files["truncated"].write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    files["empty"] = d / "empty.jpg"
    files["empty"].write_bytes(b"")
    files["text"] = d / "text.jpg"
    files["text"].write_text("id,colour\n1,red\n")
    files["missing"] = d / "missing.jpg"
    return files


# ------------------------------------------------------------------------------------------
# images: one decoder for ingest and embed
# ------------------------------------------------------------------------------------------


def test_every_odd_mode_decodes_to_the_expected_rgb(corpus):
    images = {k: load_rgb(corpus[k]) for k in ("rgb", "rgba", "palette", "gray", "gray16", "cmyk")}
    assert all(image.mode == "RGB" for image in images.values())
    with Image.open(corpus["rgb"]) as plain:
        assert np.array_equal(np.asarray(images["rgb"]), np.asarray(plain.convert("RGB")))
    # transparency lands on white, not on the hidden colour (Pillow's convert gives (10, 20, 30))
    assert images["rgba"].getpixel((0, 0)) == RED and images["rgba"].getpixel((5, 5)) == WHITE
    assert images["palette"].getpixel((1, 1)) == RED and images["palette"].getpixel((0, 0)) == WHITE
    assert images["gray"].getpixel((3, 3)) == (77, 77, 77)
    # 16-bit: the full range maps to 0..255 (Pillow's convert would clip 1000 and up to 255)
    row = [images["gray16"].getpixel((x, 0))[0] for x in range(4)]
    assert row == [0, round(32768 * 255 / 65535), 255, round(1000 * 255 / 65535)]
    assert np.allclose(images["cmyk"].getpixel((3, 3)), RED, atol=3)


def test_exif_orientation_is_applied(corpus):
    decoded = read_image(corpus["exif"])
    assert decoded.exif_transposed and decoded.rgb.size == (4, 8)
    # rotated 90 degrees clockwise: the stored left half (red) is now the top half
    assert np.allclose(decoded.rgb.getpixel((2, 1)), RED, atol=40)
    assert np.allclose(decoded.rgb.getpixel((2, 6)), BLUE, atol=40)
    assert check_image(corpus["exif"]).width == 4  # ingest records the upright size


@pytest.mark.parametrize("name", ["gif", "webp"])
def test_animations_use_their_first_frame(corpus, name):
    decoded = read_image(corpus[name])
    assert decoded.n_frames == 3
    assert np.allclose(decoded.rgb.getpixel((2, 2)), RED, atol=2)


def test_broken_files_have_a_reason_and_a_kind(corpus):
    expected = {
        "missing": ("missing", "file not found"),
        "empty": ("empty_file", "empty file (0 bytes)"),
        "text": ("not_an_image", "not a recognised image format"),
        "truncated": ("corrupt_image", "truncated or corrupt image"),
    }
    for name, (kind, reason) in expected.items():
        with pytest.raises(ImageReadError) as error:
            load_rgb(corpus[name])
        assert error.value.kind == kind and error.value.reason.startswith(reason)
        check = check_image(corpus[name])
        assert (check.kind, check.width) == (kind, None) and check.reason.startswith(reason)


def test_decompression_bomb_guard_is_configurable(corpus, tmp_path):
    with pytest.raises(ImageReadError, match=r"2000 x 1500 = 3000000 pixels exceeds .*max_image_pixels"):
        load_rgb(corpus["big"], max_pixels=1_000_000)
    assert load_rgb(corpus["big"], max_pixels=3_000_000).size == (2000, 1500)
    manifest = _csv(tmp_path / "m.csv", ["item_id", "image"], [["big", str(corpus["big"])], ["ok", str(corpus["rgb"])]])
    report, images, _, rejects = _ingest(manifest, tmp_path / "o", max_image_pixels=1_000_000)
    assert images["item_id"].to_list() == ["ok"]
    assert rejects.filter(pl.col("image") == str(corpus["big"]))["kind"].to_list() == ["too_large"]
    assert report.set_aside_by_kind == {"too_large": 1, "no_usable_image": 1}


def test_tiny_images_are_upscaled_by_the_model_transform_or_set_aside(corpus, tmp_path):
    transform, description = build_transform(
        parse_model_spec({"arch": "resnet18", "weights": None}, model_name="model")
    )
    tensor = transform(load_rgb(corpus["tiny"]))
    assert tensor.shape == (3, description["crop_size"], description["crop_size"])
    assert torch.isfinite(tensor).all()
    manifest = _csv(
        tmp_path / "m.csv", ["item_id", "image"], [["tiny", str(corpus["tiny"])], ["ok", str(corpus["rgb"])]]
    )
    _, images, _, _ = _ingest(manifest, tmp_path / "a")
    assert images["item_id"].to_list() == ["tiny", "ok"]  # default: kept
    _, images, _, rejects = _ingest(manifest, tmp_path / "b", min_image_side=4)
    assert images["item_id"].to_list() == ["ok"]
    assert rejects.filter(pl.col("kind") != "no_tags")["kind"].to_list() == ["too_small", "no_usable_image"]
    assert "2 x 3 pixels" in rejects["reason"][0]


def test_embed_dataset_decodes_exactly_like_ingest(corpus):
    # The embed stage's pixels, normalized, equal the weights' own transform applied to what
    # ingest decoded: one decoder (load_rgb) for both stages, bit for bit.
    spec = {"arch": "resnet18", "weights": None, "transforms": {"resize_size": 12, "crop_size": 8}}
    transform, _ = build_transform(parse_model_spec(spec, model_name="m"))
    preprocess = Preprocess.from_transform(transform)
    names = ["rgb", "rgba", "palette", "gray16", "cmyk", "exif", "gif"]
    dataset = ImageFileDataset([str(corpus[n]) for n in names], preprocess)
    for index, name in enumerate(names):
        kind, pixels, _ = dataset[index]
        assert kind == "pixels"
        expected = transform(load_rgb(corpus[name]))
        assert torch.equal(preprocess.normalize(pixels[None])[0], expected), name
    # A file that no longer decodes (emptied after ingest) is set aside, not raised.
    kind, pixels, (reason_kind, reason) = ImageFileDataset([str(corpus["empty"])], preprocess)[0]
    assert (kind, reason_kind, reason) == ("failed", "empty_file", "empty file (0 bytes)")
    assert pixels.shape == (3, 8, 8) and not pixels.any()


# ------------------------------------------------------------------------------------------
# image listings: symlinks, outside paths, repeats, duplicates
# ------------------------------------------------------------------------------------------


def test_symlinks_and_paths_outside_the_manifest_folder_are_resolved_and_recorded(corpus, tmp_path):
    folder = tmp_path / "catalogue"
    folder.mkdir()
    (folder / "link.png").symlink_to(corpus["rgb"])
    manifest = _csv(
        folder / "m.csv",
        ["item_id", "image"],
        [["linked", "link.png"], ["outside", str(corpus["gray"])], ["inside", "own.png"]],
    )
    _save(Image.new("RGB", (3, 3), BLUE), folder / "own.png")
    report, images, _, rejects = _ingest(manifest, tmp_path / "o")
    assert images.select("item_id", "image", "listed_as", "outside_manifest_folder").rows() == [
        ("linked", str(corpus["rgb"].resolve()), "link.png", True),
        ("outside", str(corpus["gray"].resolve()), str(corpus["gray"]), True),
        ("inside", str((folder / "own.png").resolve()), "own.png", False),
    ]
    assert (report.n_symlinked_images, report.n_outside_manifest_folder) == (1, 2)
    assert set(rejects["kind"]) == {"no_tags"} and report.n_rejected == 0


def test_the_same_file_listed_twice_is_used_once_and_reported(corpus, tmp_path):
    folder = corpus["rgb"].parent
    manifest = _csv(
        folder / "twice.csv",
        ["item_id", "image", "colour"],
        [
            ["a", "rgb.png;rgb.png", "red"],  # twice in one cell
            ["b", "gray.png", "grey"],
            ["b", "./gray.png", "grey"],  # twice across rows, spelled differently
        ],
    )
    report, images, _, rejects = _ingest(manifest, tmp_path / "o")
    assert images.select("item_id", "image_rank").rows() == [("a", 0), ("b", 0)]
    assert rejects.select("item_id", "kind", "action").rows() == [
        ("a", "repeated_listing", "set_aside"),
        ("b", "repeated_listing", "set_aside"),
    ]
    assert "'./gray.png'" in rejects["reason"][1]
    assert report.n_repeated_listings == 2 and report.n_rejected == 2


@pytest.mark.parametrize("mode", ["keep", "drop"])
def test_byte_identical_images_of_different_items(corpus, tmp_path, mode):
    copy = tmp_path / "copy.png"
    copy.write_bytes(corpus["rgb"].read_bytes())
    manifest = _csv(
        tmp_path / "m.csv",
        ["item_id", "image"],
        [["first", str(corpus["rgb"])], ["second", str(copy)], ["third", f"{copy};{corpus['gray']}"]],
    )
    report, images, _, rejects = _ingest(manifest, tmp_path / mode, duplicate_images=mode)
    duplicates = rejects.filter(pl.col("kind") == "duplicate_image")
    assert duplicates["item_id"].to_list() == ["second", "third"]
    assert all("of item 'first'" in r for r in duplicates["reason"])
    assert report.n_duplicate_images == 2
    if mode == "keep":
        assert images["item_id"].to_list() == ["first", "second", "third", "third"]
        assert set(duplicates["action"]) == {"kept"} and report.n_rejected == 0
    else:
        assert images.select("item_id", "image").rows() == [
            ("first", str(corpus["rgb"])),
            ("third", str(corpus["gray"])),
        ]
        assert set(duplicates["action"]) == {"set_aside"}
        assert rejects.filter(pl.col("item_id") == "second")["kind"].to_list() == ["duplicate_image", "no_usable_image"]
    with pytest.raises(ConfigError, match="duplicate_images must be one of"):
        IngestOptions(duplicate_images="merge")


# ------------------------------------------------------------------------------------------
# manifests
# ------------------------------------------------------------------------------------------


@pytest.fixture
def pics(tmp_path) -> Path:
    for i in range(4):
        _save(Image.new("RGB", (4, 4), (60 * i, 10, 10)), tmp_path / f"{i}.png")
    return tmp_path


def test_empty_manifests_stop_with_a_message(pics):
    empty = pics / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ManifestError, match=r"empty\.csv is empty \(0 bytes\)"):
        _ingest(empty, pics / "o")
    blank = pics / "blank.csv"
    blank.write_text("\n  \n")
    with pytest.raises(ManifestError, match="only whitespace"):
        _ingest(blank, pics / "o")
    header = _csv(pics / "header.csv", ["item_id", "image"], [])
    with pytest.raises(ManifestError, match=r"header \(\['item_id', 'image'\]\) but no data rows"):
        _ingest(header, pics / "o")
    pl.DataFrame(schema={"item_id": pl.String, "image": pl.String}).write_parquet(pics / "h.parquet")
    with pytest.raises(ManifestError, match="no data rows"):
        _ingest(pics / "h.parquet", pics / "o")


def test_non_utf8_bytes_name_the_line_and_the_fix(pics):
    manifest = _csv(
        pics / "m.csv",
        ["item_id", "image", "colour"],
        [["a", "0.png", "red"], ["b", "1.png", "crème"]],
        encoding="cp1252",
    )
    with pytest.raises(ManifestError, match=r"m\.csv: line 3, byte 11 \(b'\\xe8'\) is not valid utf-8.*encoding"):
        _ingest(manifest, pics / "o")
    _, _, tags, _ = _ingest(manifest, pics / "o", encoding="cp1252")
    assert ("b", "colour", "crème") in _tag_set(tags)
    bom = pics / "bom.csv"
    bom.write_bytes("item_id,image,colour\na,0.png,rouge\n".encode("utf-8-sig"))
    _, images, _, _ = _ingest(bom, pics / "p")
    assert images["item_id"].to_list() == ["a"]  # the BOM is not part of the first column's name
    with pytest.raises(ConfigError, match="not a known text encoding"):
        IngestOptions(encoding="utf-9")


def test_separators_inside_values(pics):
    manifest = _csv(
        pics / "m.csv",
        ["item_id", "image", "colour", "material"],
        [
            ["a", "0.png", "Red, Blue", "cotton|silk"],  # the CSV delimiter, quoted by csv.writer
            ["b", "1.png", "Red", "cotton"],
        ],
    )
    report, _, tags, _ = _ingest(manifest, pics / "o")
    assert _tag_set(tags) == {
        ("a", "colour", "Red, Blue"),
        ("a", "material", "cotton"),
        ("a", "material", "silk"),
        ("b", "colour", "Red"),
        ("b", "material", "cotton"),
    }
    assert report.multi_valued_cells == {"material": {"n_cells": 1, "example": "cotton|silk"}}
    assert any("'material': 1 cell(s) were split" in line for line in report.warnings())
    _, _, tags, _ = _ingest(manifest, pics / "n", value_separator=None)
    assert ("a", "material", "cotton|silk") in _tag_set(tags)
    unquoted = pics / "u.csv"
    unquoted.write_text("item_id,image,colour\na,0.png,Red, Blue\n")
    with pytest.raises(ManifestError, match="(?s)u.csv.*quote values that contain the delimiter"):
        _ingest(unquoted, pics / "o")


def test_whitespace_and_case_variants_are_reported_and_merged_only_when_configured(pics):
    manifest = _csv(
        pics / "m.csv",
        ["item_id", "image", "colour"],
        [["a", "0.png", "Blue"], ["b", "1.png", "blue "], ["c", "2.png", "Blue"], ["d", "3.png", "red"]],
    )
    report, _, tags, _ = _ingest(manifest, pics / "raw")
    assert sorted(tags["value"]) == ["Blue", "Blue", "blue ", "red"]  # verbatim by default
    assert report.n_value_variant_groups == 1 and report.n_values_with_whitespace == 1
    assert report.value_variants == [{"category": "colour", "values": {"Blue": 2, "blue ": 1}, "merged": False}]
    assert any("NOT merged" in line for line in report.warnings())
    report, _, tags, _ = _ingest(manifest, pics / "strip", normalize_values=["strip"])
    assert sorted(tags["value"]) == ["Blue", "Blue", "blue", "red"]
    assert report.n_value_variant_groups == 1
    report, _, tags, _ = _ingest(manifest, pics / "fold", normalize_values=["strip", "casefold"])
    assert tags.select("item_id", "value").rows() == [("a", "Blue"), ("b", "Blue"), ("c", "Blue"), ("d", "red")]
    assert report.value_variants[0]["merged"] is True
    with pytest.raises(ConfigError, match=r"unknown normalization\(s\) \['lower'\]"):
        IngestOptions(normalize_values=["lower"])


def test_empty_strings_and_missing_values_mean_the_same(pics):
    text = 'item_id,image,colour,size\na,0.png,"",S\nb,1.png,,M\nc,2.png,"  ",\n'
    (pics / "m.csv").write_text(text)
    pl.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "image": ["0.png", "1.png", "2.png"],
            "colour": ["", None, "  "],
            "size": ["S", "M", None],
        }
    ).write_parquet(pics / "m.parquet")
    from_csv = _ingest(pics / "m.csv", pics / "c")
    from_parquet = _ingest(pics / "m.parquet", pics / "p")
    expected = {("a", "size", "S"), ("b", "size", "M")}
    assert _tag_set(from_csv[2]) == _tag_set(from_parquet[2]) == expected
    # c has no tag at all: kept (a compared item), reported, never an anchor
    for report, images, _, rejects in (from_csv, from_parquet):
        assert images["item_id"].to_list() == ["a", "b", "c"]
        assert rejects.select("item_id", "kind", "action").rows() == [("c", "no_tags", "kept")]
        assert report.n_items_without_tags == 1 and report.n_rejected == 0


def test_conflicting_duplicate_ids_stop_naming_rows_and_values(pics):
    manifest = _csv(pics / "m.csv", ["item_id", "image", "colour"], [["a", "0.png", "red"], ["a", "1.png", "Red"]])
    with pytest.raises(ManifestError, match=r"item 'a' is listed on rows 1 and 2 .*'red'.*'Red'"):
        _ingest(manifest, pics / "o")


def test_fewer_than_three_usable_items_stop_the_run(pics):
    manifest = _csv(pics / "m.csv", ["item_id", "image"], [["a", "0.png"], ["b", "1.png"], ["c", "missing.png"]])
    out = pics / "o"
    with pytest.raises(ManifestError, match=r"(?s)only 2 usable item\(s\) of 3.*at least 3.*'c'.*file not found"):
        _ingest(manifest, out, min_items=3)
    assert not out.exists() or not any(out.iterdir())


def test_single_value_and_one_value_per_item_categories(pics):
    rows = [[str(i), f"{i}.png", "Apparel", f"name {i}", "red" if i < 2 else "blue"] for i in range(4)]
    manifest = _csv(pics / "m.csv", ["item_id", "image", "master", "name", "colour"], rows)
    report, images, tags, _ = _ingest(manifest, pics / "o")
    assert report.single_value_categories == ("master",)
    assert report.one_value_per_item_categories == ("name",)
    weights = catalogue_weights(tags, images["item_id"].to_list())
    row = {r["category"]: r for r in weights.iter_rows(named=True)}
    # zero entropy: weight exactly 1, no division by zero (n_c = 1, ln 2 in the denominator)
    assert row["master"]["entropy"] == 0 and row["master"]["weight"] == 1.0
    # one value per item: H = ln n, the maximum for n items; w = 1 - ln 4 / ln 5
    assert math.isclose(row["name"]["entropy"], math.log(4))
    assert math.isclose(row["name"]["weight"], 1 - math.log(4) / math.log(5))
    assert weights["weight"].is_finite().all()


# ------------------------------------------------------------------------------------------
# interactions
# ------------------------------------------------------------------------------------------


TAGS = pl.DataFrame({"item_id": ["a", "b", "c"], "category": ["colour"] * 3, "value": ["red", "red", "blue"]})


@pytest.mark.parametrize("content", ["", "user_id,item_id\n"])
def test_an_empty_log_falls_back_to_catalogue_weights_loudly(tmp_path, caplog, content):
    log = tmp_path / "log.csv"
    log.write_text(content)
    interactions = read_interactions(log, ["a", "b", "c"])
    assert interactions.table.height == 0 and interactions.n_rows == 0
    with caplog.at_level(logging.WARNING, logger="corrembed.tags"):
        table = category_table(TAGS, ["a", "b", "c"], "entropy", interactions=interactions.table)
    assert table["source"].to_list() == ["catalogue"]
    assert table.equals(category_table(TAGS, ["a", "b", "c"], "entropy"))
    assert "FALL BACK" in caplog.text and "no rows for catalogue items" in caplog.text


def test_unknown_items_and_users_below_the_threshold(tmp_path, caplog):
    rows = [["u1", i] for i in "abcabc"] + [["u2", "a"], ["u2", "zz"], ["u3", "b"]]
    log = _csv(tmp_path / "log.csv", ["user_id", "item_id"], rows)
    interactions = read_interactions(log, ["a", "b", "c"])
    assert (interactions.n_unknown_items, interactions.unknown_examples, interactions.n_rows) == (1, ("zz",), 9)
    counts = user_counts(interactions.table, 5)
    assert counts == {"n_users": 3, "n_qualifying": 1, "n_below_threshold": 2, "max_interactions": 6}
    table = interaction_weights(TAGS, interactions.table, min_user_interactions=5)
    assert table["n_users"].to_list() == [1]  # only u1 counts
    with caplog.at_level(logging.WARNING, logger="corrembed.tags"):
        fallback = category_table(
            TAGS, ["a", "b", "c"], "entropy", interactions=interactions.table, min_user_interactions=6
        )
    assert fallback["source"].to_list() == ["catalogue"]
    assert "none of its 3 users has more than 6 interactions (most: 6)" in caplog.text


# ------------------------------------------------------------------------------------------
# config errors, caught before anything is embedded
# ------------------------------------------------------------------------------------------


def test_model_spec_errors_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown arch 'resnet_50'.*Did you mean: resnet50"):
        check_model_spec({"arch": "resnet_50", "weights": None}, model_name="m")
    with pytest.raises(
        ConfigError,
        match=r"no weights 'IMAGENET1K_V3'.*Valid weights for resnet50: "
        r"IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT",
    ):
        check_model_spec({"arch": "resnet50", "weights": "IMAGENET1K_V3"}, model_name="m")
    with pytest.raises(ConfigError, match=r"layer 'layer9' is not a graph node.*avgpool, flatten, fc"):
        check_model_spec({"arch": "resnet18", "weights": None, "layer": "layer9"}, model_name="m")
    checkpoint = tmp_path / "small.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), checkpoint)
    with pytest.raises(
        ConfigError,
        match=r"does not fit torchvision resnet18.*122 missing: conv1\.weight.*"
        r"2 unexpected: weight, bias",
    ):
        check_model_spec({"arch": "resnet18", "weights": str(checkpoint)}, model_name="m")
    with pytest.raises(ConfigError, match="does not exist"):
        check_model_spec({"arch": "resnet18", "weights": str(tmp_path / "nope.pth")}, model_name="m")
    ok = check_model_spec({"arch": "resnet18", "weights": None, "layer": "layer3"}, model_name="m")
    assert (ok["kind"], ok["layer"]) == ("random", "layer3")


def test_real_checkpoint_passes_the_start_check(mobilenet_checkpoint):
    record = check_model_spec({"arch": "mobilenet_v2", "weights": str(mobilenet_checkpoint)}, model_name="m")
    assert record["kind"] == "checkpoint"
    with pytest.raises(ConfigError, match="does not fit torchvision mobilenet_v3_small"):
        check_model_spec({"arch": "mobilenet_v3_small", "weights": str(mobilenet_checkpoint)}, model_name="m")


# ------------------------------------------------------------------------------------------
# numerics: unusable embeddings
# ------------------------------------------------------------------------------------------


def _embeddings(rows: list[tuple[str, str, list[float]]]) -> Embeddings:
    return Embeddings(
        item_ids=np.array([r[0] for r in rows], dtype=object),
        images=np.array([r[1] for r in rows], dtype=object),
        vectors=np.array([r[2] for r in rows], dtype=np.float32),
    )


def test_zero_and_non_finite_embeddings_are_excluded_and_reported():
    embeddings = _embeddings(
        [
            ("a", "a0.jpg", [1, 0]),
            ("b", "b0.jpg", [0, 0]),
            ("b", "b1.jpg", [0, 2]),
            ("c", "c0.jpg", [np.nan, 1]),
            ("d", "d0.jpg", [1, 1]),
            ("e", "e0.jpg", [np.inf, 0]),
            ("f", "f0.jpg", [2, 1]),
        ]
    )
    usable = usable_item_embeddings(embeddings, ["a", "b", "c", "d", "e", "f"], "first")
    assert usable.keep.tolist() == [True, True, False, True, False, True]
    assert usable.vectors.tolist() == [[1, 0], [0, 2], [1, 1], [2, 1]]  # b: its first usable image
    assert usable.excluded.rows() == [
        ("b", "b0.jpg", "embedding is all zeros (cosine similarity undefined)"),
        ("c", "c0.jpg", "embedding has non-finite values (NaN or infinity)"),
        ("e", "e0.jpg", "embedding has non-finite values (NaN or infinity)"),
        ("c", "", "item excluded from scoring: no image with a usable embedding"),
        ("e", "", "item excluded from scoring: no image with a usable embedding"),
    ]
    assert (usable.n_excluded_images, usable.n_excluded_items) == (3, 2)
    cancelling = _embeddings(
        [("a", "1", [1, 0]), ("a", "2", [-1, 0]), ("b", "3", [1, 1]), ("c", "4", [0, 1]), ("d", "5", [1, 2])]
    )
    mean = usable_item_embeddings(cancelling, ["a", "b", "c", "d"], "mean")
    assert mean.keep.tolist() == [False, True, True, True]
    assert "mean of its image embeddings is zero" in mean.excluded["reason"][0]


def test_fewer_than_three_usable_embeddings_stop_scoring():
    embeddings = _embeddings([("a", "a.jpg", [1, 0]), ("b", "b.jpg", [0, 0]), ("c", "c.jpg", [0, 1])])
    with pytest.raises(
        ScoringError, match=r"only 2 of 3 items have a usable embedding.*b b\.jpg: embedding is all zeros"
    ):
        usable_item_embeddings(embeddings, ["a", "b", "c"])


# ------------------------------------------------------------------------------------------
# property: random manifests either round-trip or raise a CorrEmbedError with a message
# ------------------------------------------------------------------------------------------

SEPARATORS = ["|", ";", "/", ",", "+", "::", " / "]
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=6)
_ids = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Z")), min_size=1, max_size=5)


@st.composite
def random_manifests(draw):
    """(layout, options, table, expected tags or None when an error is documented)."""
    layout = draw(st.sampled_from(["wide", "long"]))
    separator = draw(st.sampled_from(SEPARATORS))
    strip = draw(st.booleans())
    categories = draw(
        st.lists(
            _ids.filter(lambda c: c not in ("item_id", "image", "category", "value")),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    items = draw(st.lists(_ids, min_size=1, max_size=5, unique=True))
    tags = {}
    for item in items:
        for category in categories:
            for value in draw(st.lists(_text, max_size=2)):
                tags.setdefault(item, {}).setdefault(category, []).append(value)
    fault = draw(st.sampled_from([None, None, None, "no_item_column", "empty_id", "conflict"]))
    columns = ["item_id", "image", *categories] if layout == "wide" else ["item_id", "image", "category", "value"]
    rows = []
    for item in items:
        if layout == "wide":
            row = {"item_id": item, "image": "img.png"}
            for category in categories:
                values = tags.get(item, {}).get(category, [])
                # the values must survive splitting: no separator inside them
                values = (
                    [v for v in values if separator.strip() not in v and separator not in v]
                    if (separator.strip())
                    else values
                )
                tags.setdefault(item, {})[category] = values
                row[category] = separator.join(values) if values else draw(st.sampled_from([None, ""]))
            rows.append(row)
        else:
            rows.append({"item_id": item, "image": "img.png", "category": None, "value": None})
            for category, values in tags.get(item, {}).items():
                rows += [{"item_id": item, "image": "img.png", "category": category, "value": v} for v in values]
    expected = set()
    for item, by_category in tags.items():
        for category, values in by_category.items():
            for v in values:
                if v.strip():
                    expected.add((item, category, v.strip() if strip else v))
    if fault == "no_item_column":
        for row in rows:
            row["id"] = row.pop("item_id")
        columns = ["id", *columns[1:]]
    elif fault == "empty_id":
        rows.append({**rows[0], "item_id": draw(st.sampled_from(["", "  ", None]))})
    elif fault == "conflict" and layout == "wide":
        rows.append({**rows[0], categories[0]: (rows[0][categories[0]] or "") + separator + "conflict!"})
    documented_error = fault in ("no_item_column", "empty_id") or (fault == "conflict" and layout == "wide")
    table = pl.DataFrame(
        [{c: r.get(c) for c in columns} for r in rows], schema={c: pl.String for c in columns}, orient="row"
    )
    options = {"format": layout, "value_separator": separator, "normalize_values": ["strip"] if strip else []}
    return options, table, items, None if documented_error else expected, draw(st.booleans())


@pytest.fixture(scope="module")
def property_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("random_manifests")
    _save(Image.new("RGB", (4, 4), RED), folder / "img.png")
    return folder


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=random_manifests())
def test_random_manifests_round_trip_or_raise_a_documented_error(property_dir, case):
    options, table, items, expected, as_parquet = case
    case_id = hashlib.sha256(repr(case).encode()).hexdigest()[:16]
    manifest = property_dir / f"{case_id}.{'parquet' if as_parquet else 'csv'}"
    table.write_parquet(manifest) if as_parquet else table.write_csv(manifest)
    try:
        report, images, tags, rejects = _ingest(manifest, property_dir / case_id, **options)
    except CorrEmbedError as error:
        assert str(error).strip(), "an error without a message"
        assert expected is None, f"unexpected {type(error).__name__}: {error}"
        return
    # any other exception type propagates and fails the test
    assert expected is not None, "a documented error was not raised"
    assert images["item_id"].to_list() == items
    assert _tag_set(tags) == expected and tags.height == len(expected)
    assert report.n_rejected == 0

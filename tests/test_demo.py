"""The demo catalogue: deterministic, decodable, tagged as drawn, with designed user preferences."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from corrembed.ingest import IngestOptions, ingest_catalogue
from corrembed.ingest.demo import COLOURS, PATTERNS, SHAPES, TAG_COLUMNS, make_demo_catalogue

SMALL = dict(n_items=200, n_users=80, seed=3, image_size=64)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    return make_demo_catalogue(tmp_path_factory.mktemp("demo"), **SMALL)


@pytest.fixture(scope="module")
def manifest(demo) -> pl.DataFrame:
    return pl.read_csv(demo["manifest"], infer_schema=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(demo, tmp_path):
    again = make_demo_catalogue(tmp_path / "again", **SMALL)
    first, second = _files(Path(demo["out_dir"])), _files(Path(again["out_dir"]))
    assert first.keys() == second.keys()
    assert len(first) == demo["n_images"] + 2  # images + manifest + interactions
    assert first == second


def test_other_seed_gives_other_catalogue(demo, tmp_path):
    other = make_demo_catalogue(tmp_path / "other", **{**SMALL, "seed": 4})
    assert Path(other["manifest"]).read_bytes() != Path(demo["manifest"]).read_bytes()
    assert (Path(other["images_dir"]) / "00001.jpg").read_bytes() != (
        Path(demo["images_dir"]) / "00001.jpg"
    ).read_bytes()


def test_manifest_layout_and_tags(demo, manifest):
    assert manifest.columns == demo["manifest_columns"] == ["item_id", "image", *TAG_COLUMNS]
    assert manifest.height == SMALL["n_items"]
    # zero-padded string ids, unique
    assert manifest["item_id"].to_list() == [f"{i:05d}" for i in range(1, SMALL["n_items"] + 1)]
    for column in ("category", "colour", "pattern"):
        assert manifest[column].null_count() == 0
    assert set(manifest["category"]) <= set(SHAPES)
    assert set(manifest["colour"]) <= set(COLOURS)
    assert set(manifest["pattern"]) <= set(PATTERNS)
    # some items lack some categories; style is multi-valued
    assert sum(manifest[c].null_count() for c in ("occasion", "material", "season", "style")) > 0
    assert manifest["style"].drop_nulls().str.contains("|", literal=True).any()
    # sport items are tagged sporty
    sport = manifest.filter(pl.col("occasion") == "sport", pl.col("style").is_not_null())
    assert sport.height > 0
    assert all("sporty" in s.split("|") for s in sport["style"])


def test_images_decode_and_second_views_exist(demo, manifest):
    root = Path(demo["out_dir"])
    paths = [p for cell in manifest["image"] for p in cell.split(demo["image_separator"])]
    assert len(paths) == demo["n_images"]
    n_second = sum(";" in cell for cell in manifest["image"])
    assert 0 < n_second < SMALL["n_items"] * 0.4
    for relative in paths:
        with Image.open(root / relative) as image:
            image.load()
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size == (SMALL["image_size"], SMALL["image_size"])


def _garment_colour(path: Path) -> np.ndarray | None:
    """Median colour of pixels far from the background (same row, left edge), or None."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    background = np.median(pixels[:, :4, :], axis=1, keepdims=True)
    far = np.linalg.norm(pixels - background, axis=2) > 60
    if far.sum() < 200:
        return None
    return np.median(pixels[far], axis=0)


def test_plain_items_show_their_tagged_colour(demo, manifest):
    """Oracle: for plain items, the dominant garment colour is nearest to the tagged colour."""
    names = list(COLOURS)
    reference = np.array([COLOURS[n] for n in names], dtype=np.float64)
    checked = 0
    # White garments are skipped: on white, grey or beige backgrounds their pixels cannot be
    # told from the background by this simple oracle.
    plain = manifest.filter(pl.col("pattern") == "plain", pl.col("colour") != "white")
    for row in plain.iter_rows(named=True):
        colour = _garment_colour(Path(demo["out_dir"]) / row["image"].split(";")[0])
        assert colour is not None, row["item_id"]
        nearest = names[int(np.argmin(np.linalg.norm(reference - colour, axis=1)))]
        assert nearest == row["colour"], (row["item_id"], colour)
        checked += 1
    assert checked >= 10


def _normalized_entropy(values: list, n_values: int) -> float:
    counts = np.array(list(Counter(values).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum() / math.log(n_values + 1))


def test_users_are_consistent_in_colour_and_category_not_pattern(demo, manifest):
    interactions = pl.read_csv(demo["interactions"], infer_schema=False)
    assert interactions.columns == ["user_id", "item_id"]
    assert interactions.height == demo["n_interactions"]
    assert set(interactions["item_id"]) <= set(manifest["item_id"])
    per_user = interactions.group_by("user_id", maintain_order=True).agg("item_id")
    assert per_user.height == SMALL["n_users"]
    sizes = per_user["item_id"].list.len()
    assert 0.6 <= (sizes > 10).mean() < 1.0  # most users > 10 interactions, some fewer

    tags = {row["item_id"]: row for row in manifest.iter_rows(named=True)}
    mean_entropy = {}
    for category, n_values in (("colour", len(COLOURS)), ("category", len(SHAPES)), ("pattern", len(PATTERNS))):
        mean_entropy[category] = np.mean(
            [
                _normalized_entropy([tags[i][category] for i in items], n_values)
                for items in per_user["item_id"]
                if len(items) > 10
            ]
        )
    assert mean_entropy["colour"] < 0.5 * mean_entropy["pattern"], mean_entropy
    assert mean_entropy["category"] < 0.6 * mean_entropy["pattern"], mean_entropy
    assert mean_entropy["pattern"] > 0.55, mean_entropy


def test_demo_ingests_cleanly_with_its_own_options(demo, manifest, tmp_path):
    options = IngestOptions.from_config(demo["ingest_options"])
    report = ingest_catalogue(
        demo["manifest"],
        images_out=tmp_path / "images.parquet",
        tags_out=tmp_path / "tags.parquet",
        rejects_out=tmp_path / "rejects.csv",
        options=options,
        threads=2,
    )
    assert report.n_rejected == 0
    assert report.n_items == SMALL["n_items"]
    assert report.n_images == demo["n_images"]
    assert report.categories == TAG_COLUMNS
    tags = pl.read_parquet(tmp_path / "tags.parquet")
    expected_style_rows = sum(len(s.split("|")) for s in manifest["style"].drop_nulls())
    assert tags.filter(pl.col("category") == "style").height == expected_style_rows

"""Ingest: manifest layouts, image checks and rejects, errors, readers, real data."""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from corrembed.errors import ConfigError, ManifestError
from corrembed.ingest import (
    IngestOptions,
    check_image,
    ingest_catalogue,
    read_catalogue,
    read_interactions,
)

# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def _image(path: Path, size=(12, 8), colour=(200, 30, 30), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _ingest(manifest: Path, out: Path, **options):
    options.setdefault("min_items", 1)  # these tests use catalogues of 1-2 items too
    report = ingest_catalogue(
        manifest,
        images_out=out / "images.parquet",
        tags_out=out / "tags.parquet",
        rejects_out=out / "rejects.csv",
        **options,
    )
    images, tags = read_catalogue(out / "images.parquet", out / "tags.parquet")
    full = pl.read_parquet(out / "images.parquet")
    images = images.with_columns(full.select("outside_manifest_folder", "listed_as"))
    rejects = pl.read_csv(out / "rejects.csv", infer_schema=False)
    return report, images, tags, rejects


def _tag_set(tags: pl.DataFrame) -> set[tuple[str, str, str]]:
    return set(tags.select("item_id", "category", "value").iter_rows())


@pytest.fixture
def pictures(tmp_path) -> dict[str, Path]:
    """Five small valid images of different sizes under tmp_path/pics."""
    sizes = {"a": (10, 7), "b": (5, 9), "c": (16, 16), "d": (3, 4), "e": (8, 8)}
    return {k: _image(tmp_path / "pics" / f"{k}.png", size=s) for k, s in sizes.items()}


# The catalogue used by the layout tests, as the expected (item, category, value) set.
EXPECTED_TAGS = {
    ("007", "colour", "red"),
    ("007", "style", "classic"),
    ("007", "style", "minimal"),
    ("7", "colour", "blue"),
    ("7", "pattern", "dots"),
    ("0007", "pattern", "plain"),
    ("0007", "style", "sporty"),
}


def _wide_manifest(tmp_path: Path) -> Path:
    # 007 has two images on two rows with the same tags (values in another order);
    # 7 has two images in one cell; 0007 lacks a colour.
    return _csv(
        tmp_path / "wide.csv",
        ["item_id", "image", "colour", "pattern", "style"],
        [
            ["007", "pics/a.png", "red", "", "classic| minimal"],
            ["7", "pics/b.png;pics/c.png", "blue", "dots", ""],
            ["007", "pics/d.png", "red", "", "minimal|classic|classic"],
            ["0007", "pics/e.png", "", "plain", " sporty "],
        ],
    )


def _long_manifest(tmp_path: Path) -> Path:
    return _csv(
        tmp_path / "long.csv",
        ["item_id", "category", "value", "image"],
        [
            ["007", "colour", "red", "pics/a.png"],
            ["7", "colour", "blue", "pics/b.png"],
            ["007", "style", "classic", "pics/a.png"],
            ["7", "pattern", "dots", "pics/c.png"],
            ["007", "style", "minimal", "pics/d.png"],
            ["0007", "pattern", "plain", "pics/e.png"],
            ["0007", "style", "sporty", "pics/e.png"],
            ["0007", "colour", "", "pics/e.png"],  # empty value: no tag
        ],
    )


EXPECTED_IMAGES = [("007", "a", 0), ("007", "d", 1), ("7", "b", 0), ("7", "c", 1), ("0007", "e", 0)]


def _check_expected_catalogue(images: pl.DataFrame, tags: pl.DataFrame, pictures) -> None:
    assert images.select("item_id", "image", "image_rank").rows() == [
        (item, str(pictures[key]), rank) for item, key, rank in EXPECTED_IMAGES
    ]
    for row in images.iter_rows(named=True):
        path = Path(row["image"])
        assert path.is_absolute()
        with Image.open(path) as image:
            assert (row["width"], row["height"]) == image.size
        assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert _tag_set(tags) == EXPECTED_TAGS
    assert tags.height == len(EXPECTED_TAGS)  # no duplicate rows
    assert tags["item_id"].unique(maintain_order=True).to_list() == ["007", "7", "0007"]
    assert images.drop("outside_manifest_folder", "listed_as").schema == {
        "item_id": pl.String,
        "image": pl.String,
        "image_rank": pl.Int32,
        "width": pl.Int32,
        "height": pl.Int32,
        "sha256": pl.String,
    }
    assert not images["outside_manifest_folder"].any()


# ------------------------------------------------------------------------------------------
# layouts
# ------------------------------------------------------------------------------------------


def test_wide_and_long_give_the_same_catalogue(tmp_path, pictures):
    wide = _ingest(_wide_manifest(tmp_path), tmp_path / "w", image_separator=";", threads=3, normalize_values=["strip"])
    long = _ingest(_long_manifest(tmp_path), tmp_path / "l", format="long", threads=1)
    for _, images, tags, rejects in (wide, long):
        _check_expected_catalogue(images, tags, pictures)
        assert rejects.height == 0
    assert wide[1].equals(long[1])
    # category order differs by layout (columns vs first appearance), the rows do not
    assert _tag_set(wide[2]) == _tag_set(long[2])
    report = wide[0]
    assert (report.n_items, report.n_images, report.n_rejected) == (3, 5, 0)
    assert report.categories == ("colour", "pattern", "style")
    assert report.values_per_category == {"colour": 2, "pattern": 2, "style": 3}
    assert report.items_per_category == {"colour": 2, "pattern": 2, "style": 2}


def test_parquet_manifest_equals_csv_manifest(tmp_path, pictures):
    csv_path = _wide_manifest(tmp_path)
    parquet_path = tmp_path / "wide.parquet"
    pl.read_csv(csv_path, infer_schema=False).write_parquet(parquet_path)
    from_csv = _ingest(csv_path, tmp_path / "c", image_separator=";", normalize_values=["strip"])
    from_parquet = _ingest(parquet_path, tmp_path / "p", image_separator=";", normalize_values=["strip"])
    assert from_csv[1].equals(from_parquet[1])
    assert from_csv[2].equals(from_parquet[2])
    _check_expected_catalogue(from_parquet[1], from_parquet[2], pictures)


def test_parquet_manifest_with_integer_columns_reads_as_strings(tmp_path, pictures):
    manifest = tmp_path / "ints.parquet"
    pl.DataFrame({"item_id": [1, 2], "image": ["pics/a.png", "pics/b.png"], "size": [38, None]}).write_parquet(manifest)
    _, images, tags, _ = _ingest(manifest, tmp_path / "o")
    assert images["item_id"].to_list() == ["1", "2"]
    assert _tag_set(tags) == {("1", "size", "38")}


def test_image_template_with_placeholders(tmp_path, pictures):
    manifest = _csv(
        tmp_path / "t.csv",
        ["sku", "folder", "colour", "image"],
        [["a", "pics", "red", "ignored.jpg"], ["c", "pics", "green", ""], ["e", "", "blue", "x"]],
    )
    report, images, tags, rejects = _ingest(
        manifest,
        tmp_path / "o",
        item_column="sku",
        image_template="{folder}/{sku}.png",
        exclude_categories=["folder"],
    )
    assert images.select("item_id", "image").rows() == [
        ("a", str(pictures["a"])),
        ("c", str(pictures["c"])),
    ]
    # the image column is never a tag, even when the template supplies the images
    assert _tag_set(tags) == {("a", "colour", "red"), ("c", "colour", "green")}
    assert rejects.rows() == [
        (
            "e",
            "",
            "item dropped: no image listed (image_template '{folder}/{sku}.png' needs "
            "column(s) ['folder'], empty on row 3)",
            "no_image_listed",
            "set_aside",
        )
    ]
    assert report.n_dropped_items == 1


def test_template_naming_unknown_column_lists_columns(tmp_path, pictures):
    manifest = _csv(tmp_path / "t.csv", ["id", "colour"], [["a", "red"]])
    with pytest.raises(ManifestError) as error:
        _ingest(manifest, tmp_path / "o", item_column="id", image_template="pics/{sku}.png")
    message = str(error.value)
    assert "['sku']" in message and "['id', 'colour']" in message and "t.csv" in message


def test_absolute_image_paths_are_kept(tmp_path, pictures):
    elsewhere = tmp_path / "manifests" / "deep"
    elsewhere.mkdir(parents=True)
    manifest = _csv(elsewhere / "m.csv", ["item_id", "image"], [["x", str(pictures["c"])], ["y", "../../pics/d.png"]])
    _, images, _, _ = _ingest(manifest, tmp_path / "o")
    assert images["image"].to_list() == [str(pictures["c"]), str(pictures["d"])]


def test_explicit_tag_columns_and_exclusions(tmp_path, pictures):
    manifest = _csv(
        tmp_path / "m.csv",
        ["item_id", "image", "colour", "year", "note"],
        [["1", "pics/a.png", "red", "2011", "n"]],
    )
    _, _, tags, _ = _ingest(manifest, tmp_path / "a", exclude_categories=["year", "note"])
    assert _tag_set(tags) == {("1", "colour", "red")}
    _, _, tags, _ = _ingest(manifest, tmp_path / "b", tag_columns=["year"])
    assert _tag_set(tags) == {("1", "year", "2011")}
    report, *_ = _ingest(manifest, tmp_path / "c", exclude_categories=["yaer"])
    assert report.unknown_excluded_categories == ("yaer",)
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['size'\]"):
        _ingest(manifest, tmp_path / "d", tag_columns=["colour", "size"])


def test_string_ids_are_preserved(tmp_path, pictures):
    manifest = _csv(
        tmp_path / "ids.csv",
        ["item_id", "image", "code"],
        [["007", "pics/a.png", "00"], ["7", "pics/b.png", "1e3"], ["7.0", "pics/c.png", "TRUE"]],
    )
    _, images, tags, _ = _ingest(manifest, tmp_path / "o")
    assert images["item_id"].to_list() == ["007", "7", "7.0"]
    assert tags.rows() == [("007", "code", "00"), ("7", "code", "1e3"), ("7.0", "code", "TRUE")]


# ------------------------------------------------------------------------------------------
# unreadable images
# ------------------------------------------------------------------------------------------


@pytest.fixture
def broken(tmp_path) -> dict[str, Path]:
    """Valid and broken image files; the JPEG is written to disk, then cut in half."""
    folder = tmp_path / "pics"
    good = _image(folder / "good.jpg", size=(64, 48), fmt="JPEG")
    truncated = folder / "truncated.jpg"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    text = folder / "text.jpg"
    text.write_text("this is not a picture\n")
    return {"good": good, "truncated": truncated, "empty": empty, "text": text, "missing": folder / "missing.jpg"}


def test_check_image_reasons(broken):
    assert check_image(broken["good"]).reason is None
    assert check_image(broken["good"]).width == 64
    assert check_image(broken["missing"]).reason == "file not found"
    assert check_image(broken["empty"]).reason == "empty file (0 bytes)"
    assert check_image(broken["text"]).reason == "not a recognised image format"
    assert check_image(broken["truncated"]).reason.startswith("truncated or corrupt image")
    assert check_image(broken["good"].parent).reason.startswith("not a file")


def test_unreadable_images_are_rejected_and_the_run_goes_on(tmp_path, broken):
    manifest = _csv(
        tmp_path / "m.csv",
        ["item_id", "image", "colour"],
        [
            ["mixed", "pics/truncated.jpg;pics/good.jpg", "red"],
            ["gone", "pics/missing.jpg;pics/empty.jpg", "blue"],
            ["text", "pics/text.jpg", "green"],
            ["none", "", "black"],
            ["ok", "pics/good.jpg", "white"],
        ],
    )
    report, images, tags, rejects = _ingest(manifest, tmp_path / "o", image_separator=";", threads=2)
    assert images.select("item_id", "image_rank").rows() == [("mixed", 0), ("ok", 0)]
    assert images["image"].to_list() == [str(broken["good"])] * 2
    assert _tag_set(tags) == {("mixed", "colour", "red"), ("ok", "colour", "white")}
    reasons = {
        (r["item_id"], Path(r["image"]).name if r["image"] else ""): r["reason"] for r in rejects.iter_rows(named=True)
    }
    assert reasons[("mixed", "truncated.jpg")].startswith("truncated or corrupt image")
    assert reasons[("gone", "missing.jpg")] == "file not found"
    assert reasons[("gone", "empty.jpg")] == "empty file (0 bytes)"
    assert reasons[("gone", "")] == "item dropped: none of its 2 image(s) could be used"
    assert reasons[("text", "text.jpg")] == "not a recognised image format"
    assert reasons[("none", "")].startswith("item dropped: no image listed (column 'image' empty on row 4")
    # good.jpg is listed by two items: reported as a duplicate, kept (duplicate_images: keep)
    assert reasons[("ok", "good.jpg")].startswith("duplicate image: same bytes as")
    assert len(reasons) == rejects.height == 8
    assert rejects.filter(pl.col("action") == "set_aside").height == report.n_rejected == 7
    assert report.n_duplicate_images == 1
    assert (report.n_items, report.n_images, report.n_rejected_images, report.n_dropped_items) == (2, 2, 4, 3)


def test_on_unreadable_fail_raises_and_writes_nothing(tmp_path, broken):
    manifest = _csv(tmp_path / "m.csv", ["item_id", "image"], [["a", "pics/good.jpg"], ["b", "pics/empty.jpg"]])
    out = tmp_path / "o"
    with pytest.raises(ManifestError) as error:
        _ingest(manifest, out, on_unreadable="fail")
    message = str(error.value)
    assert "m.csv" in message and "empty.jpg" in message and "empty file (0 bytes)" in message
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------------------------------------------------
# manifest errors
# ------------------------------------------------------------------------------------------


def test_missing_column_lists_the_columns_found(tmp_path):
    manifest = _csv(tmp_path / "m.csv", ["id", "picture", "colour"], [["1", "a.png", "red"]])
    with pytest.raises(ManifestError) as error:
        _ingest(manifest, tmp_path / "o")
    message = str(error.value)
    assert "['item_id']" in message and "['id', 'picture', 'colour']" in message and "m.csv" in message
    with pytest.raises(ManifestError, match=r"\['image'\].*columns found: \['id', 'picture', 'colour'\]"):
        _ingest(manifest, tmp_path / "o", item_column="id")
    with pytest.raises(ManifestError, match=r"\['category', 'value'\]"):
        _ingest(manifest, tmp_path / "o", item_column="id", image_column="picture", format="long")


def test_conflicting_duplicate_rows_name_item_and_rows(tmp_path, pictures):
    manifest = _csv(
        tmp_path / "m.csv",
        ["item_id", "image", "colour"],
        [["a", "pics/a.png", "red"], ["b", "pics/b.png", "red"], ["a", "pics/c.png", "blue"]],
    )
    with pytest.raises(ManifestError, match=r"item 'a' is listed on rows 1 and 3 .*red.*blue"):
        _ingest(manifest, tmp_path / "o")


def test_unsupported_suffix_and_empty_ids(tmp_path, pictures):
    manifest = tmp_path / "m.xlsx"
    manifest.write_text("x")
    with pytest.raises(ManifestError, match=r"m\.xlsx.*CSV \(\.csv\) and Parquet \(\.parquet\)"):
        _ingest(manifest, tmp_path / "o")
    manifest = _csv(tmp_path / "m.csv", ["item_id", "image"], [["a", "pics/a.png"], ["  ", "pics/b.png"]])
    with pytest.raises(ManifestError, match="row 2 .*empty item id"):
        _ingest(manifest, tmp_path / "o")
    with pytest.raises(ManifestError, match="does not exist"):
        _ingest(tmp_path / "nope.csv", tmp_path / "o")


def test_long_value_without_category_is_an_error(tmp_path, pictures):
    manifest = _csv(tmp_path / "m.csv", ["item_id", "category", "value", "image"], [["a", "", "red", "pics/a.png"]])
    with pytest.raises(ManifestError, match="row 1 .*'red'.*empty 'category'"):
        _ingest(manifest, tmp_path / "o", format="long")


def test_options_from_config():
    options = IngestOptions.from_config(
        {"manifest": "data/m.csv", "format": "long", "exclude_categories": ["year"], "image_template": "{id}.jpg"}
    )
    assert options.format == "long" and options.exclude_categories == ("year",)
    assert IngestOptions.from_config(None) == IngestOptions()
    with pytest.raises(ConfigError, match="unknown option.*'colums'"):
        IngestOptions.from_config({"colums": ["a"]})
    with pytest.raises(ConfigError, match="format"):
        IngestOptions.from_config({"format": "tall"})
    with pytest.raises(ConfigError, match="on_unreadable"):
        IngestOptions.from_config({"on_unreadable": "skip"})
    with pytest.raises(ConfigError, match="no image source"):
        IngestOptions.from_config({"image_column": None})
    with pytest.raises(ConfigError, match="placeholder"):
        IngestOptions.from_config({"image_template": "images/{}.jpg"})
    with pytest.raises(ConfigError, match="exclude_categories"):
        IngestOptions.from_config({"exclude_categories": "year"})


# ------------------------------------------------------------------------------------------
# readers
# ------------------------------------------------------------------------------------------


def test_read_interactions(tmp_path):
    log = _csv(
        tmp_path / "log.csv",
        ["user", "item_id", "when"],
        [["001", "007", "x"], ["002", "7", "y"], ["001", "999", "z"], ["003", "", "w"], ["001", "007", "v"]],
    )
    table, n_unknown, examples, n_rows = read_interactions(log, ["007", "7"], user_column="user")
    assert table.columns == ["user_id", "item_id"]
    assert table.rows() == [("001", "007"), ("002", "7"), ("001", "007")]
    assert n_unknown == 2  # "999" and the empty item id
    assert examples == ("999", "") and n_rows == 5
    parquet = tmp_path / "log.parquet"
    pl.read_csv(log, infer_schema=False).write_parquet(parquet)
    assert read_interactions(parquet, ["007", "7"], user_column="user").table.equals(table)
    with pytest.raises(ManifestError, match=r"\['user_id'\].*columns found: \['user', 'item_id', 'when'\]"):
        read_interactions(log, ["007"])
    no_user = _csv(tmp_path / "no_user.csv", ["user_id", "item_id"], [["1", "007"], [" ", "007"]])
    with pytest.raises(ManifestError, match="no_user.csv: 1 row.*empty 'user_id'.*data row 2"):
        read_interactions(no_user, ["007"])


def test_read_catalogue_rejects_foreign_files(tmp_path):
    pl.DataFrame({"item_id": ["a"], "path": ["x"]}).write_parquet(tmp_path / "images.parquet")
    pl.DataFrame({"item_id": ["a"], "category": ["c"], "value": ["v"]}).write_parquet(tmp_path / "tags.parquet")
    with pytest.raises(ManifestError, match="images.parquet.*'image'"):
        read_catalogue(tmp_path / "images.parquet", tmp_path / "tags.parquet")
    with pytest.raises(ManifestError, match="run the ingest stage"):
        read_catalogue(tmp_path / "nope.parquet", tmp_path / "tags.parquet")


# ------------------------------------------------------------------------------------------
# real data
# ------------------------------------------------------------------------------------------


VISUAL_CATEGORIES = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage")


def test_real_catalogue_subset(fashion_dir, tmp_path):
    with open(fashion_dir / "tags.csv", newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(itertools.islice(reader, 200))
    manifest = _csv(tmp_path / "subset.csv", header, rows)
    report, images, tags, rejects = _ingest(
        manifest,
        tmp_path / "o",
        item_column="id",
        image_template=os.path.join(str(fashion_dir), "images", "{id}.jpg"),
        exclude_categories=("id", "image", "year"),
        threads=2,
    )
    assert (report.n_items, report.n_images, report.n_rejected) == (200, 200, 0)
    assert report.categories == VISUAL_CATEGORIES
    # The real catalogue has two products sharing one photo: reported, kept.
    assert rejects.select("item_id", "kind", "action").rows() == [("10655", "duplicate_image", "kept")]
    assert "item '10654'" in rejects["reason"][0] and report.n_duplicate_images == 1
    assert images["item_id"].to_list() == [r[header.index("id")] for r in rows]
    assert set(images["width"]) == {224} and set(images["height"]) == {224}
    expected = {(r[header.index("id")], c, r[header.index(c)]) for r in rows for c in VISUAL_CATEGORIES}
    assert _tag_set(tags) == expected and tags.height == 1400
    first = images.row(0, named=True)
    assert first["sha256"] == hashlib.sha256(Path(first["image"]).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------
# property: random wide manifests round-trip to the expected tag set
# ------------------------------------------------------------------------------------------

SEPARATORS = ["|", ";", "/", ",", "+", "::", " / "]
_value_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=6)
_id_text = st.text(alphabet=st.characters(whitelist_categories=("L", "Nd")), min_size=1, max_size=5)


@st.composite
def wide_manifests(draw):
    separator = draw(st.sampled_from(SEPARATORS))
    forbidden = set(separator.strip() or separator)
    categories = draw(
        st.lists(_id_text.filter(lambda c: c not in ("item_id", "image")), min_size=1, max_size=4, unique=True)
    )
    item_ids = draw(st.lists(_id_text, min_size=1, max_size=6, unique=True))
    value = _value_text.filter(lambda v: not (set(v) & forbidden))
    rows, expected = [], set()
    for item_id in item_ids:
        row = {"item_id": item_id, "image": "img.png"}
        for category in categories:
            values = draw(st.lists(value, max_size=3))
            padding = draw(st.lists(st.sampled_from(["", " ", "  "]), min_size=2, max_size=2))
            row[category] = (separator.join(padding[0] + v + padding[1] for v in values)) if values else None
            expected |= {(item_id, category, v.strip()) for v in values if v.strip()}
        rows.append(row)
    as_parquet = draw(st.booleans())
    return separator, categories, rows, expected, as_parquet


@pytest.fixture(scope="module")
def property_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("property")
    _image(folder / "img.png")
    return folder


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=wide_manifests())
def test_random_wide_manifests_round_trip(property_dir, case):
    separator, categories, rows, expected, as_parquet = case
    columns = ["item_id", "image", *categories]
    table = pl.DataFrame({c: [r[c] for r in rows] for c in columns}, schema={c: pl.String for c in columns})
    case_id = hashlib.sha256(repr(case).encode()).hexdigest()[:16]
    manifest = property_dir / f"{case_id}.{'parquet' if as_parquet else 'csv'}"
    if as_parquet:
        table.write_parquet(manifest)
    else:
        table.write_csv(manifest)
    out = property_dir / case_id
    report, images, tags, rejects = _ingest(
        manifest, out, value_separator=separator, threads=1, normalize_values=["strip"]
    )
    # every item shares img.png: duplicates reported and kept, nothing set aside
    assert set(rejects["kind"]) <= {"duplicate_image", "no_tags"} and report.n_rejected == 0
    assert images["item_id"].to_list() == [r["item_id"] for r in rows]
    assert _tag_set(tags) == expected
    assert tags.height == len(expected)
    assert report.n_tag_rows == len(expected)

"""Typed stage records: round trips, files written before schema_version, unknown versions, summary."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from corrembed.errors import CorrEmbedError
from corrembed.ingest import ingest_catalogue
from corrembed.records import CatalogueReport, EmbeddingMeta, RecordVersionError, ScoreRecord
from corrembed.score import score_report
from corrembed.summary.table import SUMMARY_COLUMNS, read_metas, read_scores, summary_table


@pytest.fixture(scope="module")
def catalogue_report(tmp_path_factory) -> CatalogueReport:
    """A real ingest report of a small catalogue with rejects of several kinds."""
    root = tmp_path_factory.mktemp("catalogue")
    (root / "img").mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (16, 12), colour).save(root / "img" / f"{i}.png")
    (root / "img" / "empty.png").write_bytes(b"")
    rows = [
        ["a", "img/0.png", "Red|Blue"],
        ["b", "img/1.png;img/missing.png", "Green"],
        ["c", "img/2.png", ""],
        ["d", "img/empty.png", "Red"],
    ]
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "image", "colour"])
        writer.writerows(rows)
    return ingest_catalogue(
        root / "manifest.csv",
        images_out=root / "images.parquet",
        tags_out=root / "tags.parquet",
        rejects_out=root / "rejects.csv",
        threads=1,
    )


def _meta_dict() -> dict:
    """A meta.json as merge_embedding_shards writes it (before schema_version), plus a key the
    record does not declare."""
    return {
        "model": "mnv3",
        "arch": "mobilenet_v3_small",
        "weights": {"configured": None, "resolved": None, "kind": "random"},
        "layer": "penultimate",
        "transforms": {"resize_size": [256], "crop_size": [224]},
        "identity": {"arch": "mobilenet_v3_small"},
        "identity_key": "abc123",
        "cache": "/tmp/cache",
        "precision": "bf16",
        "decoder": "torchvision",
        "device": "cpu",
        "device_name": "x86_64",
        "dtype": "float32",
        "versions": {"torch": "2.0"},
        "batch_size": 32,
        "num_workers": 0,
        "channels_last": True,
        "compile": False,
        "torch_num_threads": 2,
        "dim": 576,
        "n_images": 10,
        "n_embedded": 10,
        "n_from_cache": 0,
        "shards": 1,
        "seconds": 1.5,
        "setup_seconds": 0.25,
        "images_per_second": 6.667,
        "peak_memory": {"cpu_peak_rss_bytes": 1000, "cuda_max_allocated_bytes": None},
        "slurm_job_id": None,
        "images_set_aside": [{"image": "/x/a.jpg", "sha256": "ab", "kind": "corrupt_image", "reason": "truncated"}],
        "n_quarantined": 8,
        "cache_quarantined": [
            {"file": "c/seg-1.parquet", "moved_to": "c/quarantine/seg-1.parquet", "reason": "x", "rows": 8}
        ],
        "shard_records": [{"index": 0, "count": 1, "start": 0, "stop": 10}],
        "model_source": "torchvision",  # a field a newer embed stage may add
    }


# ------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------


def test_catalogue_report_round_trips_through_its_file(catalogue_report, tmp_path):
    path = tmp_path / "report.json"
    catalogue_report.write(path)
    text = path.read_text(encoding="utf-8")
    assert text == catalogue_report.to_json()
    data = json.loads(text)
    assert next(iter(data)) == "schema_version" and data["schema_version"] == CatalogueReport.SCHEMA_VERSION
    assert "reject_reasons" not in data
    again = CatalogueReport.read(path)
    assert again == catalogue_report
    assert again.to_dict() == catalogue_report.to_dict() == data
    # The counts are the report's structured ones (kinds of rejects.csv).
    assert again.set_aside_by_kind == {"missing": 1, "empty_file": 1, "no_usable_image": 1}
    assert again.n_rejected == 3 and again.n_items_without_tags == 1
    assert isinstance(again.categories, tuple)


def test_embedding_meta_round_trip_keeps_keys_order_and_undeclared_keys(tmp_path):
    original = _meta_dict()
    record = EmbeddingMeta.from_dict(original)
    assert record.extra == {"model_source": "torchvision"}
    path = tmp_path / "meta.json"
    record.write(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    # Same keys and values as before, in the same order, schema_version first.
    assert list(data) == ["schema_version", *original]
    assert {k: v for k, v in data.items() if k != "schema_version"} == original
    assert EmbeddingMeta.read(path) == record
    assert EmbeddingMeta.read(path).to_dict() == data


def test_score_record_from_report_keeps_the_score_files_layout(tmp_path):
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((40, 8))
    tags = (rng.random((40, 6)) < 0.4).astype(float)
    report = score_report(embeddings, tags, anchors="all", bootstrap=20, permutations=0).as_dict()
    extra = {
        "model": "m",
        "weighting": "binary",
        "settings": {"seed": 42},
        "n_excluded_embeddings": 1,
        "n_excluded_items": 1,
    }
    record = ScoreRecord.from_report(report, **extra)
    path = tmp_path / "binary.json"
    record.write(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    # What the score stage wrote before: {**extra, **report} (NaN as null), plus schema_version.
    before = json.loads(json.dumps({**extra, **report}).replace("NaN", "null"))
    assert list(data) == ["schema_version", *before]
    assert {k: v for k, v in data.items() if k != "schema_version"} == before
    assert math.isnan(report["mantel_p"]) and data["mantel_p"] is None
    again = ScoreRecord.read(path)
    assert again.corrembed == report["corrembed"] and again.n_items == 40
    assert again.to_dict() == data


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(allow_infinity=False), min_size=4, max_size=4),
    counts=st.lists(st.integers(0, 10**9), min_size=3, max_size=3),
    unknown=st.dictionaries(st.text("xyz_", min_size=1, max_size=8), st.integers(), max_size=3),
)
def test_score_record_json_round_trip_property(tmp_path_factory, values, counts, unknown):
    report = dict(zip(("corrembed", "ci_low", "ci_high", "control_random"), values))
    report.update(zip(("n_items", "n_anchors", "permutations"), counts))
    report.update({f"new_{k}": v for k, v in unknown.items()})
    record = ScoreRecord.from_report(report, model="m", weighting="w")
    path = tmp_path_factory.mktemp("s") / "w.json"
    record.write(path)
    again = ScoreRecord.read(path)
    expected = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.to_dict().items()}
    assert again.to_dict() == expected
    assert again.extra == {f"new_{k}": v for k, v in unknown.items()}


# ------------------------------------------------------------------------------------------
# Files written before schema_version existed
# ------------------------------------------------------------------------------------------


def test_old_catalogue_report_without_schema_version_reads(catalogue_report, tmp_path):
    old = {k: v for k, v in catalogue_report.to_dict().items() if k != "schema_version"}
    old["reject_reasons"] = {"file not found": 1, "item dropped": 1}  # the retired prose counts
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    record = CatalogueReport.read(path)
    assert record == catalogue_report and record.schema_version == 1
    assert "reject_reasons" not in record.to_dict() and record.extra == {}


def test_old_meta_without_new_fields_gets_the_old_fixed_values(tmp_path):
    old = {
        k: v
        for k, v in _meta_dict().items()
        if k
        not in (
            "precision",
            "decoder",
            "channels_last",
            "compile",
            "model_source",
            "shard_records",
            "images_set_aside",
            "n_quarantined",
            "cache_quarantined",
        )
    }
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    record = EmbeddingMeta.read(path)
    assert (record.precision, record.decoder, record.channels_last, record.compile) == ("fp32", "pil", False, False)
    assert record.shard_records is None and record.schema_version == 1
    assert record.images_set_aside == [] and record.set_aside_by_kind == {}
    assert record.n_quarantined == 0 and record.cache_quarantined == []
    assert record.resolved_weights is None and record.dim == 576


def test_old_score_without_exclusion_counts(tmp_path):
    path = tmp_path / "binary.json"
    path.write_text(json.dumps({"model": "m", "weighting": "binary", "corrembed": 0.25, "n_items": 9}))
    record = ScoreRecord.read(path)
    assert (record.n_excluded_embeddings, record.n_excluded_items) == (0, 0)
    assert record.corrembed == 0.25 and record.ci_low is None


# ------------------------------------------------------------------------------------------
# Strictness
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("record_type", [CatalogueReport, EmbeddingMeta, ScoreRecord])
@pytest.mark.parametrize("version", [2, 0, "1", True, None])
def test_unknown_schema_version_is_refused_naming_file_and_version(record_type, version, tmp_path):
    path = tmp_path / "record.json"
    path.write_text(json.dumps({"schema_version": version, "model": "m"}), encoding="utf-8")
    with pytest.raises(RecordVersionError) as error:
        record_type.read(path)
    message = str(error.value)
    assert str(path) in message and f"schema_version {version!r}" in message
    assert "re-run" in message and record_type.STAGE in message


def test_missing_required_fields_and_unreadable_files_say_what_to_do(tmp_path):
    path = tmp_path / "binary.json"
    path.write_text(json.dumps({"schema_version": 1, "model": "m"}), encoding="utf-8")
    with pytest.raises(CorrEmbedError, match=r"lacks field\(s\) \['weighting', 'corrembed'\].*re-run"):
        ScoreRecord.read(path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(CorrEmbedError, match="cannot read score file .*binary.json"):
        ScoreRecord.read(path)
    with pytest.raises(CorrEmbedError, match="does not exist; run the ingest stage"):
        CatalogueReport.read(tmp_path / "nothing.json")
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(CorrEmbedError, match="expected a JSON object"):
        EmbeddingMeta.read(path)


# ------------------------------------------------------------------------------------------
# The summary reads all three through the types
# ------------------------------------------------------------------------------------------


def test_summary_table_from_record_files(catalogue_report, tmp_path):
    meta_path = tmp_path / "embeddings" / "mnv3" / "meta.json"
    old_meta = {k: v for k, v in _meta_dict().items() if k not in ("precision", "decoder")}
    meta_path.parent.mkdir(parents=True)
    meta_path.write_text(json.dumps(old_meta), encoding="utf-8")
    score_paths = []
    for weighting, value in (("binary", 0.2), ("entropy", 0.3)):
        record = ScoreRecord.from_report(
            {"corrembed": value, "n_items": 9, "device": "cpu"},
            model="mnv3",
            weighting=weighting,
            n_excluded_items=weighting == "entropy",
        )
        score_paths.append(tmp_path / f"{weighting}.json")
        record.write(score_paths[-1])
    table = summary_table(
        read_scores(score_paths),
        read_metas([meta_path]),
        {"mnv3": {"acc1": None}},
        {"binary": "binary", "entropy": "catalogue"},
        catalogue_report,
    )
    assert table.columns == list(SUMMARY_COLUMNS)
    rows = table.to_dicts()
    assert [r["corrembed"] for r in rows] == [0.2, 0.3]
    assert [r["headline"] for r in rows] == [True, False]
    assert [r["n_excluded_items"] for r in rows] == [0, 1]
    for row in rows:
        assert (row["precision"], row["decoder"], row["weights"], row["dim"]) == ("fp32", "pil", "random", 576)
        # Catalogue columns from the report's structured counts, not from prose reasons.
        assert row["n_rejected"] == catalogue_report.n_rejected == 3
        assert row["set_aside_by_kind"] == "empty_file=1;missing=1;no_usable_image=1"
        assert (row["n_items_set_aside"], row["n_images_set_aside"], row["n_items_without_tags"]) == (1, 2, 1)

"""``source: precomputed``: embeddings the user already has (corrembed.embed.precomputed).

Oracle: a real network's embeddings, computed here through its own source (``embed_images``),
written in each supported format and read back through the precomputed route, must give the
same CorrEmbed (1e-6); every mismatch case stops or is counted with a message naming the file.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corrembed.embed import embed_images
from corrembed.embed.items import usable_item_embeddings
from corrembed.embed.precomputed import PrecomputedError, read_precomputed, write_precomputed_embeddings
from corrembed.embed.store import read_embeddings
from corrembed.errors import ConfigError
from corrembed.ingest.demo import make_demo_catalogue
from corrembed.models import parse_model_spec
from corrembed.score import ScoreOptions, score_report
from workflow_runner import check, demo_config, random_model, snakemake, write_config

MODEL = {"arch": "resnet18", "weights": None, "transforms": {"resize_size": 48, "crop_size": 40}}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """A 40-item demo catalogue (some items with two images), its one-hot tags, and a real
    network's embeddings of it (random-init ResNet18 through the torchvision source)."""
    root = tmp_path_factory.mktemp("pre")
    demo = make_demo_catalogue(root / "demo", n_items=40, n_users=10, seed=1, image_size=48)
    manifest = pl.read_csv(demo["manifest"], infer_schema=False)
    # Some items have two images (";"-separated in the manifest): one row per image, as ingest writes.
    images = manifest.select("item_id", pl.col("image").str.split(";")).explode("image")
    images = images.with_columns(pl.col("image").map_elements(lambda p: str(root / "demo" / p), return_dtype=pl.String))
    tags = manifest.select("category", "colour").to_dummies().to_numpy().astype(float)
    embed_images(images, MODEL, root / "model", model_name="r18", torch_home=None, device="cpu", batch_size=16)
    return {"root": root, "images": images, "tags": tags, "items": manifest["item_id"].to_list()}


def corrembed_of(directory, catalogue) -> tuple[float, int]:
    usable = usable_item_embeddings(read_embeddings(directory), catalogue["items"], "first")
    options = ScoreOptions.from_config({"anchors": "all", "bootstrap": 10})
    report = score_report(usable.vectors, catalogue["tags"][usable.keep], options)
    return report.corrembed, usable.n_excluded_items


def model_rows(catalogue) -> tuple[list[str], list[str], np.ndarray]:
    """The model's own per-image rows: item ids, image paths, (n, 512) float32."""
    embeddings = read_embeddings(catalogue["root"] / "model")
    return list(map(str, embeddings.item_ids)), list(map(str, embeddings.images)), np.asarray(embeddings.vectors)


def first_per_item(catalogue):
    items, images, vectors = model_rows(catalogue)
    firsts = [items.index(i) for i in dict.fromkeys(items)]
    return [items[k] for k in firsts], vectors[firsts]


def write_format(folder, fmt, catalogue) -> dict:
    """The model's embeddings in one format; returns the spec's keys."""
    ids, vectors = first_per_item(catalogue)
    if fmt == "parquet-list":
        pq.write_table(pa.table({"item": ids, "vector": list(vectors)}), folder / "e.parquet")
        return {"embeddings": str(folder / "e.parquet")}
    if fmt == "parquet-columns":
        columns = {"item": ids, **{f"d{k}": vectors[:, k] for k in range(vectors.shape[1])}}
        pq.write_table(pa.table(columns), folder / "e.parquet")
        return {"embeddings": str(folder / "e.parquet")}
    if fmt == "npy":
        np.save(folder / "e.npy", vectors)
        (folder / "ids.txt").write_text("\n".join(ids) + "\n")
        return {"embeddings": str(folder / "e.npy"), "ids": str(folder / "ids.txt")}
    if fmt == "npz":
        np.savez(folder / "e.npz", ids=np.array(ids), embeddings=vectors)
        return {"embeddings": str(folder / "e.npz")}
    # key: image, with paths relative to the catalogue folder (every image, not one per item)
    items, images, all_vectors = model_rows(catalogue)
    relative = [str(p).split("/demo/", 1)[1] for p in images]
    pq.write_table(pa.table({"image": relative, "vector": list(all_vectors)}), folder / "e.parquet")
    return {"embeddings": str(folder / "e.parquet"), "key": "image"}


@pytest.mark.parametrize("fmt", ["parquet-list", "parquet-columns", "npy", "npz", "image-key"])
def test_each_format_gives_the_models_own_corrembed(fmt, catalogue, tmp_path):
    spec = {"source": "precomputed", **write_format(tmp_path, fmt, catalogue)}
    meta = write_precomputed_embeddings(catalogue["images"], spec, tmp_path / "out", model_name="pre")
    expected, _ = corrembed_of(catalogue["root"] / "model", catalogue)
    got, excluded = corrembed_of(tmp_path / "out", catalogue)
    assert excluded == 0 and abs(got - expected) < 1e-6 and abs(expected) > 0.001
    assert meta["dim"] == 512 and meta["n_images"] == catalogue["images"].height
    assert meta["images_per_second"] is None and meta["seconds"] is None and meta["device"] is None
    assert meta["weights"]["kind"] == "precomputed" and meta["layer"] == "precomputed"
    written = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert written["identity"]["source"] == "precomputed" and written["identity"]["weights"]["sha256"]


def _spec_with(tmp_path, ids, vectors) -> dict:
    np.savez(tmp_path / "e.npz", ids=np.array(ids), embeddings=np.asarray(vectors))
    return {"source": "precomputed", "embeddings": str(tmp_path / "e.npz")}


def test_missing_items_are_listed_excluded_and_counted_or_stop(catalogue, tmp_path):
    ids, vectors = first_per_item(catalogue)
    spec = _spec_with(tmp_path, ids[3:] + ["not-an-item"], np.vstack([vectors[3:], vectors[:1]]))
    meta = write_precomputed_embeddings(catalogue["images"], spec, tmp_path / "out", model_name="pre")
    missing = {r["item_id"] for r in meta["images_set_aside"]}
    assert missing == set(ids[:3]) and {r["kind"] for r in meta["images_set_aside"]} == {"missing_embedding"}
    assert meta["precomputed"]["n_unknown_ids"] == 1
    assert meta["precomputed"]["unknown_ids"] == ["not-an-item"]
    _, excluded = corrembed_of(tmp_path / "out", catalogue)
    assert excluded == 3
    with pytest.raises(PrecomputedError, match=rf"e.npz: 3 catalogue item\(s\) have no row .*{ids[0]}"):
        write_precomputed_embeddings(catalogue["images"], {**spec, "on_missing": "fail"}, tmp_path / "o2")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("duplicates", r"e.npz: 1 duplicate id\(s\): 00002"),
        ("nan", r"e.npz: 2 row\(s\) hold NaN or inf values: 00001, 00003"),
        ("empty", r"e.npz: holds no embeddings \(shape \(0, 4\)\)"),
        ("wrong-key", r"none of its 40 ids .* is a catalogue image path \(key: image\); is it key: item"),
        ("ids-count", r"e.npy: 40 rows but 39 ids"),
        ("lengths", r"e.parquet: column 'v' has vectors of different lengths .*1 row\(s\) differ .*: 00005"),
        ("text-column", r"column 'note' is string"),
        ("unreadable", r"e.parquet: cannot read it"),
    ],
)
def test_every_mismatch_names_the_file(case, expected, catalogue, tmp_path):
    ids, vectors = first_per_item(catalogue)
    vectors = vectors[:, :4].copy()
    spec = _spec_with(tmp_path, ids, vectors)
    if case == "duplicates":
        spec = _spec_with(tmp_path, ids[:2] + ids[1:], np.vstack([vectors[:2], vectors[1:]]))
    elif case == "nan":
        vectors[0, 1], vectors[2, 0] = np.nan, np.inf
        spec = _spec_with(tmp_path, ids, vectors)
    elif case == "empty":
        spec = _spec_with(tmp_path, np.array([], dtype=str), np.zeros((0, 4)))
    elif case == "wrong-key":
        spec["key"] = "image"
    elif case == "ids-count":
        np.save(tmp_path / "e.npy", vectors)
        (tmp_path / "ids.txt").write_text("\n".join(ids[1:]))
        spec = {"source": "precomputed", "embeddings": str(tmp_path / "e.npy"), "ids": str(tmp_path / "ids.txt")}
    elif case in ("lengths", "text-column", "unreadable"):
        rows = [list(v) for v in vectors]
        rows[4] = rows[4][:3]
        table = {"lengths": {"id": ids, "v": rows}, "text-column": {"id": ids, "d0": vectors[:, 0], "note": ids}}
        if case == "unreadable":
            (tmp_path / "e.parquet").write_bytes(b"not parquet")
        else:
            pq.write_table(pa.table(table[case]), tmp_path / "e.parquet")
        spec = {"source": "precomputed", "embeddings": str(tmp_path / "e.parquet")}
    with pytest.raises(PrecomputedError, match=f"model 'pre': .*{expected}"):
        write_precomputed_embeddings(catalogue["images"], spec, tmp_path / "out", model_name="pre")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"embeddings": "x.csv"}, "must be a .parquet, .npy, .npz file path"),
        ({"embeddings": "missing.npz"}, "embeddings file .*missing.npz .* does not exist"),
        ({"embeddings": "e.npy"}, "a .npy embeddings file needs 'ids'"),
        ({"embeddings": "e.npz", "ids": "i.txt"}, "'ids' is for .npy files only"),
        ({"embeddings": "e.npz", "key": "sku"}, "'key' must be one of item, image"),
        ({"embeddings": "e.npz", "weights": "w.pth"}, "takes no 'weights'"),
        ({"embeddings": "e.npz", "transforms": {"crop_size": 3}}, "takes no 'transforms'"),
    ],
)
def test_config_mistakes_stop_at_parse_time(spec, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("e.npy", "e.npz"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ConfigError, match=f"model 'pre': .*{expected}"):
        parse_model_spec({"source": "precomputed", **spec}, model_name="pre")


def test_read_precomputed_keeps_float32_values_exactly(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.savez(tmp_path / "e.npz", ids=np.arange(5), embeddings=vectors)
    rows = read_precomputed(tmp_path / "e.npz")
    assert rows.ids == ["0", "1", "2", "3", "4"] and np.array_equal(rows.matrix, vectors)


# ------------------------------------------------------------------------------- the workflow


@pytest.mark.slow
def test_workflow_scores_a_precomputed_model_and_reruns_only_on_a_changed_file(tmp_path):
    embed = {"batch_size": 8, "num_workers": 0, "device": "cpu", "threads": 1}
    models = {"r18": random_model("resnet18", 48, 40)}
    config = demo_config(n_items=30, n_users=20, seed=2, embed=embed, models=models, weightings=("binary",))
    config["diagnostics"] = {"enabled": False}
    config["scoring"] = {"anchors": "all", "bootstrap": 10}
    write_config(tmp_path, config)
    check(snakemake(tmp_path, "--cores", "2", "results/summary.csv"))
    # The user's "production" embeddings: r18's own, one row per item, as a Parquet list column.
    own = read_embeddings(tmp_path / "results/embeddings/r18")
    item_ids = list(map(str, own.item_ids))
    firsts = [item_ids.index(i) for i in dict.fromkeys(item_ids)]  # the item's first image, as scored
    ids, vectors = [item_ids[k] for k in firsts], np.asarray(own.vectors)[firsts]
    pq.write_table(pa.table({"id": ids, "v": list(vectors)}), tmp_path / "p.parquet")
    config["models"]["prod"] = {"source": "precomputed", "embeddings": "p.parquet", "imagenet": {"acc1": 70.0}}
    write_config(tmp_path, config)
    result = check(snakemake(tmp_path, "--cores", "2", "results/summary.csv"))
    assert "precomputed_embeddings" in result.stderr + result.stdout
    assert "rule weights" not in result.stderr and "rule embed:" not in result.stderr
    assert not (tmp_path / "results/weights/prod.json").exists()
    summary = pl.read_csv(tmp_path / "results/summary.csv")
    rows = {r["model"]: r for r in summary.iter_rows(named=True)}
    assert abs(rows["prod"]["corrembed"] - rows["r18"]["corrembed"]) < 1e-6
    assert rows["prod"]["source"] == "precomputed" and rows["prod"]["images_per_second"] is None
    assert rows["prod"]["imagenet_acc1"] == 70.0 and rows["r18"]["images_per_second"] is not None
    # Untouched: nothing to do.
    assert "Nothing to be done" in check(snakemake(tmp_path, "--cores", "1", "results/summary.csv", "-n")).stdout
    # A changed file re-scores that model only (no embedding of the other).
    changed = vectors + np.random.default_rng(0).normal(size=vectors.shape).astype(np.float32)
    pq.write_table(pa.table({"id": ids, "v": list(changed)}), tmp_path / "p.parquet")
    plan = check(snakemake(tmp_path, "--cores", "1", "results/summary.csv", "-n")).stdout
    assert "precomputed_embeddings" in plan and "score" in plan and "rule embed" not in plan and "model=r18" not in plan

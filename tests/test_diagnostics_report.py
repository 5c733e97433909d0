"""Every diagnostic figure drawn on a small catalogue, gathered in the HTML report, opened in a real
headless Chromium: every <img> must load (naturalWidth > 0) and the page must not be blank."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from corrembed.diagnostics import figures
from corrembed.diagnostics.attributes import attribute_scores
from corrembed.diagnostics.categories import item_values, primary_value
from corrembed.diagnostics.comparison import compare_models
from corrembed.diagnostics.embedding_map import embedding_map
from corrembed.diagnostics.neighbours import stratified_queries, top_k_neighbours
from corrembed.diagnostics.report import Figure, Section, Table, write_report
from corrembed.diagnostics.retrieval import retrieval_scores
from corrembed.score import corrembed
from corrembed.tags import tag_vectors

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Path of the Chromium binary; fail under CI (make test installs it), skip elsewhere."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    message = "chromium not found (make test installs it: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_chromium(page: Path, tmp: Path, *args: str) -> str:
    cmd = [
        chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp / 'profile'}",
        "--virtual-time-budget=10000",
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def small_catalogue(tmp_path_factory):
    """40 items, three categories, one solid-colour image each (the colour is the 'colour' tag)."""
    root = tmp_path_factory.mktemp("catalogue")
    rng = np.random.default_rng(0)
    palette = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (30, 160, 60), "black": (20, 20, 20)}
    rows, images = [], []
    for i in range(40):
        colour = list(palette)[i % 4]
        kind = ["shirt", "shoe", "bag"][rng.integers(3)]
        rows += [(f"i{i}", "colour", colour), (f"i{i}", "type", kind), (f"i{i}", "usage", ["casual", "formal"][i % 2])]
        path = root / f"i{i}.png"
        Image.new("RGB", (60 + i, 80), palette[colour]).save(path)
        images.append(str(path))
    (root / "broken.png").write_bytes(b"not an image")
    images[5] = str(root / "broken.png")  # an unreadable image shows as a grey tile
    tags = pl.DataFrame(rows, schema=["item_id", "category", "value"], orient="row")
    ids = [f"i{i}" for i in range(40)]
    vectors = tag_vectors(tags, ids, {"colour": 1.0, "type": 1.0, "usage": 1.0})
    colour_code = {c: rng.normal(size=6) * 2 for c in palette}
    good = np.stack(
        [colour_code[tags.filter((pl.col("item_id") == i) & (pl.col("category") == "colour"))["value"][0]] for i in ids]
    ) + rng.normal(size=(40, 6))
    bad = rng.normal(size=(40, 6))
    return vectors, images, {"good": good, "random": bad}


def test_all_figures_and_report_load_in_chromium(small_catalogue, tmp_path):
    vectors, images, models = small_catalogue
    m, cats = vectors.matrix, vectors.slot_category
    values = {c: item_values(m, cats, vectors.slot_value, c) for c in ("colour", "type", "usage")}
    colour = primary_value(m, cats, vectors.slot_value, "colour")
    queries = stratified_queries(colour, 4, seed=1)
    anchors = np.arange(40)
    per_anchor, attr_rows, summary_rows, figs = {}, [], [], []
    for name, emb in models.items():
        nb = top_k_neighbours(emb, queries, k=4)
        figures.neighbour_sheet(
            tmp_path / f"{name}_nb.png",
            queries,
            [(name, nb.indices, nb.similarities)],
            images,
            values,
            title=f"{name}: nearest neighbours",
        )
        emap = embedding_map(emb, max_points=30, seed=0, n_jobs=1)
        figures.map_scatter(tmp_path / f"{name}_map.png", emap.xy, colour[emap.items], category="colour")
        figures.map_collage(tmp_path / f"{name}_collage.png", emap.xy, [images[i] for i in emap.items], grid=5, tile=32)
        attr_rows.append(attribute_scores(emb, m, cats, anchors="all").with_columns(model=pl.lit(name)))
        per_anchor[name] = corrembed(emb, m, anchors=anchors).per_anchor
        ret = retrieval_scores(emb, m, cats, anchors, k=5).summary(resamples=100).filter(pl.col("metric") == "ndcg")
        summary_rows.append(
            {"model": name, "ndcg": ret["mean"][0], "ndcg_low": ret["ci_low"][0], "ndcg_high": ret["ci_high"][0]}
        )
        figs += [
            Figure(tmp_path / f"{name}_{kind}.png", f"{name} {kind}", f"Caption of {kind}.")
            for kind in ("nb", "map", "collage")
        ]
    cmp = compare_models(per_anchor, resamples=200)
    figures.comparison_plot(tmp_path / "ranking.png", cmp.ranking, cmp.pairs)
    figures.attribute_heatmap(tmp_path / "heatmap.png", pl.concat(attr_rows))
    table = cmp.ranking.join(pl.DataFrame(summary_rows), on="model")
    figures.corrembed_vs_ndcg(tmp_path / "scatter.png", table, k=5)
    nb_good = top_k_neighbours(models["good"], queries, k=3)
    nb_bad = top_k_neighbours(models["random"], queries, k=3)
    figures.neighbour_sheet(
        tmp_path / "versus.svg",
        queries,
        [("good", nb_good.indices, nb_good.similarities), ("random", nb_bad.indices, nb_bad.similarities)],
        images,
        values,
    )
    figs += [Figure(tmp_path / f, f, "A caption.") for f in ("ranking.png", "heatmap.png", "scatter.png", "versus.svg")]
    page = tmp_path / "report.html"
    write_report(
        page,
        "Diagnostics <test>",
        "Intro for a <b>newcomer</b>.",
        [
            Section("Summary", "What the table shows.", [Table(table.drop("tied_with"), "Models ranked.")]),
            Section("Figures", "", figures=figs),
        ],
    )
    text = page.read_text()
    assert "src='data:image/png;base64," in text and "src='data:image/svg+xml;base64," in text
    assert not re.search(r"src=['\"](?!data:)", text)  # nothing outside the file
    assert "Diagnostics &lt;test&gt;" in text  # titles escaped

    dom = run_chromium(page, tmp_path, "--dump-dom")
    status = re.search(r'id="image-status"[^>]*data-loaded="(\d+)"[^>]*data-total="(\d+)"', dom)
    assert status, dom[:2000]
    assert int(status.group(2)) == len(figs) and status.group(1) == status.group(2)

    shot = tmp_path / "shot.png"
    run_chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,1800", "--hide-scrollbars")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005  # text and figures, not a blank page
    if os.environ.get("DIAGNOSTICS_KEEP"):  # to look at it: DIAGNOSTICS_KEEP=/some/dir pytest ...
        keep = Path(os.environ["DIAGNOSTICS_KEEP"])
        keep.mkdir(parents=True, exist_ok=True)
        for f in [shot, page, *tmp_path.glob("*.png"), *tmp_path.glob("*.svg")]:
            shutil.copy(f, keep / f.name)


def test_grid_pick_one_point_per_occupied_cell():
    xy = np.array([[0.0, 0.0], [0.1, 0.1], [1.0, 1.0], [0.9, 0.05]])
    picks = figures.grid_pick(xy, 2)
    cells = [(r, c) for r, c, _ in picks]
    assert len(cells) == len(set(cells)) == 3
    assert (1, 0, 1) in picks  # bottom-left cell: item 1 is nearest the cell centre (.25, .25)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-0.5, 1.5), min_size=1, max_size=15), st.floats(0.01, 0.06))
def test_spread_apart_keeps_order_and_gap(positions, gap):
    """Label positions of the CorrEmbed-vs-nDCG plot: ascending, at least ``gap`` apart, inside 0..1
    where the labels fit, and untouched where they were already far enough apart."""
    start = np.sort(np.asarray(positions))
    out = figures.spread_apart(start, gap=gap)
    assert np.all(np.diff(out) >= gap - 1e-12)
    if (len(out) - 1) * gap <= 1:
        assert out.min() >= -1e-12 and out.max() <= 1 + 1e-12
    clipped = np.clip(start, 0, 1)
    if np.all(np.diff(clipped) >= gap):
        assert np.array_equal(out, clipped)

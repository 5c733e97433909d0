"""The CorrEmbed-vs-ImageNet figure: written, and labels that never cover each other."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from corrembed.summary.plots import _overlap, _place_labels, _point_candidates, plot_corrembed_vs_imagenet

# The paper's reference values (SPEC.md), as a crowded, realistic figure.
PAPER = [
    ("alexnet", 56.5, 0.146),
    ("googlenet", 69.8, 0.212),
    ("resnet18", 69.8, 0.214),
    ("resnet50_v1", 76.1, 0.225),
    ("resnet50_v2", 80.9, 0.250),
    ("resnet152_v2", 82.3, 0.256),
    ("convnext_large", 84.4, 0.266),
    ("efficientnet_v2_l", 85.8, 0.366),
    ("regnet_y_32gf_swag", 86.8, 0.341),
    ("vit_h_14_swag", 88.6, 0.362),
    ("maxvit_t", 83.7, 0.199),
    ("resnet50_random", None, 0.05),
]


def _summary(rows):
    return pl.DataFrame(
        {
            "model": [r[0] for r in rows],
            "imagenet_acc1": [r[1] for r in rows],
            "corrembed": [r[2] for r in rows],
        },
        schema_overrides={"imagenet_acc1": pl.Float64},
    ).with_columns(
        ci_low=pl.col("corrembed") - 0.01,
        ci_high=pl.col("corrembed") + 0.01,
        headline=True,
        weighting=pl.lit("entropy"),
        weight_source=pl.lit("interactions"),
        control_random=0.01,
        control_shuffled_embeddings=0.0,
        control_shuffled_tags=-0.002,
    )


def test_figure_written_as_png_and_svg(tmp_path):
    png, svg = tmp_path / "f.png", tmp_path / "f.svg"
    plot_corrembed_vs_imagenet(_summary(PAPER), [png, svg])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    for name, *_ in PAPER:
        assert name in text  # every model is labelled
    assert "Pearson r = " in text  # fitted line with its r


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.floats(60, 90), st.floats(0.1, 0.4)), min_size=2, max_size=8, unique=True))
def test_point_labels_do_not_overlap_when_there_is_room(points):
    fig, ax = plt.subplots(figsize=(10, 8))
    ax.set_xlim(50, 100)
    ax.set_ylim(0, 0.5)
    fig.canvas.draw()
    labels = [(_point_candidates(x, y), f"model_{i}") for i, (x, y) in enumerate(points)]
    boxes = _place_labels(ax, labels)
    # Few labels on a large canvas: a clash-free placement exists unless points nearly coincide.
    xy = ax.transData.transform(np.array(points))
    well_apart = all(np.abs(a - b).max() > 40 for a, b in itertools.combinations(xy, 2))
    if well_apart:
        for a, b in itertools.combinations(boxes, 2):
            assert _overlap(a, b) == 0
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    for box in boxes:
        assert _overlap(box, frame) > 0  # never entirely outside the axes
    plt.close(fig)

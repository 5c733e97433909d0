"""Figures: CorrEmbed against ImageNet-1k accuracy."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt
import matplotlib.transforms
import numpy as np
import polars as pl
from scipy import stats

from .storage import atomic_path

CONTROL_COLUMNS = ("control_random", "control_shuffled_embeddings", "control_shuffled_tags")


# Candidate label positions around a point: (dx, dy) in points, horizontal and vertical alignment.
_LABEL_OFFSETS = [
    (7, 0, "left", "center"), (-7, 0, "right", "center"), (0, 8, "center", "bottom"),
    (0, -8, "center", "top"), (6, 6, "left", "bottom"), (6, -6, "left", "top"),
    (-6, 6, "right", "bottom"), (-6, -6, "right", "top"), (7, 14, "left", "bottom"),
    (7, -14, "left", "top"), (-7, 14, "right", "bottom"), (-7, -14, "right", "top"),
]


def _overlap(a, b) -> float:
    """Overlapping area of two display-space boxes (0 when disjoint)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def _place_labels(ax, xs, ys, names, obstacles=(), **text_kw) -> None:
    """Label points without covering each other, the points, or leaving the axes.

    Greedy and deterministic: each label takes the first candidate position (right, left, above,
    below, diagonals) whose box clashes with nothing placed so far; if every candidate clashes,
    the one with the least overlap. ``obstacles`` are extra display-space boxes to avoid.
    """
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    marker = 5 * fig.dpi / 72  # half a marker's width, in pixels
    taken = list(obstacles)
    for x, y in zip(xs, ys):
        px, py = ax.transData.transform((x, y))
        taken.append(matplotlib.transforms.Bbox([[px - marker, py - marker], [px + marker, py + marker]]))
    for x, y, name in sorted(zip(xs, ys, names), key=lambda item: -item[1]):
        best = None
        for dx, dy, ha, va in _LABEL_OFFSETS:
            text = ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points",
                               ha=ha, va=va, zorder=4, **text_kw)
            box = text.get_window_extent(renderer).expanded(1.04, 1.1)
            outside = box.width * box.height - _overlap(box, frame)
            clash = outside * 10 + sum(_overlap(box, other) for other in taken)
            if best is None or clash < best[0]:
                if best is not None:
                    best[1].remove()
                best = (clash, text, box)
            else:
                text.remove()
            if clash == 0:
                break
        taken.append(best[2])


def plot_corrembed_vs_imagenet(summary: pl.DataFrame, paths: list[str | os.PathLike]) -> None:
    """Labelled scatter of the headline CorrEmbed against ImageNet acc@1, one file per path.

    summary: the summary table (SUMMARY_COLUMNS). Each model with ImageNet accuracy is a point
    with its bootstrap interval; the least-squares line is drawn with its Pearson r when three
    or more points exist. Models without ImageNet accuracy (random init, checkpoints without
    figures) are dashed horizontal lines; the controls a grey band (their range over models).
    """
    rows = summary.filter(pl.col("headline"))
    weighting = rows["weighting"][0] if rows.height else "?"
    source = rows["weight_source"][0] if rows.height else "?"
    with_acc = rows.filter(pl.col("imagenet_acc1").is_not_null()).sort("imagenet_acc1")
    without_acc = rows.filter(pl.col("imagenet_acc1").is_null())

    fig, ax = plt.subplots(figsize=(8.5, 6), layout="constrained")
    x = with_acc["imagenet_acc1"].to_numpy().astype(float)
    y = with_acc["corrembed"].to_numpy().astype(float)
    low = with_acc["ci_low"].to_numpy().astype(float)
    high = with_acc["ci_high"].to_numpy().astype(float)
    ax.errorbar(
        x, y, yerr=np.vstack([y - low, high - y]), fmt="o", color="tab:blue", ecolor="tab:blue",
        elinewidth=1, capsize=3, markersize=6, label="model (95 % bootstrap interval)", zorder=3,
    )
    if len(x) >= 3 and np.ptp(x) > 0:
        fit = stats.linregress(x, y)
        grid = np.linspace(x.min() - 0.5, x.max() + 0.5, 50)
        ax.plot(grid, fit.intercept + fit.slope * grid, color="tab:blue", alpha=0.5, lw=1.5,
                label=f"least-squares fit, Pearson r = {fit.rvalue:.2f} (n = {len(x)})")

    ax.margins(x=0.12, y=0.1)
    for name, value in zip(without_acc["model"], without_acc["corrembed"]):
        ax.axhline(value, color="tab:orange", ls="--", lw=1, zorder=2)
        ax.annotate(f"{name} (no ImageNet accuracy)", (0.01, value), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), textcoords="offset points", fontsize=8, color="tab:orange")
    if rows.height:
        controls = rows.select(list(CONTROL_COLUMNS)).to_numpy().astype(float)
        ax.axhspan(np.nanmin(controls), np.nanmax(controls), facecolor="grey", edgecolor="grey", alpha=0.3, lw=0.8,
                   label="controls: random, shuffled embeddings, shuffled tags (range)")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_xlabel("ImageNet-1k top-1 accuracy (%)")
    ax.set_ylabel("CorrEmbed (mean per-anchor Pearson r)")
    weights_label = {"interactions": "entropy weights from interactions",
                     "catalogue": "entropy weights from catalogue",
                     "binary": "binary tag vectors"}.get(source, f"{weighting} weights")
    ax.set_title(f"CorrEmbed vs ImageNet accuracy ({weights_label})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    _place_labels(ax, x, y, with_acc["model"].to_list(), obstacles=[legend_box], fontsize=9)
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=os.path.splitext(str(path))[1].lstrip("."), dpi=150)
    plt.close(fig)

"""Figures: CorrEmbed against ImageNet-1k accuracy."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.transforms import Bbox
from scipy import stats

from ..storage import write_figure

CONTROL_COLUMNS = ("control_random", "control_shuffled_embeddings", "control_shuffled_tags")


# Candidate label positions around a point: (dx, dy) in points, horizontal and vertical alignment.
_LABEL_OFFSETS = [
    (7, 0, "left", "center"),
    (-7, 0, "right", "center"),
    (0, 8, "center", "bottom"),
    (0, -8, "center", "top"),
    (6, 6, "left", "bottom"),
    (6, -6, "left", "top"),
    (-6, 6, "right", "bottom"),
    (-6, -6, "right", "top"),
    (7, 14, "left", "bottom"),
    (7, -14, "left", "top"),
    (-7, 14, "right", "bottom"),
    (-7, -14, "right", "top"),
]


def _overlap(a, b) -> float:
    """Overlapping area of two display-space boxes (0 when disjoint)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


# Candidate positions for a horizontal reference line's label: above/below, left/right end.
_LINE_LABEL_SPOTS = [
    ((0.01, "left"), 3, "bottom"),
    ((0.01, "left"), -3, "top"),
    ((0.99, "right"), 3, "bottom"),
    ((0.99, "right"), -3, "top"),
]


def _place_labels(ax, labels, obstacles=(), **text_kw) -> list:
    """Place text labels so that they cover neither each other, the points, nor leave the axes.

    labels: (candidates, text) pairs, each candidate an ``annotate`` keyword dict (xy, xytext,
    ha, va, ...). Greedy and deterministic: each label takes its first candidate whose box
    clashes with nothing placed so far; if every candidate clashes, the one with least overlap.
    ``obstacles``: display-space boxes to avoid (points, legend). Returns the obstacles plus
    the placed labels' boxes.
    """
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = list(obstacles)
    for candidates, label in labels:
        best = None
        for candidate in candidates:
            text = ax.annotate(label, textcoords="offset points", zorder=4, **candidate, **text_kw)
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
    return taken


def _point_candidates(x: float, y: float) -> list[dict]:
    return [dict(xy=(x, y), xytext=(dx, dy), ha=ha, va=va) for dx, dy, ha, va in _LABEL_OFFSETS]


def _line_candidates(y: float) -> list[dict]:
    return [
        dict(xy=(fx, y), xycoords=("axes fraction", "data"), xytext=(0, dy), ha=ha, va=va)
        for (fx, ha), dy, va in _LINE_LABEL_SPOTS
    ]


def plot_corrembed_vs_imagenet(summary: pl.DataFrame, paths: list[str | os.PathLike]) -> None:
    """Labelled scatter of the headline CorrEmbed against ImageNet acc@1, one file per path.

    Parameters
    ----------
    summary : polars DataFrame
        The summary table (:data:`corrembed.summary.table.SUMMARY_COLUMNS`); its ``headline`` rows are drawn.
    paths : list of path
        Files to write (format from each suffix: ``.png``, ``.svg``, ...), atomically.

    Notes
    -----
    Each model with ImageNet accuracy is a point with its bootstrap interval. Supervised top-1
    (``imagenet_acc1_kind`` supervised or config; all points when the column is absent) are
    filled circles, and the least-squares line with its Pearson r is fitted on them alone when
    three or more exist; zero-shot top-1 (CLIP-style models, open_clip's table) are hollow
    diamonds outside the fit, since classifying by text prompts is another quantity. Models
    without ImageNet accuracy (random init, checkpoints without figures) are dashed horizontal
    lines; the controls a grey band (their range).
    """
    rows, supervised, zero_shot, without_acc = _headline_groups(summary)
    fig, ax = plt.subplots(figsize=(8.5, 6), layout="constrained")
    x, y = _error_bars(
        ax, supervised, SUPERVISED_STYLE, "supervised ImageNet top-1 (95 % bootstrap interval)", draw_empty=True
    )
    zx, zy = _error_bars(ax, zero_shot, ZERO_SHOT_STYLE, "zero-shot ImageNet top-1 (CLIP-style model; not in the fit)")
    _fit_line(ax, x, y)
    ax.margins(x=0.12, y=0.1)
    line_labels = _no_accuracy_lines(ax, without_acc)
    if rows.height:
        controls = rows.select(list(CONTROL_COLUMNS)).to_numpy().astype(float)
        ax.axhspan(
            np.nanmin(controls),
            np.nanmax(controls),
            facecolor="grey",
            edgecolor="grey",
            alpha=0.3,
            lw=0.8,
            label="controls: random, shuffled embeddings, shuffled tags (range)",
        )
    ax.axhline(0.0, color="black", lw=0.5)
    _decorate(ax, rows, any_accuracy=bool(len(x) or len(zx)))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    marker = 5 * fig.dpi / 72  # half a marker's width, in pixels
    obstacles = [ax.get_legend().get_window_extent(renderer)]
    all_x, all_y = np.concatenate([x, zx]), np.concatenate([y, zy])
    for px, py in ax.transData.transform(np.column_stack([all_x, all_y])) if len(all_x) else []:
        obstacles.append(Bbox([[px - marker, py - marker], [px + marker, py + marker]]))
    names = [*supervised["model"], *zero_shot["model"]]
    point_labels = [
        (_point_candidates(xi, yi), name)
        for xi, yi, name in sorted(zip(all_x, all_y, names), key=lambda item: -item[1])
    ]
    obstacles = _place_labels(ax, point_labels, obstacles, fontsize=9)
    _place_labels(ax, line_labels, obstacles, fontsize=8, color="tab:orange")
    for path in paths:
        write_figure(path, fig, dpi=150)
    plt.close(fig)


#: Marker styles of the two kinds of ImageNet accuracy.
SUPERVISED_STYLE = dict(fmt="o", color="tab:blue", ecolor="tab:blue")
ZERO_SHOT_STYLE = dict(fmt="D", mfc="white", color="tab:purple", ecolor="tab:purple")


def _headline_groups(summary: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The headline rows; those with supervised accuracy (sorted by it), zero-shot accuracy, none."""
    rows = summary.filter(pl.col("headline"))
    if "imagenet_acc1_kind" not in rows.columns:
        rows = rows.with_columns(imagenet_acc1_kind=pl.lit("supervised"))
    with_acc = rows.filter(pl.col("imagenet_acc1").is_not_null()).sort("imagenet_acc1")
    without_acc = rows.filter(pl.col("imagenet_acc1").is_null())
    zero_shot = with_acc.filter(pl.col("imagenet_acc1_kind") == "zero-shot")
    supervised = with_acc.filter(pl.col("imagenet_acc1_kind").fill_null("") != "zero-shot")
    return rows, supervised, zero_shot, without_acc


def _error_bars(
    ax, table: pl.DataFrame, style: dict, label: str, *, draw_empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """CorrEmbed against ImageNet acc@1 with bootstrap intervals; returns the points' (x, y).

    An empty table draws nothing unless ``draw_empty`` (an empty artist without a legend entry).
    """
    x = table["imagenet_acc1"].to_numpy().astype(float)
    y = table["corrembed"].to_numpy().astype(float)
    if not len(x) and not draw_empty:
        return x, y
    low, high = table["ci_low"].to_numpy().astype(float), table["ci_high"].to_numpy().astype(float)
    ax.errorbar(
        x,
        y,
        yerr=np.vstack([y - low, high - y]),
        **style,
        elinewidth=1,
        capsize=3,
        markersize=6,
        zorder=3,
        label=label if len(x) else None,
    )
    return x, y


def _fit_line(ax, x: np.ndarray, y: np.ndarray) -> None:
    """The least-squares line of the supervised points (three or more), or a legend note why not."""
    if len(x) >= 3 and np.ptp(x) > 0:
        fit = stats.linregress(x, y)
        grid = np.linspace(x.min() - 0.5, x.max() + 0.5, 50)
        ax.plot(
            grid,
            fit.intercept + fit.slope * grid,
            color="tab:blue",
            alpha=0.5,
            lw=1.5,
            label=f"least-squares fit on supervised top-1 only, Pearson r = {fit.rvalue:.2f} (n = {len(x)})",
        )
    else:
        ax.plot([], [], " ", label=f"no fitted line: {len(x)} model(s) with supervised ImageNet accuracy, 3 needed")


def _no_accuracy_lines(ax, without_acc: pl.DataFrame) -> list:
    """One dashed line per distinct score of the models without ImageNet accuracy; their labels."""
    line_labels = []
    by_value = without_acc.group_by(pl.col("corrembed").round(4), maintain_order=True).agg("model")
    for value, names in by_value.iter_rows():
        ax.axhline(value, color="tab:orange", ls="--", lw=1, zorder=2)
        line_labels.append((_line_candidates(value), f"{', '.join(names)} (no ImageNet accuracy)"))
    return line_labels


def _decorate(ax, rows: pl.DataFrame, *, any_accuracy: bool) -> None:
    """Axis labels, title (which weighting), grid and legend."""
    weighting = rows["weighting"][0] if rows.height else "?"
    source = rows["weight_source"][0] if rows.height else "?"
    ax.set_xlabel("ImageNet-1k top-1 accuracy (%)")
    if not any_accuracy:
        # No model has a known accuracy: an x scale would be invented, so show none.
        ax.set_xticks([])
        ax.set_xlabel(
            "ImageNet-1k top-1 accuracy: unknown for every model (give checkpoints `imagenet: {acc1: ...}` in config)"
        )
    ax.set_ylabel("CorrEmbed (mean per-anchor Pearson r)")
    weights_label = {
        "interactions": "entropy weights from interactions",
        "catalogue": "entropy weights from catalogue",
        "binary": "binary tag vectors",
    }.get(source, f"{weighting} weights")
    ax.set_title(f"CorrEmbed vs ImageNet accuracy ({weights_label})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)

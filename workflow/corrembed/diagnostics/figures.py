"""Diagnostic figures (matplotlib, Agg): neighbour sheets, embedding maps, heatmap, scatter, ranking.

Every function draws one figure from plain arrays and tables and writes it atomically to ``path``
(the format follows the suffix: .png or .svg). Thumbnails are decoded with the same function the
embed stage uses (:func:`corrembed.images.decode.load_rgb`); an unreadable image shows as a grey tile.
"""

from __future__ import annotations

import os
from collections import Counter
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from PIL import Image

from ..storage import write_figure

MATCH_COLOUR = "#1a7f37"  # green: a neighbour shares this value with the query
OTHER_COLOUR = "#6e7781"  # grey: it does not
QUERY_COLOUR = "#0550ae"  # blue frame and text: the query


def _save(fig, path) -> None:
    write_figure(path, fig, dpi=fig.dpi, bbox_inches="tight")
    plt.close(fig)


@lru_cache(maxsize=4096)
def thumbnail(path: str, size: int = 96) -> np.ndarray:
    """(size, size, 3) uint8: the image fitted into a white square; grey when it cannot be read."""
    from ..images.decode import load_rgb

    try:
        image = load_rgb(path)
    except Exception:  # noqa: BLE001 - any unreadable image becomes a placeholder, never a failed figure
        return np.full((size, size, 3), 200, dtype=np.uint8)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    tile = Image.new("RGB", (size, size), "white")
    tile.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return np.asarray(tile)


def _tile(ax, image_path: str, colour: str, width: float) -> None:
    ax.imshow(thumbnail(os.fspath(image_path)))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def _tag_lines(ax, item_values: dict[str, list[str]], query_values: dict[str, list[str]] | None, fontsize: float):
    """Text under a tile: one line per category; values shared with the query green with a tick."""
    y = -0.04
    for category, values in item_values.items():
        text = ", ".join(values) if values else "-"
        if query_values is None:
            colour, weight, mark = QUERY_COLOUR, "bold", ""
        else:
            shared = bool(set(values) & set(query_values.get(category, [])))
            colour, weight, mark = (MATCH_COLOUR, "bold", "\u2713 ") if shared else (OTHER_COLOUR, "normal", "\u2717 ")
        ax.text(
            0.5,
            y,
            f"{mark}{text}"[:22],
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=fontsize,
            color=colour,
            fontweight=weight,
            clip_on=False,
        )
        y -= 0.115


def neighbour_sheet(
    path,
    queries,
    panels: list[tuple[str, np.ndarray, np.ndarray]],
    images,
    values: dict[str, list[list[str]]],
    *,
    title: str = "",
    dpi: int = 80,
) -> None:
    """Queries (rows) with their nearest neighbours under one or more models (panels side by side).

    Args:
        path: output file.
        queries: (q,) item indices.
        panels: (label, (q, k) neighbour indices, (q, k) similarities) per model.
        images: (n,) image path per item.
        values: category -> per item its list of values (``categories.item_values``).
        title: figure title.
    """
    queries = np.asarray(queries)
    categories = list(values)
    k = panels[0][1].shape[1]
    cols = 1 + len(panels) * k
    gap = 0.3  # inches between panels
    cell_w, img_h, line_h = 1.15, 1.15, 0.14
    cell_h = img_h + line_h * len(categories) + 0.2
    width = cols * cell_w + gap * (len(panels) - 1)
    top = 0.75  # inches above the first row: title and panel labels
    height = len(queries) * cell_h + top + 0.1
    fig = plt.figure(figsize=(width, height), dpi=dpi)
    if title:
        fig.suptitle(title, x=0.01, y=1 - 0.1 / height, ha="left", va="top", fontsize=11)

    def axes_at(row: int, col: int):
        x = col * cell_w + (gap * ((col - 1) // k) if col > 0 else 0.0)
        y = height - top - (row + 1) * cell_h + (cell_h - img_h)
        return fig.add_axes((x / width + 0.004, y / height, (cell_w - 0.1) / width, img_h / height))

    if len(panels) > 1:
        for p, (label, _, _) in enumerate(panels):
            x = (1 + p * k) * cell_w + gap * p + k * cell_w / 2
            fig.text(
                x / width,
                (height - top + 0.2) / height,
                label,
                ha="center",
                va="bottom",
                fontsize=10,
                fontweight="bold",
            )
    for row, q in enumerate(queries):
        query_values = {c: values[c][q] for c in categories}
        ax = axes_at(row, 0)
        _tile(ax, images[q], QUERY_COLOUR, 3.0)
        ax.set_title("query", fontsize=7, color=QUERY_COLOUR, pad=2)
        _tag_lines(ax, query_values, None, 6)
        for p, (_label, indices, sims) in enumerate(panels):
            for j in range(k):
                item = int(indices[row, j])
                item_values = {c: values[c][item] for c in categories}
                matches = sum(bool(set(item_values[c]) & set(query_values[c])) for c in categories)
                ax = axes_at(row, 1 + p * k + j)
                _tile(ax, images[item], MATCH_COLOUR if matches == len(categories) else "#d0d7de", 2.0)
                ax.set_title(f"#{j + 1} cos {sims[row, j]:.3f} {matches}/{len(categories)}", fontsize=6, pad=2)
                _tag_lines(ax, item_values, query_values, 6)
    fig.text(
        0.01,
        0.1 / height,
        f"Tag lines: {', '.join(categories)}.  \u2713 green = same value as the query; "
        "green frame = every category matches.",
        fontsize=7,
        va="bottom",
    )
    _save(fig, path)


def _colour_groups(labels: np.ndarray, max_groups: int = 12) -> tuple[list[str], np.ndarray]:
    """The most frequent values (up to ``max_groups``) and each point's group index (-1 = other)."""
    counts = Counter(labels.tolist())
    top = [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_groups]]
    where = {v: i for i, v in enumerate(top)}
    return top, np.array([where.get(v, -1) for v in labels.tolist()])


def map_scatter(path, xy: np.ndarray, labels, *, category: str, title: str = "", dpi: int = 100) -> None:
    """The 2-D map as points coloured by each item's value of ``category`` (top 12 values, rest grey)."""
    labels = np.asarray(labels, dtype=str)
    top, group = _colour_groups(labels)
    fig, ax = plt.subplots(figsize=(7.5, 6), dpi=dpi)
    other = group < 0
    if other.any():
        ax.scatter(xy[other, 0], xy[other, 1], s=4, c="#c8c8c8", label=f"other ({other.sum()})", linewidths=0)
    cmap = plt.get_cmap("tab20" if len(top) > 10 else "tab10")
    for i, value in enumerate(top):
        sel = group == i
        ax.scatter(xy[sel, 0], xy[sel, 1], s=5, color=cmap(i), label=f"{value} ({sel.sum()})", linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"t-SNE map coloured by {category}", fontsize=10)
    ax.legend(
        title=category, fontsize=7, title_fontsize=8, markerscale=2.5, loc="center left", bbox_to_anchor=(1.0, 0.5)
    )
    _save(fig, path)


def grid_pick(xy: np.ndarray, grid: int) -> list[tuple[int, int, int]]:
    """(row, col, point) for each cell of a grid x grid partition of the map holding points: the point
    nearest the cell centre (row 0 = top)."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    unit = (xy - lo) / np.where(hi > lo, hi - lo, 1.0)
    cell = np.minimum((unit * grid).astype(int), grid - 1)
    centre = (cell + 0.5) / grid
    dist = ((unit - centre) ** 2).sum(axis=1)
    best: dict[tuple[int, int], int] = {}
    for i in np.argsort(dist, kind="stable"):
        key = (int(cell[i, 0]), int(cell[i, 1]))
        best.setdefault(key, int(i))
    return [(grid - 1 - cy, cx, i) for (cx, cy), i in sorted(best.items())]


def map_collage(
    path, xy: np.ndarray, images, *, grid: int = 24, tile: int = 64, title: str = "", dpi: int = 100
) -> None:
    """The paper's t-SNE collage: the map cut into grid x grid cells, each showing the thumbnail of
    the item nearest its centre (empty cells stay white). ``images`` are the mapped points' paths."""
    canvas = np.full((grid * tile, grid * tile, 3), 255, dtype=np.uint8)
    for row, col, i in grid_pick(xy, grid):
        canvas[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile] = thumbnail(os.fspath(images[i]), tile)
    fig, ax = plt.subplots(figsize=(grid * tile / dpi, grid * tile / dpi + 0.4), dpi=dpi)
    ax.imshow(canvas)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def attribute_heatmap(path, table: pl.DataFrame, *, title: str = "", dpi: int = 100) -> None:
    """Models x categories: CorrEmbed of each category alone (left) and the drop when it is left out (right).

    ``table``: columns model, category, alone, drop (one row per model x category).
    """
    models = list(dict.fromkeys(table["model"].to_list()))
    categories = sorted(set(table["category"].to_list()))
    fig, axes = plt.subplots(2, 1, figsize=(3.0 + 1.0 * len(categories), 2.6 + 0.9 * len(models)), dpi=dpi)
    for ax, column, label, cmap in (
        (axes[0], "alone", "CorrEmbed of this category alone", "viridis"),
        (axes[1], "drop", "drop when it is left out", "magma"),
    ):
        grid = np.full((len(models), len(categories)), np.nan)
        for row in table.iter_rows(named=True):
            grid[models.index(row["model"]), categories.index(row["category"])] = row[column]
        finite = grid[np.isfinite(grid)]
        vmax = float(np.abs(finite).max()) if finite.size else 1.0
        vmin = 0.0 if column == "alone" and (finite >= 0).all() else -vmax
        im = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax or 1.0, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                shade = (v - vmin) / ((vmax - vmin) or 1.0)
                ax.text(
                    j, i, f"{v:.3f}", ha="center", va="center", fontsize=7, color="white" if shade < 0.55 else "black"
                )
        ax.set_xticks(range(len(categories)), categories, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.set_title(label, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def spread_apart(positions: np.ndarray, *, gap: float) -> np.ndarray:
    """Ascending label positions (axes fractions, float64 (n,)) moved apart to at least ``gap``,
    each as little as possible, kept within 0..1 where there is room."""
    out = np.clip(np.asarray(positions, dtype=np.float64), 0.0, 1.0)
    for i in range(1, out.size):
        out[i] = max(out[i], out[i - 1] + gap)
    if out.size and out[-1] > 1.0:
        out[-1] = 1.0
        for i in range(out.size - 2, -1, -1):
            out[i] = min(out[i], out[i + 1] - gap)
    return out


def corrembed_vs_ndcg(path, table: pl.DataFrame, *, k: int = 10, dpi: int = 100) -> None:
    """Across models: CorrEmbed (x, with its interval) against nDCG@k (y, with its interval), labelled,
    with the Pearson and Spearman correlation across models when there are at least 3.

    ``table``: columns model, corrembed, ci_low, ci_high, ndcg, ndcg_low, ndcg_high.
    """
    from scipy import stats

    fig, ax = plt.subplots(figsize=(6.5, 5), dpi=dpi)
    x, y = table["corrembed"].to_numpy(), table["ndcg"].to_numpy()
    ax.errorbar(
        x,
        y,
        xerr=[x - table["ci_low"].to_numpy(), table["ci_high"].to_numpy() - x],
        yerr=[y - table["ndcg_low"].to_numpy(), table["ndcg_high"].to_numpy() - y],
        fmt="o",
        color="#0969da",
        ecolor="#8c959f",
        capsize=2,
    )
    # Labels in a column right of the axes, in the points' vertical order and spread apart, each
    # joined to its point: models with close scores would otherwise print over each other.
    low, high = ax.get_ylim()
    order = np.argsort(y, kind="stable")
    heights = spread_apart((y[order] - low) / (high - low), gap=0.05)
    names = table["model"].to_list()
    for index, height in zip(order, heights):
        ax.annotate(
            names[index],
            (x[index], y[index]),
            xytext=(1.03, height),
            textcoords="axes fraction",
            fontsize=8,
            va="center",
            arrowprops={"arrowstyle": "-", "color": "#afb8c1", "lw": 0.6},
        )
    note = ""
    if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        r, rho = stats.pearsonr(x, y)[0], stats.spearmanr(x, y)[0]
        note = f"across {len(x)} models: Pearson r = {r:.2f}, Spearman \u03c1 = {rho:.2f}"
    ax.set_xlabel("CorrEmbed (headline)")
    ax.set_ylabel(f"nDCG@{k} (gain = tag similarity)")
    ax.set_title("Does CorrEmbed agree with a retrieval metric?" + (f"\n{note}" if note else ""), fontsize=10)
    ax.grid(alpha=0.3)
    _save(fig, path)


def comparison_plot(path, ranking: pl.DataFrame, pairs: pl.DataFrame, *, dpi: int = 100) -> None:
    """Models ranked by CorrEmbed (bars, 95 % intervals); above them one bracket per pair of models that
    do NOT differ significantly (paired bootstrap, after correction), in the manner of rsatoolbox."""
    models = ranking["model"].to_list()
    means = ranking["corrembed"].to_numpy()
    low, high = ranking["ci_low"].to_numpy(), ranking["ci_high"].to_numpy()
    tied = pairs.filter(pl.col("tied"))
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(models), 4.5 + 0.12 * tied.height), dpi=dpi)
    pos = np.arange(len(models))
    ax.bar(pos, means, color="#54aeff", edgecolor="#0969da", width=0.7)
    ax.errorbar(pos, means, yerr=[means - low, high - means], fmt="none", ecolor="black", capsize=3)
    top = float(np.nanmax(high)) if len(models) else 0.0
    step = 0.04 * (top - min(0.0, float(np.nanmin(low))) or 1.0)
    for level, row in enumerate(tied.iter_rows(named=True)):
        a, b = models.index(row["model_a"]), models.index(row["model_b"])
        y = top + step * (level + 1)
        ax.plot([a, a, b, b], [y - step * 0.3, y, y, y - step * 0.3], color="#6e7781", lw=1)
        ax.text((a + b) / 2, y, "n.s.", ha="center", va="bottom", fontsize=6, color="#6e7781")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(pos, [f"{i + 1}. {m}" for i, m in enumerate(models)], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("CorrEmbed (95 % interval)")
    ax.set_title("Models ranked; brackets join pairs that are not significantly different", fontsize=9)
    _save(fig, path)


def layer_sweep_plot(path, table: pl.DataFrame, *, model: str, dpi: int = 100) -> None:
    """One model's CorrEmbed (y, with its interval) against relative depth (x), one line per
    weighting, each point labelled with its layer; the headline layer (the model's ``layer:``)
    ringed.

    ``table``: :data:`corrembed.diagnostics.layers.LAYER_COLUMNS` rows of one model.
    """
    colours = ("#0969da", "#bf3989", "#1a7f37", "#9a6700")
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=dpi)
    for colour, (weighting,) in zip(colours, table.select("weighting").unique(maintain_order=True).iter_rows()):
        rows = table.filter(pl.col("weighting") == weighting).sort("relative_depth")
        x, y = rows["relative_depth"].to_numpy(), rows["corrembed"].to_numpy()
        ax.errorbar(
            x,
            y,
            yerr=[y - rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy() - y],
            fmt="-o",
            color=colour,
            ecolor="#8c959f",
            capsize=2,
            markersize=4,
            label=weighting,
        )
        headline = rows.filter(pl.col("headline"))
        ax.scatter(
            headline["relative_depth"], headline["corrembed"], s=140, facecolors="none", edgecolors=colour, lw=1.5
        )
        if colour == colours[0]:
            # Layers close in depth (a block and the pooled head) get labels stacked downwards.
            stack, previous = 0, -1.0
            for name, xi, yi in zip(rows["layer"].to_list(), x, y):
                stack = stack + 1 if xi - previous < 0.06 else 0
                previous = xi
                ax.annotate(
                    name,
                    (xi, yi),
                    xytext=(6, -10 - 10 * stack if stack else 6),
                    textcoords="offset points",
                    fontsize=7,
                    arrowprops={"arrowstyle": "-", "color": "#d0d7de", "lw": 0.6} if stack else None,
                )
    low, high = ax.get_ylim()
    ax.set_ylim(low - 0.12 * (high - low), high + 0.08 * (high - low))
    ax.set_xlim(-0.02, 1.18)
    ax.set_xlabel("relative depth (0 = input, 1 = output)")
    ax.set_ylabel("CorrEmbed (95 % interval)")
    ax.set_title(f"{model}: CorrEmbed layer by layer (ringed: the headline layer)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(title="weighting", fontsize=8)
    _save(fig, path)

"""Deployment figures (matplotlib, Agg): quality against bytes per item and against throughput.

Both draw one weighting's rows of the deployment table and write atomically to ``path`` (.png
or .svg by suffix).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt
import polars as pl

from ..storage import atomic_path


def _save(fig, path) -> None:
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=os.path.splitext(path)[1].lstrip(".") or "png", dpi=fig.dpi, bbox_inches="tight")
    plt.close(fig)


def _label(variant: str) -> str:
    return variant.replace("+", "\n+")


def pareto_front(cost, quality):
    """(m,) bool: the points no other point beats on both axes (no cheaper-or-equal point with a
    higher quality), NaN quality never on the front.

    Examples
    --------
    >>> import numpy as np
    >>> pareto_front(np.array([1, 2, 3, 4]), np.array([0.5, 0.4, 0.6, 0.6])).tolist()
    [True, False, True, False]
    """
    import numpy as np

    cost, quality = np.asarray(cost, dtype=float), np.asarray(quality, dtype=float)
    front = np.zeros(cost.size, dtype=bool)
    best = -np.inf
    for i in np.lexsort((-quality, cost)):  # cheapest first, better first among equal costs
        if np.isfinite(quality[i]) and quality[i] > best:
            front[i], best = True, quality[i]
    return front


def pareto_bytes(path, table: pl.DataFrame, weighting: str, *, recommended: dict | None = None, dpi: int = 100) -> None:
    """CorrEmbed against bytes per item (log axis): per model every variant (crosses: beaten by a
    cheaper one of the same model), a line with its 95 % band through the model's Pareto front
    (:func:`pareto_front`), the best full embedding's interval as a grey band, the recommendation
    ringed. No monotone loss is assumed: a cheaper variant may score higher."""
    part = table.filter(pl.col("weighting") == weighting).sort(["model", "bytes_per_item", "variant"])
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=dpi)
    best = part.filter(pl.col("delta_vs_best") == 0.0).filter(pl.col("variant") == "full")
    if best.height:
        row = best.row(0, named=True)
        ax.axhspan(row["ci_low"], row["ci_high"], color="0.85", zorder=0, label=f"best ({row['model']} full) 95 % CI")
    for (model,), rows in part.group_by("model", maintain_order=True):
        x, y = rows["bytes_per_item"].to_numpy(), rows["corrembed"].to_numpy()
        front = pareto_front(x, y)
        (line,) = ax.plot(x[front], y[front], marker="o", label=f"{model} (line: its Pareto front)")
        ax.scatter(x[~front], y[~front], color=line.get_color(), marker="x", s=25)
        ax.fill_between(
            x[front],
            rows["ci_low"].to_numpy()[front],
            rows["ci_high"].to_numpy()[front],
            color=line.get_color(),
            alpha=0.15,
        )
        for xi, yi, v, tied in zip(x, y, rows["variant"].to_list(), rows["tied_with_best"].to_list()):
            ax.annotate(
                _label(v),
                (xi, yi),
                textcoords="offset points",
                xytext=(3, 3),
                fontsize=6,
                color=line.get_color(),
                fontweight="bold" if tied else "normal",
            )
    if recommended is not None:
        ax.scatter(
            [recommended["bytes_per_item"]],
            [recommended["corrembed"]],
            s=220,
            facecolors="none",
            edgecolors="black",
            linewidths=1.5,
            zorder=5,
            label="recommended (cheapest tied with best)",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per item (log scale)")
    ax.set_ylabel(f"CorrEmbed ({weighting} tags)")
    ax.set_title("Quality kept by cheaper vectors (bold labels: not significantly below the best)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, path)


def pareto_speed(path, table: pl.DataFrame, weighting: str, *, dpi: int = 100) -> None:
    """CorrEmbed of each model's full embedding against its measured embedding throughput
    (images/s, log axis) with 95 % intervals; models without a measured throughput are listed
    in the title rather than placed anywhere."""
    part = table.filter((pl.col("weighting") == weighting) & (pl.col("variant") == "full"))
    known = part.filter(pl.col("images_per_second").is_not_null())
    unknown = part.filter(pl.col("images_per_second").is_null())["model"].to_list()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=dpi)
    for row in known.iter_rows(named=True):
        err = [[row["corrembed"] - row["ci_low"]], [row["ci_high"] - row["corrembed"]]]
        ax.errorbar([row["images_per_second"]], [row["corrembed"]], yerr=err, fmt="o", capsize=3)
        where = row["device_name"] or row["device"] or "?"
        ax.annotate(
            f"{row['model']}\n({where}, {row['embed_precision']})",
            (row["images_per_second"], row["corrembed"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    if known.height:
        ax.set_xscale("log")
    ax.set_xlabel("embedding throughput, images/s (measured by the embed stage; log scale)")
    ax.set_ylabel(f"CorrEmbed ({weighting} tags)")
    title = "Quality against embedding speed"
    if unknown:
        title += f"\n(no measured throughput: {', '.join(unknown)})"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _save(fig, path)

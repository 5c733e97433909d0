"""Figures of the tag audit and the model agreement (matplotlib, Agg; written atomically).

- :func:`suspect_sheet`: the most suspect (item, category) rows of the audit as thumbnails, each
  with its tag, the value its neighbours suggest and the suspicion score;
- :func:`agreement_heatmap`: models x models, debiased CKA (left) and mutual k-NN (right).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from ..storage import atomic_path
from .figures import thumbnail


def _write(fig, path) -> None:
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=os.path.splitext(path)[1].lstrip(".") or "png", dpi=fig.dpi, bbox_inches="tight")
    plt.close(fig)


def suspect_sheet(path, audit: pl.DataFrame, images, *, n_items: int = 24, columns: int = 6, dpi: int = 80) -> None:
    """The ``n_items`` most suspect audit rows (the table is sorted), ``columns`` per row.

    Args:
        path: output file (.png or .svg).
        audit: :func:`~corrembed.diagnostics.audit.tag_audit` table (most suspect first).
        images: item id -> image path.
        n_items, columns: how many tiles and how many per row.
    """
    rows = audit.head(n_items).iter_rows(named=True)
    shown = list(rows)
    lines = max(1, -(-len(shown) // columns))
    fig, axes = plt.subplots(lines, columns, figsize=(1.9 * columns, 2.5 * lines), dpi=dpi, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, row in zip(axes.ravel(), shown):
        ax.imshow(thumbnail(os.fspath(images.get(row["item_id"], ""))))
        suggestion = row["suggested_value"] or "-"
        ax.set_title(
            f"{row['item_id']}  {row['category']}\ntag: {row['value']}\nsuggested: {suggestion}\n"
            f"suspicion {row['suspicion']:.2f}, agree {row['agreement']:.2f}",
            fontsize=6.5,
            loc="left",
        )
    models = shown[0]["models"] if shown else ""
    fig.suptitle(f"Most suspect tags (neighbours in {models.replace(';', ', ')})", fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    _write(fig, path)


def agreement_heatmap(path, table: pl.DataFrame, *, dpi: int = 100) -> None:
    """Models x models heatmaps of ``cka`` and ``mutual_knn`` from a ``model_agreement.csv`` table (diagonal 1)."""
    models = list(dict.fromkeys(table["model_a"].to_list() + table["model_b"].to_list()))
    m = len(models)
    if m == 0:
        fig = plt.figure(figsize=(4, 1), dpi=dpi)
        fig.text(0.5, 0.5, "one model: no pair to compare", ha="center", va="center")
        _write(fig, path)
        return
    fig, axes = plt.subplots(1, 2, figsize=(2.5 + 1.6 * m, 1.2 + 0.7 * m), dpi=dpi, squeeze=False)
    k = int(table["k"][0]) if table.height else 0
    for ax, column, label in ((axes[0, 0], "cka", "debiased linear CKA"), (axes[0, 1], "mutual_knn", f"mutual {k}-NN")):
        grid = np.eye(m)
        for row in table.iter_rows(named=True):
            i, j = models.index(row["model_a"]), models.index(row["model_b"])
            grid[i, j] = grid[j, i] = row[column]
        im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0)
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.55 else "black")
        ax.set_xticks(range(m), models, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(m), models, fontsize=7)
        ax.set_title(label, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    _write(fig, path)

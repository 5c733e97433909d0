"""The report's deployment section: the recommendation in words, the table a person reads at a
glance, and the two figures (read from the files the deployment rule writes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from ..diagnostics.report import Figure, Section, Table

#: deployment.csv columns shown in the report (all of them: the CSV).
SHOWN = (
    "model",
    "variant",
    "bytes_per_item",
    "corrembed",
    "ci_low",
    "ci_high",
    "delta_vs_full",
    "p_vs_full",
    "delta_vs_best",
    "p_vs_best",
    "tied_with_best",
    "images_per_second",
)


def deployment_section(csv_path: str | os.PathLike, recommendation_path, bytes_figure, speed_figure) -> Section:
    """The "What to deploy" section for the headline weighting of ``recommendation.json``."""
    picks = json.loads(Path(recommendation_path).read_text(encoding="utf-8"))
    headline = picks["headline"]
    pick = picks["weightings"].get(headline) or next(iter(picks["weightings"].values()))
    weighting = pick["weighting"]
    table = pl.read_csv(csv_path).filter(pl.col("weighting") == weighting)
    ndcg = [c for c in table.columns if c.startswith("ndcg_at_")]
    shown = table.select([*SHOWN[:6], *ndcg, *SHOWN[6:]]).sort(["model", "bytes_per_item"], descending=[False, True])
    return Section(
        "What to deploy: quality against vector size and speed",
        f"<b>{pick['sentence']}</b> Each model's vectors were also scored shortened by PCA (pca&lt;k&gt;: the "
        "catalogue's k principal axes), stored at lower precision (fp16; int8 = 256 levels per dimension; "
        "binary = one bit per dimension) or both, on the same anchors as the headline score. A variant is "
        "<i>tied</i> with the best model when a paired bootstrap over anchors finds no significant difference "
        f"(p adjusted over all rows, {weighting} tags). Fewer dimensions can score <i>higher</i>: PCA drops "
        "directions that are noise for the tags.",
        tables=[
            Table(
                shown,
                "Per model and variant: bytes per stored vector, CorrEmbed with 95 % interval, nDCG, the paired "
                "difference from the model's full vector and from the best model (adjusted p), and the model's "
                "measured throughput (empty: not measured). All columns: results/deployment.csv.",
            )
        ],
        figures=[
            Figure(
                bytes_figure,
                "Quality against bytes per item",
                "One line per model through its variants (bytes on a log scale), bands = 95 % intervals, grey band = "
                "the best model's interval, bold labels = not significantly below the best; the ring marks the "
                "cheapest such configuration.",
            ),
            Figure(
                speed_figure,
                "Quality against embedding speed",
                "Each model's full embedding against the images/s its embed stage measured (device and precision in "
                "the label): a faster model inside the best's interval may be the cheaper deployment.",
            ),
        ],
    )

"""The recommendation: the cheapest configuration statistically tied with the best full embedding.

From the deployment table (:func:`corrembed.deployment.table.deployment_table`), per weighting:

- ``cheapest``: among rows tied with the best model's full embedding (adjusted p >= alpha), the
  fewest bytes per item; ties broken by higher CorrEmbed, then by model and variant name. When
  that is the best model's full embedding itself, no cheaper configuration is tied.
- ``fastest``: among the tied rows of models with a measured throughput, the model with the most
  images/s, and its cheapest tied variant (None when no throughput is known).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ..errors import ScoringError

#: Columns :func:`with_deployment_columns` adds to the summary.
SUMMARY_DEPLOYMENT_COLUMNS = ("deploy_variant", "deploy_bytes_per_item", "deploy_corrembed", "deploy_recommended")


@dataclass(frozen=True)
class Recommendation:
    """What to deploy for one weighting.

    Attributes:
        weighting: the tag weighting; best_model, best_corrembed, best_bytes: the best full embedding.
        cheapest: the cheapest tied row (a dict of the table's columns).
        fastest: the fastest tied model's cheapest tied row, or None (no measured throughput).
        cheaper_tied: whether ``cheapest`` costs fewer bytes than the best full embedding.
    """

    weighting: str
    best_model: str
    best_corrembed: float
    best_bytes: int
    cheapest: dict
    fastest: dict | None
    cheaper_tied: bool

    def sentence(self) -> str:
        """The recommendation in words, with the numbers behind it."""
        best = f"{self.best_model} full ({self.best_bytes} B/item, CorrEmbed {self.best_corrembed:.3f})"
        c = self.cheapest
        if not self.cheaper_tied:
            text = f"No cheaper configuration is statistically tied with the best, {best}."
        else:
            text = (
                f"Cheapest tied with the best ({best}): {c['model']} {c['variant']}, {c['bytes_per_item']} B/item "
                f"({self.best_bytes / c['bytes_per_item']:.0f}x smaller), CorrEmbed {c['corrembed']:.3f} "
                f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}], difference {c['delta_vs_best']:+.3f} "
                f"(adjusted p = {c['p_vs_best']:.3f})."
            )
        f = self.fastest
        if f is not None:
            text += (
                f" Fastest tied model: {f['model']} ({f['images_per_second']:.0f} images/s on "
                f"{f['device_name'] or f['device']}), as {f['variant']} ({f['bytes_per_item']} B/item)."
            )
        return text

    def as_dict(self) -> dict:
        """JSON-ready dict (the rows as dicts, and the sentence)."""
        return {
            "weighting": self.weighting,
            "best_model": self.best_model,
            "best_corrembed": self.best_corrembed,
            "best_bytes": self.best_bytes,
            "cheaper_tied": self.cheaper_tied,
            "cheapest": self.cheapest,
            "fastest": self.fastest,
            "sentence": self.sentence(),
        }


def _cheapest(rows: pl.DataFrame) -> dict:
    return rows.sort(["bytes_per_item", "corrembed", "model", "variant"], descending=[False, True, False, False]).row(
        0, named=True
    )


def recommend(table: pl.DataFrame, weighting: str) -> Recommendation:
    """The :class:`Recommendation` for ``weighting`` from the deployment table.

    Examples
    --------
    >>> t = pl.DataFrame({"model": ["a", "a", "b"], "variant": ["full", "int8", "full"],
    ...     "weighting": ["binary"] * 3, "bytes_per_item": [40, 10, 20], "corrembed": [0.3, 0.29, 0.1],
    ...     "ci_low": [0.2] * 3, "ci_high": [0.4] * 3, "best_model": ["a"] * 3, "delta_vs_best": [0.0, -0.01, -0.2],
    ...     "p_vs_best": [1.0, 0.6, 0.001], "tied_with_best": [True, True, False],
    ...     "images_per_second": [10.0, 10.0, 99.0], "device": ["cpu"] * 3, "device_name": ["cpu"] * 3})
    >>> r = recommend(t, "binary"); r.cheapest["variant"], r.fastest["model"]
    ('int8', 'a')
    """
    part = table.filter(pl.col("weighting") == weighting)
    if part.is_empty():
        raise ScoringError(f"deployment: no row for weighting {weighting!r}")
    best_model = part["best_model"][0]
    best = part.filter((pl.col("model") == best_model) & (pl.col("variant") == "full")).row(0, named=True)
    tied = part.filter(pl.col("tied_with_best"))
    cheapest = _cheapest(tied) if tied.height else best
    measured = tied.filter(pl.col("images_per_second").is_not_null())
    fastest = None
    if measured.height:
        top = measured.sort(["images_per_second", "model"], descending=[True, False])["model"][0]
        fastest = _cheapest(measured.filter(pl.col("model") == top))
    return Recommendation(
        weighting,
        best_model,
        float(best["corrembed"]),
        int(best["bytes_per_item"]),
        cheapest,
        fastest,
        bool(cheapest["bytes_per_item"] < best["bytes_per_item"]),
    )


def with_deployment_columns(summary: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """``summary`` with :data:`SUMMARY_DEPLOYMENT_COLUMNS` for each (model, weighting): the model's
    cheapest variant tied with the best full embedding (empty when none is), its bytes and
    CorrEmbed, and whether it is the weighting's recommendation (:func:`recommend`)."""
    tied = table.filter(pl.col("tied_with_best"))
    rows = []
    for weighting in dict.fromkeys(table["weighting"].to_list()):
        pick = recommend(table, weighting).cheapest
        for model in dict.fromkeys(table.filter(pl.col("weighting") == weighting)["model"].to_list()):
            mine = tied.filter((pl.col("weighting") == weighting) & (pl.col("model") == model))
            row = _cheapest(mine) if mine.height else None
            rows.append(
                {
                    "model": model,
                    "weighting": weighting,
                    "deploy_variant": row["variant"] if row else "",
                    "deploy_bytes_per_item": row["bytes_per_item"] if row else None,
                    "deploy_corrembed": row["corrembed"] if row else None,
                    "deploy_recommended": bool(
                        row and row["model"] == pick["model"] and row["variant"] == pick["variant"]
                    ),
                }
            )
    extra = pl.DataFrame(
        rows,
        schema={
            "model": pl.String,
            "weighting": pl.String,
            "deploy_variant": pl.String,
            "deploy_bytes_per_item": pl.Int64,
            "deploy_corrembed": pl.Float64,
            "deploy_recommended": pl.Boolean,
        },
    )
    base = summary.drop(list(SUMMARY_DEPLOYMENT_COLUMNS), strict=False)
    return base.join(extra, on=["model", "weighting"], how="left")

"""The summary's retrieval columns from the diagnostics' per-category retrieval tables.

``ndcg_at_10`` is the row's nDCG@k (k = ``diagnostics.retrieval_k``, 10 by default; nDCG depends on
the weighting, so each row has its own, the headline row the headline's); ``recall_at_10``,
``map_at_r`` and ``mrr`` are Recall@k, mAP@R and MRR averaged over the retrieval categories (the
per-category figures with their intervals are in ``results/diagnostics/models/{model}/{weighting}.retrieval.csv``).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

#: summary column -> metric name in the retrieval tables.
RETRIEVAL_COLUMNS = {"ndcg_at_10": "ndcg", "recall_at_10": "recall", "map_at_r": "map_at_r", "mrr": "mrr"}


def retrieval_columns(tables: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Retrieval tables (``metric, category, mean, model, weighting`` columns, as the diagnostics write
    them) -> one row per (model, weighting) with :data:`RETRIEVAL_COLUMNS` (means over categories).

    Examples:
        >>> t = pl.DataFrame({"metric": ["ndcg", "recall", "recall", "map_at_r", "mrr"],
        ...                   "category": ["", "a", "b", "a", "a"], "mean": [0.5, 0.2, 0.4, 0.1, 0.3]})
        >>> retrieval_columns([t.with_columns(model=pl.lit("m"), weighting=pl.lit("binary"))]).row(0)
        ('m', 'binary', 0.5, 0.30000000000000004, 0.1, 0.3)
    """
    schema = {"model": pl.String, "weighting": pl.String, **dict.fromkeys(RETRIEVAL_COLUMNS, pl.Float64)}
    if not tables:
        return pl.DataFrame(schema=schema)
    table = pl.concat([t.select("model", "weighting", "metric", "mean") for t in tables])
    means = table.group_by("model", "weighting", "metric", maintain_order=True).agg(pl.col("mean").drop_nans().mean())
    wide = means.pivot(on="metric", index=["model", "weighting"], values="mean")
    return wide.select(
        pl.col("model").cast(pl.String),
        pl.col("weighting").cast(pl.String),
        *(
            (pl.col(metric) if metric in wide.columns else pl.lit(None)).cast(pl.Float64).alias(column)
            for column, metric in RETRIEVAL_COLUMNS.items()
        ),
    )


def with_retrieval_columns(summary: pl.DataFrame, tables: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """``summary`` with its retrieval columns filled (nulls where no table; column order kept)."""
    columns = list(dict.fromkeys([*summary.columns, *RETRIEVAL_COLUMNS]))
    base = summary.drop(list(RETRIEVAL_COLUMNS), strict=False)
    return base.join(retrieval_columns(tables), on=["model", "weighting"], how="left").select(columns)

"""Writing a score report to files (the workflow side of the score stage)."""

from __future__ import annotations

import numpy as np

from .results import ScoreReport


def write_score(
    report: ScoreReport,
    score_path,
    per_anchor_path,
    *,
    item_ids,
    extra: dict | None = None,
) -> None:
    """Write a report atomically: scalars as JSON, per-anchor results as Parquet.

    Parameters
    ----------
    report : ScoreReport
    score_path : path
        JSON of a :class:`corrembed.records.ScoreRecord`: :meth:`ScoreReport.as_dict` plus
        ``extra`` (model, weighting, settings, excluded counts), with its ``schema_version``.
    per_anchor_path : path
        Parquet with anchor (int64 item index), item_id (string), r_pearson, r_spearman
        (float64): the drawn anchors, so a sampled run can be reproduced and inspected.
    item_ids : (n,) sequence of str
        Item ids in row order of the scored arrays.
    extra : dict, optional
        Keys written before the report's own.

    Examples
    --------
    >>> write_score(report, "scores/m/binary.json", "scores/m/binary.per_anchor.parquet",
    ...             item_ids=ids, extra={"model": "m"})  # doctest: +SKIP
    """
    import polars as pl

    from ..records import ScoreRecord
    from ..storage import write_table

    ids = np.asarray(item_ids, dtype=str)
    table = report.per_anchor_table().with_columns(item_id=pl.Series(ids[report.anchors], dtype=pl.String))
    write_table(per_anchor_path, table.select("anchor", "item_id", "r_pearson", "r_spearman"))
    ScoreRecord.from_report(report.as_dict(), **(extra or {})).write(score_path)

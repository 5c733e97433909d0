"""What the summary rule runs: every model's records -> ``results/summary.csv``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ..deployment.recommend import with_deployment_columns
from ..diagnostics.comparison import with_rank_columns
from ..diagnostics.retrieval_columns import with_retrieval_columns
from ..models import imagenet_acc1_kind, imagenet_metadata, parse_model_spec
from ..records import CatalogueReport
from ..storage import write_table
from .table import read_metas, read_scores, summary_table, weight_source


def summary_job(
    out_path: str | os.PathLike,
    *,
    scores: Sequence[str | os.PathLike],
    metas: Sequence[str | os.PathLike],
    categories: Sequence[str | os.PathLike],
    ingest_report: str | os.PathLike,
    rankings: Sequence[str | os.PathLike],
    retrieval: Sequence[str | os.PathLike] = (),
    deployment: str | os.PathLike | None = None,
    models: Mapping[str, Any],
    log: logging.Logger,
) -> pl.DataFrame:
    """Write the summary table (one row per model x layer x weighting) to ``out_path``.

    ``scores``, ``metas``: the score JSONs and embedding ``meta.json`` files; ``categories``: each
    weighting's ``categories.csv`` (its folder names the weighting); ``ingest_report``: ingest's
    ``report.json`` (rows set aside, by kind); ``rankings``: the diagnostics' paired-comparison
    rankings (one per weighting, may be empty); ``retrieval``: the diagnostics'
    per-model retrieval tables (may be empty: the retrieval columns stay empty); ``deployment``:
    ``results/deployment.csv`` when the study ran (the recommendation columns); ``models``: the config's model entries.
    """
    sources = {Path(p).parent.name: weight_source(pl.read_csv(p)) for p in categories}
    specs = {name: parse_model_spec(spec, model_name=name) for name, spec in models.items()}
    imagenet = {
        name: {**imagenet_metadata(spec), "acc1_kind": imagenet_acc1_kind(spec), "source": spec.source}
        for name, spec in specs.items()
    }
    catalogue = CatalogueReport.read(ingest_report)
    table = summary_table(read_scores(scores), read_metas(metas), imagenet, sources, catalogue)
    # Ranks and tied sets from the diagnostics' paired comparison (results/diagnostics/comparison/).
    table = with_rank_columns(table, {Path(p).parent.name: pl.read_csv(p) for p in rankings})
    # Retrieval columns from results/diagnostics/models/{model}/{weighting}.retrieval.csv.
    table = with_retrieval_columns(table, [pl.read_csv(p) for p in retrieval])
    # The deployment study's cheapest tied variant per model (results/deployment.csv), when it ran.
    if deployment:
        table = with_deployment_columns(table, pl.read_csv(deployment))
    log.info("summary:\n%s", table)
    write_table(out_path, table)
    return table

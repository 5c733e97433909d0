"""Rule diagnostics_comparison: paired bootstrap between every pair of models, ranks, tied sets, plot."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.diagnostics.comparison import align_per_anchor, compare_models
from corrembed.diagnostics.figures import comparison_plot
from corrembed.joblog import job_logging
from corrembed.storage import write_table

settings, scoring = snakemake.params.comparison, snakemake.params.scoring
with job_logging(snakemake.log[0], f"diagnostics_comparison[{snakemake.wildcards.weighting}]") as log:
    tables = {m: pl.read_parquet(p) for m, p in zip(snakemake.params.models, snakemake.input.per_anchor)}
    ids, per_anchor = align_per_anchor(tables)
    if any(len(ids) != t.height for t in tables.values()):
        log.warning("models differ in their anchors; comparing on the %d anchors they share", len(ids))
    result = compare_models(
        per_anchor,
        resamples=max(scoring["bootstrap"], 1),
        confidence=scoring["confidence"],
        alpha=settings["alpha"],
        correction=settings["correction"],
        seed=scoring["seed"],
    )
    log.info("ranking:\n%s\npairs:\n%s", result.ranking, result.pairs)
    ranking = result.ranking.with_columns(tied_with=pl.col("tied_with").list.join(";"))
    write_table(snakemake.output.ranking, ranking)
    write_table(snakemake.output.pairs, result.pairs)
    comparison_plot(snakemake.output.plot, result.ranking, result.pairs)

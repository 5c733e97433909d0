"""Rule summary: results/summary.csv, one row per model x layer x weighting."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.deployment.recommend import with_deployment_columns
from corrembed.diagnostics.comparison import with_rank_columns
from corrembed.joblog import job_logging
from corrembed.models import imagenet_acc1_kind, imagenet_metadata, parse_model_spec
from corrembed.records import CatalogueReport
from corrembed.storage import write_table
from corrembed.summary import read_metas, read_scores, summary_table, weight_source

with job_logging(snakemake.log[0], "summary") as log:
    metas = read_metas(snakemake.input.metas)
    sources = {Path(p).parent.name: weight_source(pl.read_csv(p)) for p in snakemake.input.categories}
    specs = {name: parse_model_spec(spec, model_name=name) for name, spec in snakemake.params.models.items()}
    imagenet = {
        name: {**imagenet_metadata(spec), "acc1_kind": imagenet_acc1_kind(spec), "source": spec.source}
        for name, spec in specs.items()
    }
    # Rows set aside and their kinds come from ingest's report (structured counts).
    catalogue = CatalogueReport.read(snakemake.input.ingest_report)
    table = summary_table(read_scores(snakemake.input.scores), metas, imagenet, sources, catalogue)
    # Ranks and tied sets from the diagnostics' paired comparison (results/diagnostics/comparison/).
    rankings = {Path(p).parent.name: pl.read_csv(p) for p in snakemake.input.get("rankings", [])}
    table = with_rank_columns(table, rankings)
    # The deployment study's cheapest tied variant per model (results/deployment.csv), when it ran.
    if snakemake.input.get("deployment"):
        table = with_deployment_columns(table, pl.read_csv(snakemake.input.deployment))
    log.info("summary:\n%s", table)
    write_table(snakemake.output[0], table)

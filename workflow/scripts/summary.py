"""Rule summary: results/summary.csv, one row per model x layer x weighting."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.embedding_store import read_meta
from corrembed.joblog import job_logging
from corrembed.models import imagenet_metadata
from corrembed.storage import write_table
from corrembed.summary import read_scores, summary_table, weight_source

with job_logging(snakemake.log[0], "summary") as log:
    metas = {Path(p).parent.name: read_meta(Path(p).parent) for p in snakemake.input.metas}
    sources = {
        Path(p).parent.name: weight_source(pl.read_csv(p)) for p in snakemake.input.categories
    }
    imagenet = {name: imagenet_metadata(spec) for name, spec in snakemake.params.models.items()}
    rejects = pl.read_csv(snakemake.input.rejects, infer_schema_length=0)
    # Only what ingest set aside counts as rejected; "kept" rows are findings (duplicates, ...).
    rejects = rejects.filter(pl.col("action") == "set_aside")
    ingest_report = json.loads(Path(snakemake.input.ingest_report).read_text(encoding="utf-8"))
    table = summary_table(
        read_scores(snakemake.input.scores), metas, imagenet, sources, rejects.height, ingest_report
    )
    log.info("summary:\n%s", table)
    write_table(snakemake.output[0], table)

"""What the ingest rule runs: a rule script reads ``snakemake.*`` and calls one function here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from ..records import CatalogueReport
from .options import IngestOptions
from .pipeline import ingest_catalogue


def ingest_job(
    manifest: str | os.PathLike,
    *,
    images_out: str | os.PathLike,
    tags_out: str | os.PathLike,
    rejects_out: str | os.PathLike,
    report_out: str | os.PathLike,
    catalogue: Mapping[str, Any],
    threads: int,
    log: logging.Logger,
) -> CatalogueReport:
    """:func:`~corrembed.ingest.pipeline.ingest_catalogue` with the config's ``catalogue:`` options;
    the report's warnings go to the log, the report to ``report_out`` (``report.json``)."""
    report = ingest_catalogue(
        manifest,
        images_out=images_out,
        tags_out=tags_out,
        rejects_out=rejects_out,
        options=IngestOptions.from_config(catalogue),
        threads=threads,
    )
    for line in report.warnings():
        log.warning("%s", line)
    log.info("ingest: %d items, %d images kept; report: %s", report.n_items, report.n_images, report_out)
    report.write(report_out)
    return report

"""Rule plots: CorrEmbed vs ImageNet-1k accuracy (PNG and SVG)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.joblog import job_logging
from corrembed.summary.plots import plot_corrembed_vs_imagenet

with job_logging(snakemake.log[0], "plots"):
    summary = pl.read_csv(snakemake.input[0])
    plot_corrembed_vs_imagenet(summary, [snakemake.output.png, snakemake.output.svg])

"""Rule diagnostics_map_figures: the map coloured by a category, and its thumbnail collage."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.jobs import map_figures_job
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"diagnostics_map_figures[{snakemake.wildcards.model}]"):
    map_figures_job(
        snakemake.input.map,
        snakemake.input.vectors,
        snakemake.input.images,
        scatter_out=snakemake.output.scatter,
        collage_out=snakemake.output.collage,
        model=snakemake.wildcards.model,
        settings=snakemake.params.settings,
    )

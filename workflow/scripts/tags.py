"""Rule tags: weighted tag vectors and the category weight table for one weighting (logic: corrembed.tags.tags_job)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.joblog import job_logging
from corrembed.tags import tags_job

weighting = snakemake.wildcards.weighting
with job_logging(snakemake.log[0], f"tags[{weighting}]") as log:
    tags_job(
        snakemake.input.images,
        snakemake.input.tags,
        vectors_out=snakemake.output.vectors,
        categories_out=snakemake.output.categories,
        weighting=weighting,
        settings=snakemake.params.tags,
        interactions_path=snakemake.input.get("interactions"),
        log=log,
    )

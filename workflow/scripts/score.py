"""Rule score: CorrEmbed, its variants, interval and controls for one model x weighting.

Items whose embedding cannot be compared (all zeros, NaN/inf) are excluded before scoring and
listed, with their image, in ``{weighting}.excluded.csv`` beside the score. All logic is in the
library (:func:`corrembed.score.jobs.score_job`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.joblog import job_logging
from corrembed.score.jobs import score_job

model, weighting = snakemake.wildcards.model, snakemake.wildcards.weighting
with job_logging(snakemake.log[0], f"score[{model},{weighting}]") as log:
    score_job(
        snakemake.input.shard,
        snakemake.input.vectors,
        score_path=snakemake.output.score,
        per_anchor_path=snakemake.output.per_anchor,
        excluded_path=snakemake.output.excluded,
        model=model,
        weighting=weighting,
        settings=snakemake.params.scoring,
        log=log,
    )

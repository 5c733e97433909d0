"""Rule score: CorrEmbed, its variants, interval and controls for one model x weighting.

Items whose embedding cannot be compared (all zeros, NaN/inf) are excluded before scoring and
listed, with their image, in ``{weighting}.excluded.csv`` beside the score.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import pyarrow

from corrembed.checked_reads import checked_embeddings, checked_tag_vectors
from corrembed.item_embeddings import usable_item_embeddings
from corrembed.joblog import job_logging
from corrembed.score import ScoreOptions, score_report
from corrembed.score_files import write_score
from corrembed.storage import write_table

settings = snakemake.params.scoring
model, weighting = snakemake.wildcards.model, snakemake.wildcards.weighting
with job_logging(snakemake.log[0], f"score[{model},{weighting}]") as log:
    vectors = checked_tag_vectors(snakemake.input.vectors)  # damaged files: named, with the rule that rebuilds them
    embeddings = checked_embeddings(Path(snakemake.input.shard))
    usable = usable_item_embeddings(embeddings, vectors.item_ids, settings["item_embedding"])
    del embeddings  # the memory-mapped shard: only the item embeddings (one copy) are scored
    pyarrow.default_memory_pool().release_unused()  # give the shard's decoded pages back now
    write_table(snakemake.output.excluded, usable.excluded)
    if usable.excluded.height:
        log.warning(
            "%s: %d image embedding(s) unusable, %d item(s) excluded from scoring (see %s):\n%s",
            model,
            usable.n_excluded_images,
            usable.n_excluded_items,
            snakemake.output.excluded,
            usable.excluded.head(10),
        )
    item_ids = vectors.item_ids[usable.keep]
    # The stage owns its embeddings array: normalize it in place (no second n x d copy).
    options = ScoreOptions.from_config(settings).with_overrides(normalize_in_place=True)
    report = score_report(usable.vectors, vectors.matrix[usable.keep], options)
    log.info("%s / %s: CorrEmbed %.4f", model, weighting, report.corrembed)
    write_score(
        report,
        snakemake.output.score,
        snakemake.output.per_anchor,
        item_ids=item_ids,
        extra={
            "model": model,
            "weighting": weighting,
            "settings": settings,
            "n_excluded_embeddings": usable.n_excluded_images,
            "n_excluded_items": usable.n_excluded_items,
        },
    )

"""Rule score: CorrEmbed, its variants, interval and controls for one model x weighting."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.embedding_store import read_embeddings
from corrembed.item_embeddings import item_embeddings
from corrembed.joblog import job_logging
from corrembed.score import score_report, write_score
from corrembed.tags import load_tag_vectors

settings = snakemake.params.scoring
model, weighting = snakemake.wildcards.model, snakemake.wildcards.weighting
with job_logging(snakemake.log[0], f"score[{model},{weighting}]") as log:
    vectors = load_tag_vectors(snakemake.input.vectors)
    embeddings = read_embeddings([Path(snakemake.input.shard)])
    items = item_embeddings(embeddings, vectors.item_ids, settings["item_embedding"])
    report = score_report(
        items,
        vectors.matrix,
        anchors=settings["anchors"],
        seed=settings["seed"],
        include_self=settings["include_self"],
        bootstrap=settings["bootstrap"],
        confidence=settings["confidence"],
    )
    log.info("%s / %s: CorrEmbed %.4f", model, weighting, report.corrembed)
    write_score(
        report,
        snakemake.output.score,
        snakemake.output.per_anchor,
        item_ids=vectors.item_ids,
        extra={"model": model, "weighting": weighting, "settings": settings},
    )

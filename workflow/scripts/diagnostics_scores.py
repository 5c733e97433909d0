"""Rule diagnostics_scores: per-attribute CorrEmbed and retrieval metrics on the score's anchors."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.diagnostics.attributes import attribute_scores
from corrembed.diagnostics.inputs import load_model_inputs, score_anchors
from corrembed.diagnostics.retrieval import retrieval_scores
from corrembed.joblog import job_logging
from corrembed.storage import write_table

settings, scoring = snakemake.params.settings, snakemake.params.scoring
model, weighting = snakemake.wildcards.model, snakemake.wildcards.weighting
with job_logging(snakemake.log[0], f"diagnostics_scores[{model},{weighting}]") as log:
    inputs = load_model_inputs(snakemake.input.shard, snakemake.input.vectors, scoring["item_embedding"])
    tags = inputs.tags
    anchors = score_anchors(snakemake.input.per_anchor, inputs)
    attributes = attribute_scores(
        inputs.embeddings,
        tags.matrix,
        tags.slot_category,
        anchors=anchors,
        include_self=scoring["include_self"],
        memory_budget_mb=scoring["memory_budget_mb"],
    )
    log.info("%s / %s per attribute:\n%s", model, weighting, attributes)
    write_table(snakemake.output.attributes, attributes.with_columns(model=pl.lit(model), weighting=pl.lit(weighting)))
    k = min(settings["retrieval_k"], len(inputs.item_ids) - 1)
    retrieval = retrieval_scores(
        inputs.embeddings,
        tags.matrix,
        tags.slot_category,
        anchors,
        k=k,
        categories=settings["retrieval_categories"],
    ).summary(resamples=max(scoring["bootstrap"], 1), confidence=scoring["confidence"], seed=settings["seed"])
    log.info("%s / %s retrieval:\n%s", model, weighting, retrieval)
    write_table(snakemake.output.retrieval, retrieval.with_columns(model=pl.lit(model), weighting=pl.lit(weighting)))

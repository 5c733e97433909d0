"""Rule diagnostics_model_figures: models x categories heatmap; CorrEmbed vs nDCG@k across models."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.diagnostics.figures import attribute_heatmap, corrembed_vs_ndcg
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"diagnostics_model_figures[{snakemake.wildcards.weighting}]"):
    ranking = pl.read_csv(snakemake.input.ranking)
    order = ranking["model"].to_list()
    attributes = pl.concat([pl.read_csv(p) for p in snakemake.input.attributes])
    attributes = attributes.sort(pl.col("model").replace_strict(order, list(range(len(order)))))
    attribute_heatmap(
        snakemake.output.heatmap,
        attributes,
        title=f"What each model captures ({snakemake.wildcards.weighting} tag vectors)",
    )
    ndcg = pl.concat([pl.read_csv(p) for p in snakemake.input.retrieval]).filter(pl.col("metric") == "ndcg")
    k = int(ndcg["k"][0])
    table = ranking.join(
        ndcg.select("model", ndcg="mean", ndcg_low="ci_low", ndcg_high="ci_high"), on="model", how="inner"
    )
    corrembed_vs_ndcg(snakemake.output.scatter, table, k=k)

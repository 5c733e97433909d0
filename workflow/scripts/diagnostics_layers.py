"""Rule diagnostics_layers: a model's layer sweep (config ``layers:``), embedded in one pass per
batch and cached per layer, scored on the headline anchors; table and plot. Logic in the library."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

import polars as pl

from corrembed.diagnostics.figures import layer_sweep_plot
from corrembed.diagnostics.layers import layer_scores
from corrembed.embed import run_settings
from corrembed.embed.layer_sweep import embed_layer_sweep
from corrembed.joblog import job_logging
from corrembed.models import parse_model_spec
from corrembed.storage import write_table
from corrembed.tags import load_tag_vectors

model, params = snakemake.wildcards.model, snakemake.params
run = snakemake.config["embed"]
with job_logging(snakemake.log[0], f"diagnostics_layers[{model}]") as log:
    spec = parse_model_spec(params.spec, model_name=model)
    images = pl.read_parquet(snakemake.input.images)
    sweep = embed_layer_sweep(
        images.select([c for c in ("item_id", "image", "sha256") if c in images.columns]),
        spec,
        params.layers,
        torch_home=params.torch_home,
        hf_home=snakemake.config.get("hf_home"),
        cache_dir=run.get("cache", "results/cache/embeddings"),
        precision=params.precision,
        decoder=params.decoder,
        settings=run_settings(run, snakemake.threads),
        progress=log,
    )
    log.info("%s layer sweep embedding: %s", model, {k: v for k, v in sweep.meta.items() if k != "images_set_aside"})
    tags = {w: load_tag_vectors(path) for w, path in zip(params.weightings, snakemake.input.vectors)}
    anchors = {
        w: pl.read_parquet(path, columns=["item_id"])["item_id"].to_list()
        for w, path in zip(params.weightings, snakemake.input.per_anchor)
    }
    table = layer_scores(
        sweep.plan.layers,
        sweep.plan.entries,
        sweep.plan.depth,
        sweep.embeddings,
        tags,
        anchors,
        params.scoring,
        headline_layer=spec.layer,
    ).with_columns(model=pl.lit(model))
    log.info("%s layer sweep:\n%s", model, table)
    write_table(snakemake.output.table, table)
    layer_sweep_plot(snakemake.output.plot, table, model=model)

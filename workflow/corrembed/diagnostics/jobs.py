"""What the diagnostics rules run that is more than one library call: a rule script reads
``snakemake.*`` and calls one function here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from ..embed.layer_sweep import embed_layer_sweep
from ..embed.settings import run_settings
from ..models import parse_model_spec
from ..storage import write_table
from ..tags import load_tag_vectors
from .figures import layer_sweep_plot
from .layers import layer_scores


def layer_sweep_job(
    images_path: str | os.PathLike,
    *,
    model: str,
    params: Mapping[str, Any],
    vectors_paths: Sequence[str | os.PathLike],
    per_anchor_paths: Sequence[str | os.PathLike],
    table_out: str | os.PathLike,
    plot_out: str | os.PathLike,
    run: Mapping[str, Any],
    threads: int,
    log: logging.Logger,
    hf_home: str | os.PathLike | None = None,
) -> pl.DataFrame:
    """A model's layer sweep: embed every ``layers:`` entry in one pass (cached per layer), score
    each on the headline anchors (:func:`corrembed.diagnostics.layers.layer_scores`), write the
    table and its plot.

    ``params``: the rule's spec, layers, torch_home, precision, decoder, weightings (in the order
    of ``vectors_paths`` and ``per_anchor_paths``) and scoring; ``run``: config ``embed``.
    """
    spec = parse_model_spec(params["spec"], model_name=model)
    images = pl.read_parquet(images_path)
    sweep = embed_layer_sweep(
        images.select([c for c in ("item_id", "image", "sha256") if c in images.columns]),
        spec,
        params["layers"],
        torch_home=params["torch_home"],
        hf_home=hf_home,
        cache_dir=run.get("cache", "results/cache/embeddings"),
        precision=params["precision"],
        decoder=params["decoder"],
        settings=run_settings(run, threads),
        progress=log,
    )
    log.info("%s layer sweep embedding: %s", model, {k: v for k, v in sweep.meta.items() if k != "images_set_aside"})
    weightings = params["weightings"]
    tags = {w: load_tag_vectors(path) for w, path in zip(weightings, vectors_paths)}
    anchors = {
        w: pl.read_parquet(path, columns=["item_id"])["item_id"].to_list()
        for w, path in zip(weightings, per_anchor_paths)
    }
    table = layer_scores(
        sweep.plan.layers,
        sweep.plan.entries,
        sweep.plan.depth,
        sweep.embeddings,
        tags,
        anchors,
        params["scoring"],
        headline_layer=spec.layer,
    ).with_columns(model=pl.lit(model))
    log.info("%s layer sweep:\n%s", model, table)
    write_table(table_out, table)
    layer_sweep_plot(plot_out, table, model=model)
    return table

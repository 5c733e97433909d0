"""The workflow side of the tag audit and the model agreement: what their rules read and write.

- :func:`write_tag_audit`: the consensus models (the headline ranking's best model and those tied
  with it, at most ``max_models``), every item's neighbours in each, ``tag_audit.csv``, the
  confusion pairs and the sheet of the most suspect items;
- :func:`write_model_agreement`: CKA and mutual k-NN for every pair of models on the items all of
  them have, ``model_agreement.csv`` and its heatmap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import polars as pl

from ..storage import write_table
from ..summary.table import headline_weighting, weight_source
from .agreement import aligned_embeddings, model_agreement
from .audit import audit_neighbours, confusion_pairs, consensus_models, tag_audit
from .audit_figures import agreement_heatmap, suspect_sheet
from .inputs import item_images, load_model_inputs

log = logging.getLogger(__name__)


def headline_ranking(rankings: Mapping[str, str | os.PathLike], categories: Mapping[str, str | os.PathLike]):
    """The comparison's ranking table of the headline weighting (weighting -> ranking.csv / categories.csv)."""
    sources = {w: weight_source(pl.read_csv(p)) for w, p in categories.items()}
    return pl.read_csv(rankings[headline_weighting(sources)])


def write_tag_audit(
    *,
    shards: Mapping[str, str | os.PathLike],
    vectors: str | os.PathLike,
    images: str | os.PathLike,
    rankings: Mapping[str, str | os.PathLike],
    categories: Mapping[str, str | os.PathLike],
    settings: Mapping,
    item_embedding: str,
    table_path: str | os.PathLike,
    confusions_path: str | os.PathLike,
    sheet_path: str | os.PathLike,
) -> pl.DataFrame:
    """Audit the tags with the consensus models' neighbourhoods and write the three outputs.

    ``settings``: the ``diagnostics.audit`` config section (neighbours, max_models, categories,
    sheet_items, confusions). Items are those every consensus model has (as the score stage aligns them).
    """
    models = consensus_models(headline_ranking(rankings, categories), settings["max_models"])
    inputs = {m: load_model_inputs(shards[m], vectors, item_embedding) for m in models}
    ids, embeddings = aligned_embeddings(
        {m: i.embeddings for m, i in inputs.items()}, {m: i.item_ids for m, i in inputs.items()}
    )
    tags = inputs[models[0]].tags
    rows, _ = inputs[models[0]].index_of(ids)
    neighbours = {m: audit_neighbours(e, settings["neighbours"]) for m, e in embeddings.items()}
    log.info("tag audit: %d items, consensus %s, k = %d", len(ids), ", ".join(models), neighbours[models[0]].k)
    table = tag_audit(
        tags.matrix[rows], tags.slot_category, tags.slot_value, ids, neighbours, categories=settings["categories"]
    )
    write_table(table_path, table)
    write_table(confusions_path, confusion_pairs(table, settings["confusions"]))
    paths = dict(zip(ids.tolist(), item_images(images, ids).tolist()))
    suspect_sheet(sheet_path, table, paths, n_items=settings["sheet_items"])
    return table


def write_model_agreement(
    *,
    shards: Mapping[str, str | os.PathLike],
    vectors: str | os.PathLike,
    settings: Mapping,
    item_embedding: str,
    seed: int,
    table_path: str | os.PathLike,
    heatmap_path: str | os.PathLike,
) -> pl.DataFrame:
    """CKA and mutual k-NN of every pair of models (``settings``: ``diagnostics.agreement``)."""
    inputs = {m: load_model_inputs(p, vectors, item_embedding) for m, p in shards.items()}
    ids, embeddings = aligned_embeddings(
        {m: i.embeddings for m, i in inputs.items()}, {m: i.item_ids for m, i in inputs.items()}
    )
    log.info("model agreement: %d models on %d shared items", len(embeddings), len(ids))
    table = model_agreement(
        embeddings, k=settings["neighbours"], n_queries=settings["queries"], cka_items=settings["cka_items"], seed=seed
    )
    write_table(table_path, table)
    agreement_heatmap(heatmap_path, table)
    return table

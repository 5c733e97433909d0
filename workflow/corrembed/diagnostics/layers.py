"""Layer sweep scores: CorrEmbed at each layer of a model, on the headline score's anchors.

Each layer's embeddings go through what the score stage does to the headline layer's
(:func:`corrembed.score.aligned.aligned_items`, then :func:`corrembed.score.corrembed`
with the scoring options), on the anchors the headline score used (its ``per_anchor`` table, by
item id), with the bootstrap interval of the score stage (same resamples, confidence and seed).
The sweep entry of the headline layer therefore reproduces the headline CorrEmbed exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from ..embed.store import Embeddings
from ..score import ScoreOptions, bootstrap_interval, corrembed
from ..score.aligned import aligned_items
from ..tags import TagVectors

LAYER_COLUMNS = (
    "layer",
    "entry",
    "relative_depth",
    "dim",
    "weighting",
    "corrembed",
    "ci_low",
    "ci_high",
    "n_anchors",
    "n_items",
    "headline",
)


def layer_scores(
    layers: Sequence[str],
    entries: Sequence[str | int],
    depths: Sequence[float],
    embeddings_of: Callable[[str], Embeddings],
    tags: Mapping[str, TagVectors],
    anchor_ids: Mapping[str, Sequence[str]],
    scoring: Mapping,
    *,
    headline_layer: str,
) -> pl.DataFrame:
    """CorrEmbed of every layer under every weighting.

    Parameters
    ----------
    layers, entries, depths : sequences of equal length
        The sweep's layers (as ``layer:`` names them), their configured entries and relative depths.
    embeddings_of : callable
        ``embeddings_of(layer)`` -> that layer's per-image :class:`Embeddings` (read one at a time).
    tags : mapping
        Weighting -> its tag vectors (all catalogue items).
    anchor_ids : mapping
        Weighting -> the headline score's anchors (item ids, in its order).
    scoring : mapping
        The config's ``scoring`` section (item_embedding, include_self, bootstrap, ...).
    headline_layer : str
        The model's ``layer:``; its rows get ``headline = True``.

    Returns
    -------
    polars DataFrame
        :data:`LAYER_COLUMNS`, one row per (layer, weighting), layers in sweep order. ``n_anchors``
        counts the headline anchors with a usable embedding at that layer (an anchor whose
        embedding is zero there, e.g. a dead ReLU map, is left out) and a defined correlation.
    """
    options = ScoreOptions.from_config(dict(scoring))
    rows = []
    for layer, entry, depth in zip(layers, entries, depths):
        embeddings = embeddings_of(layer)
        for weighting, vectors in tags.items():
            items = aligned_items(embeddings, vectors, scoring["item_embedding"])
            position = {item: i for i, item in enumerate(np.asarray(items.item_ids, dtype=str).tolist())}
            anchors = np.array([position[a] for a in map(str, anchor_ids[weighting]) if a in position], np.int64)
            result = corrembed(items.embeddings, items.tags.matrix, options, anchors=anchors)
            low, high = bootstrap_interval(
                result.per_anchor, max(options.bootstrap, 1), options.confidence, options.seed
            )
            rows.append(
                (
                    layer,
                    str(entry),
                    float(depth),
                    int(embeddings.vectors.shape[1]),
                    weighting,
                    float(result.mean),
                    low,
                    high,
                    result.n_defined,
                    int(items.usable.keep.sum()),
                    layer == headline_layer,
                )
            )
        del embeddings
    return pl.DataFrame(rows, schema=list(LAYER_COLUMNS), orient="row")

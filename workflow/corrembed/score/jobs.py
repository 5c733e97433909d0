"""What the score rule runs: one model x weighting, from files to files."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from ..embed.checked_reads import checked_tag_vectors
from ..storage import write_table
from .aligned import aligned_items
from .files import write_score
from .options import ScoreOptions
from .report import score_report
from .results import ScoreReport


def score_job(
    shard_path: str | os.PathLike,
    vectors_path: str | os.PathLike,
    *,
    score_path: str | os.PathLike,
    per_anchor_path: str | os.PathLike,
    excluded_path: str | os.PathLike,
    model: str,
    weighting: str,
    settings: Mapping[str, Any],
    log: logging.Logger,
) -> ScoreReport:
    """Score one model's embeddings (``shard_path``) against one weighting's tag vectors.

    Items whose embedding cannot be compared (all zeros, NaN/inf) are excluded before scoring and
    listed, with their image, in ``excluded_path``; the score and its per-anchor table are written
    with :func:`corrembed.score.files.write_score`. ``settings`` is the config's ``scoring:``.
    """
    items = aligned_items(shard_path, checked_tag_vectors(vectors_path), settings["item_embedding"])
    usable = items.usable
    write_table(excluded_path, usable.excluded)
    if usable.excluded.height:
        log.warning(
            "%s: %d image embedding(s) unusable, %d item(s) excluded from scoring (see %s):\n%s",
            model,
            usable.n_excluded_images,
            usable.n_excluded_items,
            excluded_path,
            usable.excluded.head(10),
        )
    # The stage owns its embeddings array: normalize it in place (no second n x d copy).
    options = ScoreOptions.from_config(dict(settings)).with_overrides(normalize_in_place=True)
    report = score_report(items.embeddings, items.tags.matrix, options)
    log.info("%s / %s: CorrEmbed %.4f", model, weighting, report.corrembed)
    write_score(
        report,
        score_path,
        per_anchor_path,
        item_ids=items.item_ids,
        extra={
            "model": model,
            "weighting": weighting,
            "settings": settings,
            "n_excluded_embeddings": usable.n_excluded_images,
            "n_excluded_items": usable.n_excluded_items,
        },
    )
    return report

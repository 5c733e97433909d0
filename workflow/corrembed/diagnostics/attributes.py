"""Per-attribute CorrEmbed: what each tag category alone explains, and what leaving it out costs.

For each category c:

- ``alone``: CorrEmbed with tag vectors restricted to c's slots (its values only). Within one
  category every slot carries the same weight, so the cosine, and this score, is the same for the
  binary and the entropy weighting. Anchors lacking c have a zero tag vector there and are skipped
  (``n_defined`` says how many anchors count).
- ``without``: CorrEmbed with every category but c; ``drop = headline - without`` (positive: c
  carries agreement the other categories do not).

Every score uses the same anchor items as the headline (``resolve_anchors(anchors, n, seed)``) and
the same ``corrembed.score.corrembed`` options, so the columns are comparable with it.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from ..score import corrembed, resolve_anchors
from .categories import category_slots

ATTRIBUTE_COLUMNS = ("category", "n_values", "alone", "n_defined", "without", "drop", "headline")


def _score_or_nan(embeddings, tags: sp.csr_matrix, anchors: np.ndarray, options) -> tuple[float, int]:
    """(CorrEmbed, defined anchors); NaN and 0 when no anchor has a tag in these columns."""
    if not (np.diff(tags[anchors].indptr) > 0).any():
        return float("nan"), 0
    result = corrembed(embeddings, tags, anchors=anchors, **options)
    return result.mean, result.n_defined


def attribute_scores(
    embeddings,
    tag_vectors,
    slot_category,
    *,
    anchors=1000,
    seed: int = 42,
    include_self: bool = False,
    memory_budget_mb: float = 512,
    device: str | None = None,
) -> pl.DataFrame:
    """Per-category CorrEmbed alone and left out, as a table.

    Parameters
    ----------
    embeddings : (n, d) ndarray
        Item embeddings.
    tag_vectors : (n, t) ndarray or scipy sparse matrix
        Tag matrix.
    slot_category : (t,) str array
        Category of each tag column.
    anchors, seed, include_self, memory_budget_mb, device
        As for :func:`corrembed.score.corrembed`.

    Returns
    -------
    polars DataFrame
        :data:`ATTRIBUTE_COLUMNS`, one row per category (sorted): n_values (slots), alone,
        n_defined (anchors with a defined r_a for ``alone``), without, drop, headline.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> colour, size = np.eye(3)[rng.integers(0, 3, 60)], np.eye(2)[rng.integers(0, 2, 60)]
    >>> x = colour + 0.1 * rng.standard_normal((60, 3))  # the embedding sees colour only
    >>> table = attribute_scores(x, np.hstack([colour, size]), np.array(["colour"] * 3 + ["size"] * 2),
    ...                          anchors="all")
    >>> table["category"].to_list(), bool(table["alone"][0] > 0.8 > abs(table["alone"][1]))
    (['colour', 'size'], True)
    """
    tags = sp.csr_matrix(tag_vectors)
    n = tags.shape[0]
    fixed = resolve_anchors(anchors, n, seed)
    options = {"include_self": include_self, "memory_budget_mb": memory_budget_mb, "device": device}
    headline = corrembed(embeddings, tags, anchors=fixed, **options).mean
    rows = []
    slots = category_slots(slot_category)
    all_slots = np.arange(tags.shape[1])
    for category, own in slots.items():
        alone, n_defined = _score_or_nan(embeddings, tags[:, own], fixed, options)
        rest = np.setdiff1d(all_slots, own)
        without, _ = _score_or_nan(embeddings, tags[:, rest], fixed, options)
        rows.append((category, int(own.size), alone, n_defined, without, headline - without, headline))
    return pl.DataFrame(rows, schema=list(ATTRIBUTE_COLUMNS), orient="row")

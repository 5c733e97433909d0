"""From per-image embeddings to one embedding per item.

An item may have several images. The item-level comparison uses one representative image per
item by default (``first``: the item's first image in manifest order, a deterministic choice, as
the paper compared one image per outfit) or the mean of the item's image embeddings (``mean``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .embedding_store import Embeddings
from .errors import ScoringError

ITEM_EMBEDDING_MODES = ("first", "mean")


def item_embeddings(embeddings: Embeddings, item_ids, mode: str = "first") -> np.ndarray:
    """One row per item, in the order of ``item_ids``.

    embeddings: per-image rows (their order within an item is the image order);
    item_ids: (n_items,) ids to gather; mode: ``first`` or ``mean``.
    Returns (n_items, d) float32 (means accumulated in float64).
    Raises ScoringError naming the items that have no embedding (stale embeddings).
    """
    if mode not in ITEM_EMBEDDING_MODES:
        raise ValueError(f"item_embedding must be one of {ITEM_EMBEDDING_MODES}, got {mode!r}")
    wanted = np.asarray(item_ids, dtype=str)
    image_items = np.asarray(embeddings.item_ids, dtype=str)
    unique, first_index, inverse = np.unique(image_items, return_index=True, return_inverse=True)
    position = np.searchsorted(unique, wanted)
    position = np.minimum(position, len(unique) - 1) if len(unique) else position
    missing = (len(unique) == 0) | (unique[position] != wanted) if len(wanted) else []
    if np.any(missing):
        names = ", ".join(map(repr, wanted[missing][:5]))
        raise ScoringError(
            f"{int(np.sum(missing))} catalogue item(s) have no embedding (e.g. {names}); the "
            "embeddings are older than the catalogue: rerun the embed stage."
        )
    if mode == "first":
        return np.asarray(embeddings.vectors[first_index[position]], dtype=np.float32)
    n_images = len(image_items)
    counts = np.bincount(inverse, minlength=len(unique)).astype(np.float64)
    # (n_unique, n_images) averaging operator: one sparse product, float64 accumulation.
    averaging = sp.csr_matrix(
        (1.0 / counts[inverse], (inverse, np.arange(n_images))), shape=(len(unique), n_images)
    )
    means = averaging @ np.asarray(embeddings.vectors, dtype=np.float64)
    return means[position].astype(np.float32)

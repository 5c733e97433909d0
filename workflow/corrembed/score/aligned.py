"""Embeddings aligned with tag rows: the items a score (and every diagnostic of it) compares.

:func:`aligned_items` is the one place that turns a model's per-image embeddings and a
weighting's tag vectors into row-aligned item arrays (the score stage, the diagnostics' inputs
and the layer sweep scores all call it), so every number describes the same items.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow

from ..embed.checked_reads import checked_embeddings
from ..embed.items import UsableItemEmbeddings, usable_item_embeddings
from ..embed.store import Embeddings
from ..tags import TagVectors


@dataclass(frozen=True)
class AlignedItems:
    """Item embeddings and tag vectors, rows aligned (row i of both describe item ``item_ids[i]``).

    Attributes
    ----------
    embeddings : (n, d) float32 ndarray
        One row per usable item (:func:`corrembed.embed.items.usable_item_embeddings`).
    tags : TagVectors
        The tag vectors of the same items, in the same order (items without a usable embedding dropped).
    usable : UsableItemEmbeddings
        What was set aside and why (``excluded``, counts, the ``keep`` mask over all tagged items).
    """

    embeddings: np.ndarray
    tags: TagVectors
    usable: UsableItemEmbeddings

    @property
    def item_ids(self) -> np.ndarray:
        """(n,) str item ids of the rows."""
        return self.tags.item_ids


def aligned_items(
    embeddings: Embeddings | str | os.PathLike, vectors: TagVectors, item_embedding: str = "first"
) -> AlignedItems:
    """The usable items of ``embeddings`` with their rows of ``vectors``.

    Parameters
    ----------
    embeddings : Embeddings or path
        Per-image embeddings, or an embeddings Parquet file (read here, then dropped: only the
        item embeddings, one copy, are kept).
    vectors : TagVectors
        A weighting's tag vectors over all catalogue items.
    item_embedding : {"first", "mean"}
        How an item's image embeddings become one (config ``scoring.item_embedding``).

    Returns
    -------
    AlignedItems

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> ids = np.array(["a", "b", "c", "d"])
    >>> images = Embeddings(item_ids=ids.astype(object), images=ids.astype(object),
    ...                     vectors=np.array([[1, 0], [0, 0], [0, 1], [1, 1]], dtype=np.float32))
    >>> tags = TagVectors(sp.csr_matrix(np.eye(4)), ids, np.array(["c"] * 4), ids)
    >>> items = aligned_items(images, tags)
    >>> items.item_ids.tolist(), items.embeddings.shape, items.usable.n_excluded_items
    (['a', 'c', 'd'], (3, 2), 1)
    """
    if not isinstance(embeddings, Embeddings):
        images = checked_embeddings(embeddings)  # rows and dims against meta.json; damage named
        usable = usable_item_embeddings(images, vectors.item_ids, item_embedding)
        del images  # the memory-mapped file: only the item embeddings (one copy) are kept
        pyarrow.default_memory_pool().release_unused()  # give the decoded pages back now
    else:
        usable = usable_item_embeddings(embeddings, vectors.item_ids, item_embedding)
    keep = usable.keep
    tags = TagVectors(
        matrix=vectors.matrix[keep],
        item_ids=vectors.item_ids[keep],
        slot_category=vectors.slot_category,
        slot_value=vectors.slot_value,
    )
    return AlignedItems(embeddings=usable.vectors, tags=tags, usable=usable)

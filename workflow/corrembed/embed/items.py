"""From per-image embeddings to one embedding per item.

An item may have several images. The item-level comparison uses one representative image per
item by default (``first``: the item's first image in manifest order, a deterministic choice, as
the paper compared one image per outfit) or the mean of the item's image embeddings (``mean``).

:func:`usable_item_embeddings` first sets aside image embeddings that cannot be compared (all
zeros: cosine similarity undefined; NaN or infinite values) and reports them with their image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from ..errors import ScoringError
from .store import Embeddings

ITEM_EMBEDDING_MODES = ("first", "mean")


def item_embeddings(embeddings: Embeddings, item_ids, mode: str = "first") -> np.ndarray:
    """One row per item, in the order of ``item_ids``.

    Parameters
    ----------
    embeddings : Embeddings
        Per-image rows (their order within an item is the image order).
    item_ids : (n_items,) sequence of str
        The items to gather.
    mode : {"first", "mean"}
        The item's first image, or the mean of its images (accumulated in float64).

    Returns
    -------
    (n_items, d) float32 ndarray
        With one image per item in item order (``first``), ``embeddings.vectors`` itself, not a copy.

    Raises
    ------
    ScoringError
        Naming the items that have no embedding (stale embeddings).

    Examples
    --------
    >>> images = Embeddings(item_ids=np.array(["a", "a", "b"], dtype=object),
    ...                     images=np.array(["a1.jpg", "a2.jpg", "b.jpg"], dtype=object),
    ...                     vectors=np.array([[1, 0], [0, 1], [2, 2]], dtype=np.float32))
    >>> item_embeddings(images, ["b", "a"], "first")
    array([[2., 2.],
           [1., 0.]], dtype=float32)
    >>> item_embeddings(images, ["a"], "mean")
    array([[0.5, 0.5]], dtype=float32)
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
        rows = first_index[position]
        if rows.size == len(image_items) and np.array_equal(rows, np.arange(rows.size)):
            # One image per item, already in item order (the usual case): no gathered copy.
            return np.asarray(embeddings.vectors, dtype=np.float32)
        return np.asarray(embeddings.vectors[rows], dtype=np.float32)
    n_images = len(image_items)
    counts = np.bincount(inverse, minlength=len(unique)).astype(np.float64)
    # (n_unique, n_images) averaging operator: one sparse product, float64 accumulation.
    averaging = sp.csr_matrix((1.0 / counts[inverse], (inverse, np.arange(n_images))), shape=(len(unique), n_images))
    means = averaging @ np.asarray(embeddings.vectors, dtype=np.float64)
    return means[position].astype(np.float32)


#: Fewer usable items than this cannot be scored (r_a needs at least 2 compared items).
MIN_USABLE_ITEMS = 3
EXCLUDED_COLUMNS = ("item_id", "image", "reason")


@dataclass(frozen=True)
class UsableItemEmbeddings:
    """Item embeddings with unusable rows set aside.

    vectors: (n_usable, d) float32, rows aligned with ``item_ids[keep]``;
    keep: (n_items,) bool mask over the requested ``item_ids``;
    excluded: polars DataFrame (item_id, image, reason): one row per image whose embedding is
        all zeros or has non-finite values, and one row (image = the item's representative or
        "") per item left without a usable embedding.
    n_excluded_images, n_excluded_items: counts of those rows.
    """

    vectors: np.ndarray
    keep: np.ndarray
    excluded: pl.DataFrame
    n_excluded_images: int
    n_excluded_items: int


def _row_problems(vectors: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """(n,) array of reasons ("" for a usable row): non-finite values, or all zeros.

    Checked ``chunk`` rows at a time: no (n, d) boolean temporaries (0.75 GB each at n = 10^6).
    """
    n = vectors.shape[0]
    finite = np.empty(n, dtype=bool)
    zero = np.empty(n, dtype=bool)
    for start in range(0, n, chunk):
        part = vectors[start : start + chunk]
        finite[start : start + chunk] = np.isfinite(part).all(axis=1)
        zero[start : start + chunk] = ~np.any(part != 0, axis=1)
    reasons = np.full(vectors.shape[0], "", dtype=object)
    reasons[zero] = "embedding is all zeros (cosine similarity undefined)"
    reasons[~finite] = "embedding has non-finite values (NaN or infinity)"
    return reasons


def usable_item_embeddings(
    embeddings: Embeddings, item_ids, mode: str = "first", *, min_items: int = MIN_USABLE_ITEMS
) -> UsableItemEmbeddings:
    """:func:`item_embeddings` after setting aside image embeddings that cannot be compared.

    An image whose embedding is all zeros or not finite is excluded (reported with its image);
    ``first`` then uses the item's first usable image, ``mean`` the mean of its usable images.
    Items left without one (or whose mean is zero) are excluded from scoring.
    Raises ScoringError when fewer than ``min_items`` items remain, or when an item has no
    embedding at all (stale embeddings).
    """
    wanted = np.asarray(item_ids, dtype=str)
    vectors = np.asarray(embeddings.vectors)
    problems = _row_problems(vectors)
    bad = problems != ""
    rows: dict[str, list] = {k: [] for k in EXCLUDED_COLUMNS}
    wanted_set = set(wanted.tolist())
    for index in np.flatnonzero(bad):
        if str(embeddings.item_ids[index]) in wanted_set:
            rows["item_id"].append(str(embeddings.item_ids[index]))
            rows["image"].append(str(embeddings.images[index]))
            rows["reason"].append(problems[index])
    n_bad_images = len(rows["item_id"])
    # Items whose every image is bad disappear from the filtered set: find them first.
    image_items = np.asarray(embeddings.item_ids, dtype=str)
    has_any = np.isin(wanted, image_items)
    if not np.all(has_any):
        item_embeddings(embeddings, wanted, mode)  # raises the stale-embeddings ScoringError
    has_good = np.isin(wanted, image_items[~bad])
    # Without bad images (the usual case) no filtered copy of the embeddings is made.
    good = (
        embeddings
        if not bad.any()
        else Embeddings(item_ids=embeddings.item_ids[~bad], images=embeddings.images[~bad], vectors=vectors[~bad])
    )
    keep = has_good.copy()
    if keep.all():
        result = item_embeddings(good, wanted, mode)  # the one (n, d) copy, no zero-filled one
    else:
        result = np.zeros((len(wanted), vectors.shape[1]), dtype=np.float32)
        if keep.any():
            result[keep] = item_embeddings(good, wanted[keep], mode)
    # A mean of usable images can still cancel out to zero.
    item_problems = np.full(len(wanted), "", dtype=object)
    item_problems[~has_good] = "item excluded from scoring: no image with a usable embedding"
    cancelled = keep & (_row_problems(result) != "")
    item_problems[cancelled] = "item excluded from scoring: the mean of its image embeddings is zero"
    keep &= ~cancelled
    for index in np.flatnonzero(item_problems != ""):
        rows["item_id"].append(str(wanted[index]))
        rows["image"].append("")
        rows["reason"].append(item_problems[index])
    excluded = pl.DataFrame(rows, schema={c: pl.String for c in EXCLUDED_COLUMNS})
    n_usable = int(keep.sum())
    if n_usable < min_items:
        examples = "; ".join(
            f"{r['item_id']} {r['image']}: {r['reason']}" for r in excluded.head(5).iter_rows(named=True)
        )
        raise ScoringError(
            f"only {n_usable} of {len(wanted)} items have a usable embedding; CorrEmbed needs at "
            f"least {min_items}. Excluded: {examples or 'none'}. Check the model's layer and "
            "weights (an all-zero or NaN embedding usually means a broken checkpoint or a layer "
            "after a ReLU that is dead for these images)."
        )
    return UsableItemEmbeddings(
        vectors=result if keep.all() else result[keep],
        keep=keep,
        excluded=excluded,
        n_excluded_images=n_bad_images,
        n_excluded_items=int((~keep).sum()),
    )

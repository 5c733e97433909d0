"""What the diagnostics rules read: one model's item embeddings aligned with the tag vectors, the
scoring anchors, each item's thumbnail image, and the tables the rules hand each other.

Items are exactly those the score stage compared (the same
:func:`~corrembed.score.aligned.aligned_items` call), so every diagnostic describes the same items
and anchors as the headline score.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..embed.checked_reads import checked_tag_vectors
from ..errors import ConfigError, ScoringError
from ..score.aligned import aligned_items
from ..tags import TagVectors
from .neighbours import Neighbours

NEIGHBOUR_COLUMNS = ("query", "rank", "neighbour", "similarity")


@dataclass(frozen=True)
class ModelInputs:
    """One model's comparable items.

    Attributes:
        embeddings: (n, d) item embeddings (float32).
        tags: tag vectors with rows aligned to ``embeddings`` (items without a usable embedding dropped).
    """

    embeddings: np.ndarray
    tags: TagVectors

    @property
    def item_ids(self) -> np.ndarray:
        return self.tags.item_ids

    def index_of(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the ``ids`` found, mask over ``ids`` of those found)."""
        lookup = {str(item): i for i, item in enumerate(self.item_ids.tolist())}
        found = np.array([str(i) in lookup for i in ids], dtype=bool)
        return np.array([lookup[str(i)] for i in ids if str(i) in lookup], dtype=np.int64), found


def load_tags(vectors_path: str | os.PathLike) -> TagVectors:
    """The tag vectors written by the tags stage."""
    return checked_tag_vectors(vectors_path)


def load_model_inputs(shard: str | os.PathLike, vectors_path: str | os.PathLike, item_embedding: str) -> ModelInputs:
    """Item embeddings of one model and the tag vectors of the same items, as the score stage aligns them."""
    items = aligned_items(shard, checked_tag_vectors(vectors_path), item_embedding)
    return ModelInputs(embeddings=items.embeddings, tags=items.tags)


def score_anchors(per_anchor_path: str | os.PathLike, inputs: ModelInputs) -> np.ndarray:
    """(k,) item positions of the score stage's anchors (its ``.per_anchor.parquet``), in its order."""
    ids = pl.read_parquet(per_anchor_path)["item_id"].to_list()
    positions, found = inputs.index_of(ids)
    if not found.all():
        raise ScoringError(
            f"{per_anchor_path}: {int((~found).sum())} anchor(s) are not among the model's items; "
            "the score is older than the embeddings: rerun the score stage"
        )
    return positions


def item_images(images_path: str | os.PathLike, item_ids) -> np.ndarray:
    """(n,) path of each item's first image (lowest ``image_rank``) from ``images.parquet``."""
    table = pl.read_parquet(images_path, columns=["item_id", "image", "image_rank"])
    first = table.sort("item_id", "image_rank").unique("item_id", keep="first")
    lookup = dict(zip(first["item_id"].to_list(), first["image"].to_list()))
    return np.array([lookup.get(str(i), "") for i in item_ids], dtype=object)


def choose_category(setting: str | None, tags: TagVectors, max_values: int = 12) -> str:
    """The category to stratify queries and colour maps by.

    ``setting`` names it; ``"auto"`` (or None) picks the category with the most distinct values
    among those with at most ``max_values`` (a readable legend), ties by name; when every category
    has more, the one with the fewest.
    """
    cats, counts = np.unique(np.asarray(tags.slot_category, dtype=str), return_counts=True)
    if cats.size == 0:
        raise ConfigError("diagnostics: the tag vectors have no categories")
    if setting not in (None, "auto"):
        if setting not in cats:
            raise ConfigError(f"diagnostics.category: {setting!r} is not a tag category; known: {', '.join(cats)}")
        return str(setting)
    readable = [(int(n), str(c)) for c, n in zip(cats, counts) if n <= max_values]
    if readable:
        return sorted(readable, key=lambda nc: (-nc[0], nc[1]))[0][1]
    return str(cats[int(np.argmin(counts))])


def neighbour_table(neighbours: Neighbours, item_ids) -> pl.DataFrame:
    """Long table query, rank (1 = nearest), neighbour (item ids), similarity."""
    ids = np.asarray(item_ids, dtype=str)
    q, k = neighbours.indices.shape
    return pl.DataFrame(
        {
            "query": np.repeat(ids[neighbours.queries], k),
            "rank": np.tile(np.arange(1, k + 1), q),
            "neighbour": ids[neighbours.indices.ravel()],
            "similarity": neighbours.similarities.ravel(),
        }
    )


def read_neighbour_table(table: pl.DataFrame, item_ids) -> Neighbours:
    """:func:`neighbour_table` back to positions in ``item_ids`` (rows query-major, ranks ascending)."""
    lookup = {str(item): i for i, item in enumerate(np.asarray(item_ids, dtype=str).tolist())}
    queries = list(dict.fromkeys(table["query"].to_list()))
    k = int(table["rank"].max())
    indices = np.array([lookup[n] for n in table["neighbour"].to_list()], dtype=np.int64).reshape(-1, k)
    sims = table["similarity"].to_numpy().reshape(-1, k)
    return Neighbours(np.array([lookup[q] for q in queries], dtype=np.int64), indices, sims)

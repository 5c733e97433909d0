"""Tag vectors and entropy weights (the "tags" stage).

A tag vector is weighted multi-hot: one slot per (category, value) pair seen in the catalogue;
every value an item has in category ``c`` gets the category's weight ``w_c`` (binary variant: 1).

Entropy weights follow the paper: ``w_c = 1 - H_c / ln(n_c + 1)`` with ``H_c = -sum p ln p`` over the
value distribution of ``c`` plus a "None" state for items lacking ``c``, and ``n_c`` the number of
distinct values of ``c`` in the catalogue. Two sources:

- ``interactions``: per user with more than ``min_user_interactions`` interactions, the
  distribution over the items that user interacted with (each interaction counts, repeats too);
  normalized entropies are averaged over those users (the paper's method).
- ``catalogue``: the distribution over the catalogue's items. It measures how skewed the
  catalogue is, not how consistent users are (see SPEC.md), so it is reported but not the headline.

Multi-valued categories: each (item, value) occurrence counts once and ``p`` is normalized by the
number of occurrences (plus "None"s), so it is a proper distribution; for single-valued categories
this is exactly count / number of items (or of the user's interactions).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from .errors import ConfigError
from .storage import atomic_path

log = logging.getLogger(__name__)

WEIGHTINGS = ("binary", "entropy")
CATEGORY_TABLE_COLUMNS = (
    "category",
    "n_values",
    "entropy",
    "normalized_entropy",
    "weight",
    "source",
    "n_users",
)


def _entropy_table(counts: pl.DataFrame, group: list[str]) -> pl.DataFrame:
    """Natural-log entropy of ``count`` within each ``group`` (counts include the None state)."""
    # Sorted first: a hash group_by hands rows over in an arbitrary order, and a float sum in
    # another order can differ in the last bit, so the same catalogue gave weights differing
    # by one ulp from run to run.
    return (
        counts.filter(pl.col("count") > 0)
        .sort([*group, "value"], nulls_last=True)
        .with_columns(p=pl.col("count") / pl.col("count").sum().over(group))
        .group_by(group, maintain_order=True)
        .agg(entropy=-(pl.col("p") * pl.col("p").log()).sum())
    )


def _n_values(tags: pl.DataFrame) -> pl.DataFrame:
    return tags.group_by("category").agg(n_values=pl.col("value").n_unique())


def catalogue_weights(tags: pl.DataFrame, item_ids) -> pl.DataFrame:
    """Entropy weights from the catalogue's own value distribution.

    tags: long table (item_id, category, value); item_ids: every catalogue item (items without
    a category count in its None state). Returns the category table (CATEGORY_TABLE_COLUMNS).
    """
    n_items = len(item_ids)
    value_counts = tags.group_by("category", "value").agg(count=pl.len().cast(pl.Int64))
    none_counts = (
        tags.group_by("category")
        .agg(count=n_items - pl.col("item_id").n_unique().cast(pl.Int64))
        .with_columns(value=pl.lit(None, pl.String))
    )
    counts = pl.concat([value_counts, none_counts.select(value_counts.columns)])
    entropy = _entropy_table(counts, ["category"])
    return _finish(entropy.join(_n_values(tags), on="category"), source="catalogue", n_users=None)


def interaction_weights(
    tags: pl.DataFrame, interactions: pl.DataFrame, *, min_user_interactions: int = 10
) -> pl.DataFrame | None:
    """Entropy weights from users' interactions (the paper's per-user method).

    interactions: (user_id, item_id), one row per interaction, item ids known to the catalogue.
    Users with more than ``min_user_interactions`` interactions count; each user's normalized
    entropy per category is averaged over those users. Returns the category table, or None when
    no user qualifies (the caller falls back to catalogue weights and says so).
    """
    per_user = interactions.group_by("user_id").agg(n=pl.len())
    users = per_user.filter(pl.col("n") > min_user_interactions)
    if users.height == 0:
        return None
    events = interactions.join(users.select("user_id", "n"), on="user_id")
    value_counts = (
        events.join(tags, on="item_id").group_by("user_id", "category", "value").agg(count=pl.len().cast(pl.Int64))
    )
    categories = tags.select("category").unique()
    # Interactions with items lacking the category: the user's total minus those having it.
    having = (
        events.join(tags.select("item_id", "category").unique(), on="item_id")
        .group_by("user_id", "category")
        .agg(having=pl.len())
    )
    none_counts = (
        users.join(categories, how="cross")
        .join(having, on=["user_id", "category"], how="left")
        .with_columns(count=(pl.col("n") - pl.col("having").fill_null(0)).cast(pl.Int64))
        .with_columns(value=pl.lit(None, pl.String))
        .select(value_counts.columns)
    )
    counts = pl.concat([value_counts, none_counts])
    # Every (user, category) pair has at least one state, so each gets an entropy (0 when the
    # user's interactions all share one value, or all lack the category).
    per_user_entropy = (
        _entropy_table(counts, ["user_id", "category"])
        .join(_n_values(tags), on="category")
        .with_columns(normalized_entropy=pl.col("entropy") / (pl.col("n_values") + 1).log())
    )
    mean = (
        per_user_entropy.sort("category", "user_id")
        .group_by("category", maintain_order=True)
        .agg(pl.col("entropy").mean(), pl.col("normalized_entropy").mean(), pl.col("n_values").first())
    )
    return _finish(mean, source="interactions", n_users=users.height)


def user_counts(interactions: pl.DataFrame, min_user_interactions: int) -> dict[str, int]:
    """How many users an interactions log has, how many qualify (more than
    ``min_user_interactions`` interactions), how many fall below, and the largest count."""
    per_user = interactions.group_by("user_id").agg(n=pl.len())
    qualifying = int((per_user["n"] > min_user_interactions).sum()) if per_user.height else 0
    return {
        "n_users": per_user.height,
        "n_qualifying": qualifying,
        "n_below_threshold": per_user.height - qualifying,
        "max_interactions": int(per_user["n"].max()) if per_user.height else 0,
    }


def _finish(table: pl.DataFrame, *, source: str, n_users: int | None) -> pl.DataFrame:
    if "normalized_entropy" not in table.columns:
        table = table.with_columns(normalized_entropy=pl.col("entropy") / (pl.col("n_values") + 1).log())
    return (
        table.with_columns(
            weight=1.0 - pl.col("normalized_entropy"),
            source=pl.lit(source),
            n_users=pl.lit(n_users, pl.Int64),
            n_values=pl.col("n_values").cast(pl.Int64),
        )
        .select(CATEGORY_TABLE_COLUMNS)
        .sort("category")
    )


def category_table(
    tags: pl.DataFrame,
    item_ids,
    weighting: str,
    *,
    interactions: pl.DataFrame | None = None,
    min_user_interactions: int = 10,
) -> pl.DataFrame:
    """The category table for one weighting scheme.

    Parameters
    ----------
    tags : polars DataFrame
        Long table ``item_id``, ``category``, ``value`` (str).
    item_ids : sequence of str
        The catalogue's items (those lacking a category count as its "None" state).
    weighting : {"binary", "entropy"}
        ``binary``: entropies from the best available source for reference, weight 1.
        ``entropy``: from interactions when given and some user qualifies, else from the
        catalogue (logged as a warning: it is not what the paper measured).
    interactions : polars DataFrame, optional
        ``user_id``, ``item_id`` rows (each interaction counts).
    min_user_interactions : int
        Users with at most this many interactions do not count (the paper: 10).

    Returns
    -------
    polars DataFrame
        One row per category: :data:`CATEGORY_TABLE_COLUMNS` (``n_values``, entropy ``H``,
        normalized entropy, ``weight`` float64, ``source``, ...).

    Examples
    --------
    >>> tags = pl.DataFrame({"item_id": ["a", "b", "c", "a"], "category": ["colour"] * 3 + ["fit"],
    ...                      "value": ["red", "red", "blue", "slim"]})
    >>> table = category_table(tags, ["a", "b", "c"], "entropy")
    >>> table.select("category", "n_values", "source").rows()
    [('colour', 2, 'catalogue'), ('fit', 1, 'catalogue')]
    >>> category_table(tags, ["a", "b", "c"], "binary")["weight"].to_list()
    [1.0, 1.0]
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {weighting!r}; use one of {', '.join(WEIGHTINGS)}")
    table = None
    if interactions is not None:
        table = interaction_weights(tags, interactions, min_user_interactions=min_user_interactions)
        if table is None:
            counts = user_counts(interactions, min_user_interactions)
            why = (
                "the interactions log has no rows for catalogue items"
                if counts["n_users"] == 0
                else f"none of its {counts['n_users']} users has more than "
                f"{min_user_interactions} interactions (most: {counts['max_interactions']})"
            )
            log.warning(
                "%s: entropy weights FALL BACK to the catalogue's value distribution, which "
                "measures catalogue skew, not user consistency (weight source 'catalogue'; the "
                "headline score is then the binary one). Lower tags.min_user_interactions or "
                "give a longer log to use users' choices.",
                why,
            )
    if table is None:
        table = catalogue_weights(tags, item_ids)
    if weighting == "binary":
        table = table.with_columns(weight=pl.lit(1.0), source=pl.lit("binary"))
    return table


@dataclass(frozen=True)
class TagVectors:
    """Tag vectors of a catalogue, rows aligned with ``item_ids``.

    Attributes
    ----------
    matrix : (n_items, n_slots) scipy CSR matrix, float64
        Row i is item ``item_ids[i]``'s weighted multi-hot vector.
    item_ids : (n_items,) str ndarray
    slot_category, slot_value : (n_slots,) str ndarray
        The (category, value) pair of each column.

    Examples
    --------
    >>> vectors = TagVectors(sp.csr_matrix(np.eye(2)), np.array(["a", "b"]),
    ...                      np.array(["colour", "colour"]), np.array(["blue", "red"]))
    >>> vectors.matrix.shape, vectors.slot_value.tolist()
    ((2, 2), ['blue', 'red'])
    """

    matrix: sp.csr_matrix
    item_ids: np.ndarray
    slot_category: np.ndarray
    slot_value: np.ndarray


def tag_vectors(tags: pl.DataFrame, item_ids, weights: dict[str, float]) -> TagVectors:
    """Weighted multi-hot tag vectors.

    Parameters
    ----------
    tags : polars DataFrame
        Long table ``item_id``, ``category``, ``value`` (str).
    item_ids : (n,) sequence of str
        The row order of the result; items without any tag get an all-zero row.
    weights : dict of str to float
        Category -> weight; categories absent from it are excluded.

    Returns
    -------
    TagVectors
        ``matrix`` (n, n_slots) CSR float64; slots sorted by (category, value).

    Examples
    --------
    >>> tags = pl.DataFrame({"item_id": ["a", "a", "b"], "category": ["colour", "style", "colour"],
    ...                      "value": ["red", "boho", "blue"]})
    >>> vectors = tag_vectors(tags, ["a", "b", "c"], {"colour": 0.5, "style": 1.0})
    >>> vectors.matrix.toarray()
    array([[0. , 0.5, 1. ],
           [0.5, 0. , 0. ],
           [0. , 0. , 0. ]])
    >>> list(zip(vectors.slot_category, vectors.slot_value))[0]
    (np.str_('colour'), np.str_('blue'))
    """
    item_ids = np.asarray(item_ids, dtype=str)
    kept = tags.filter(pl.col("category").is_in(list(weights)))
    slots = kept.select("category", "value").unique().sort("category", "value")
    slot_index = slots.with_row_index("slot")
    rows = pl.DataFrame({"item_id": item_ids}).with_row_index("row")
    entries = kept.join(rows, on="item_id").join(slot_index, on=["category", "value"])
    weight_of = pl.DataFrame({"category": list(weights), "weight": [float(w) for w in weights.values()]})
    entries = entries.join(weight_of, on="category")
    matrix = sp.csr_matrix(
        (
            entries["weight"].to_numpy().astype(np.float64),
            (entries["row"].to_numpy(), entries["slot"].to_numpy()),
        ),
        shape=(len(item_ids), slots.height),
    )
    matrix.sum_duplicates()
    matrix.eliminate_zeros()  # a zero-weight category contributes nothing
    return TagVectors(
        matrix=matrix,
        item_ids=item_ids,
        slot_category=slots["category"].to_numpy().astype(str),
        slot_value=slots["value"].to_numpy().astype(str),
    )


def save_tag_vectors(path: str | os.PathLike, vectors: TagVectors) -> None:
    """Write tag vectors to an ``.npz`` file atomically (no pickled objects)."""
    m = vectors.matrix
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            data=m.data,
            indices=m.indices,
            indptr=m.indptr,
            shape=np.asarray(m.shape, dtype=np.int64),
            item_ids=vectors.item_ids.astype(str),
            slot_category=vectors.slot_category.astype(str),
            slot_value=vectors.slot_value.astype(str),
        )


def load_tag_vectors(path: str | os.PathLike) -> TagVectors:
    """Read tag vectors written by :func:`save_tag_vectors` (the tags stage's ``vectors.npz``).

    Parameters
    ----------
    path : path
        The ``.npz`` file.

    Returns
    -------
    TagVectors
        Equal, array for array, to the vectors that were saved.

    Examples
    --------
    >>> import tempfile
    >>> vectors = TagVectors(sp.csr_matrix(np.eye(2)), np.array(["a", "b"]),
    ...                      np.array(["colour", "colour"]), np.array(["blue", "red"]))
    >>> path = Path(tempfile.mkdtemp()) / "vectors.npz"
    >>> save_tag_vectors(path, vectors)
    >>> (load_tag_vectors(path).matrix != vectors.matrix).nnz, load_tag_vectors(path).item_ids.tolist()
    (0, ['a', 'b'])
    """
    with np.load(Path(path), allow_pickle=False) as z:
        matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        return TagVectors(
            matrix=matrix,
            item_ids=z["item_ids"],
            slot_category=z["slot_category"],
            slot_value=z["slot_value"],
        )


def tags_job(
    images_path: str | os.PathLike,
    tags_path: str | os.PathLike,
    *,
    vectors_out: str | os.PathLike,
    categories_out: str | os.PathLike,
    weighting: str,
    settings: dict,
    interactions_path: str | os.PathLike | None,
    log: logging.Logger,
) -> TagVectors:
    """What the tags rule runs: one weighting's category table and tag vectors, from the catalogue.

    ``settings`` is the config's ``tags:`` (exclude_categories, min_user_interactions);
    ``interactions_path`` the interactions log, or None (weights from the catalogue).
    Writes ``vectors_out`` (:func:`save_tag_vectors`) and ``categories_out`` (the category table).
    """
    from .ingest.catalogue import read_catalogue, read_interactions  # the ingest stage's reader
    from .storage import write_table

    images, tags = read_catalogue(images_path, tags_path)
    tags = tags.filter(~pl.col("category").is_in(list(set(settings["exclude_categories"]))))
    item_ids = images["item_id"].unique(maintain_order=True).to_list()
    interactions = None
    if interactions_path is not None:
        interactions, n_unknown, unknown_examples, n_rows = read_interactions(interactions_path, item_ids)
        if n_rows == 0:
            log.warning("interactions log %s is EMPTY (no rows)", interactions_path)
        if n_unknown:
            log.warning(
                "%d of %d interactions name items not in the catalogue (e.g. %s): ignored",
                n_unknown,
                n_rows,
                ", ".join(map(repr, unknown_examples)),
            )
        counts = user_counts(interactions, settings["min_user_interactions"])
        log.info(
            "interactions: %d users, %d with more than %d interactions count, %d below the "
            "threshold are not used for weights",
            counts["n_users"],
            counts["n_qualifying"],
            settings["min_user_interactions"],
            counts["n_below_threshold"],
        )
    table = category_table(
        tags, item_ids, weighting, interactions=interactions, min_user_interactions=settings["min_user_interactions"]
    )
    log.info("category weights (%s):\n%s", weighting, table)
    vectors = tag_vectors(tags, item_ids, dict(zip(table["category"], table["weight"])))
    log.info("%d items x %d tag slots, %d non-zeros", *vectors.matrix.shape, vectors.matrix.nnz)
    save_tag_vectors(vectors_out, vectors)
    write_table(categories_out, table)
    return vectors

"""Tag audit: items whose tags the strong models' neighbourhoods contradict (likely tagging errors).

For an item i with values V_i in category c and its k nearest other items by embedding cosine
(:func:`~corrembed.diagnostics.neighbours.top_k_neighbours`, the neighbour sheets' search) in each
model of the consensus (a bounded set: the best model and those tied with it):

- agreement a_i: share of the neighbours that share a value of V_i (per model, and its mean over
  the consensus models);
- vote share s_i(x) of a value x: share of the neighbours that have x (pooled over the models);
- chance: what these would be with neighbours drawn at random, p_i = share of the *other* items
  sharing a value of V_i, and p(x) = share of the other items having x;
- suggested value u_i: the value not in V_i whose vote share exceeds its chance the most,
  s_i(x) - p(x), among those the neighbours vote for (none when they vote only for V_i);
- suspicion = (p_i - a_i) + max(0, s_i(u_i) - p(u_i)): how far the item's own value falls short of
  chance plus how far the best other value exceeds it. Both parts are chance-corrected, so under
  random embeddings (neighbours independent of the tags) the score has mean about 0 whatever the
  item's value frequency; the naive score 1 - a_i instead ranks every rare value as suspicious
  (random neighbours seldom share it), which is kept as ``naive_suspicion`` for comparison.
- ``calibrated_suspicion``: the same with the levels this embedding gives correctly tagged items
  in place of chance: E_i = the mean agreement of the items carrying i's value(s) and B(x) = the
  mean share x gets from the items lacking it (equal to chance under random embeddings). On the
  real catalogue neither variant wins everywhere (docs/tag_audit.md), so it is kept beside it.

Audited categories: by default every category whose values repeat, i.e. not identifier-like (a
category is identifier-like when more than half of the items that have it carry a value no other
item has). Memory: the neighbour lists (n, k) per model and sparse (n, values) vote shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp

from ..errors import ConfigError, ScoringError
from .categories import category_slots, membership
from .neighbours import DEFAULT_MEMORY_BUDGET_MB, Neighbours, top_k_neighbours

AUDIT_COLUMNS = (
    "item_id",
    "category",
    "value",
    "suggested_value",
    "agreement",
    "suspicion",
    "models",
    "suggested_share",
    "chance_agreement",
    "calibrated_suspicion",
    "naive_suspicion",
)


def auditable_categories(matrix, slot_category) -> list[str]:
    """Categories whose values repeat (sorted); identifier-like ones left out (module docstring).

    Examples:
        >>> m = sp.csr_matrix(np.array([[1, 0, 1, 0, 0], [1, 0, 0, 1, 0], [0, 1, 0, 0, 1]]))
        >>> auditable_categories(m, np.array(["colour", "colour", "name", "name", "name"]))
        ['colour']
    """
    out = []
    for category, slots in category_slots(slot_category).items():
        member = membership(matrix, slots)
        has = np.diff(member.indptr) > 0
        if not has.any():
            continue
        counts = np.asarray(member.sum(axis=0)).ravel()
        unique_only = np.asarray((member @ sp.csr_matrix((counts == 1).astype(np.float64)[:, None])).todense()).ravel()
        if (unique_only[has] > 0).mean() <= 0.5:
            out.append(category)
    return out


def audit_neighbours(embeddings, k: int, *, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB) -> Neighbours:
    """Every item's k nearest other items by cosine (the neighbour sheets' blocked search)."""
    n = embeddings.shape[0]
    return top_k_neighbours(embeddings, np.arange(n), min(int(k), n - 1), memory_budget_mb=memory_budget_mb)


def shares_own_value(member: sp.csr_matrix, neighbours: Neighbours) -> np.ndarray:
    """(n, k) bool: does each neighbour share a value with its query item (``member`` 0/1 CSR)."""
    q, k = neighbours.indices.shape
    left = member[np.repeat(neighbours.queries, k)]
    right = member[neighbours.indices.ravel()]
    return (np.asarray(left.multiply(right).sum(axis=1)).ravel() > 0).reshape(q, k)


def vote_shares(member: sp.csr_matrix, neighbours: Neighbours) -> sp.csr_matrix:
    """(n, s) CSR: share of each item's k neighbours that have each value."""
    q, k = neighbours.indices.shape
    rows = np.repeat(np.arange(q), k)
    adjacency = sp.csr_matrix((np.full(q * k, 1.0 / k), (rows, neighbours.indices.ravel())), shape=(q, member.shape[0]))
    return sp.csr_matrix(adjacency @ member)


def chance_agreement(member: sp.csr_matrix) -> np.ndarray:
    """(n,) share of the other items sharing a value with each item (0 without a value).

    Exact for multi-valued items: items are grouped by their set of values, and each set is compared
    with every distinct set (no n x n work; the distinct sets are few).
    """
    n = member.shape[0]
    keys = [tuple(member.indices[member.indptr[i] : member.indptr[i + 1]].tolist()) for i in range(n)]
    distinct, inverse, counts = np.unique(
        np.array([",".join(map(str, t)) for t in keys]), return_inverse=True, return_counts=True
    )
    first = np.zeros(distinct.size, dtype=np.int64)
    first[inverse[::-1]] = np.arange(n)[::-1]
    patterns = member[first]
    meets = (patterns @ patterns.T).toarray() > 0
    sharing = meets.astype(np.float64) @ counts.astype(np.float64)
    has = np.diff(patterns.indptr) > 0
    others = np.where(has, sharing - 1.0, 0.0)  # the item itself shares its own values
    return others[inverse] / max(n - 1, 1)


def best_other_value(shares: sp.csr_matrix, member: sp.csr_matrix, chance: np.ndarray):
    """Per item: (index of the value not its own with the largest share - chance, or -1; that surplus; its share).

    Ties: larger share first, then the lower value index.
    """
    coo = shares.tocoo()
    own = np.asarray(member[coo.row, coo.col]).ravel() > 0
    row, col, share = coo.row[~own], coo.col[~own], coo.data[~own]
    surplus = share - chance[col]
    order = np.lexsort((col, -share, -surplus, row))
    row, col, share, surplus = row[order], col[order], share[order], surplus[order]
    first = np.ones(row.size, dtype=bool)
    first[1:] = row[1:] != row[:-1]
    n = shares.shape[0]
    best, best_surplus, best_share = np.full(n, -1, dtype=np.int64), np.zeros(n), np.zeros(n)
    best[row[first]], best_surplus[row[first]], best_share[row[first]] = col[first], surplus[first], share[first]
    return best, best_surplus, best_share


def audit_category(member: sp.csr_matrix, neighbours: Mapping[str, Neighbours]) -> dict[str, np.ndarray]:
    """One category's audit for every item (arrays (n,); see the module docstring).

    Returns: ``agreement`` (mean over models), ``agreement:<model>`` each, ``suggested`` (value
    index, -1 for none), ``suggested_share``, ``chance_agreement``, ``suspicion``,
    ``expected_agreement``, ``calibrated_suspicion`` and ``naive_suspicion``.
    """
    n = member.shape[0]
    for name, nb in neighbours.items():
        if nb.queries.size != n or not np.array_equal(nb.queries, np.arange(n)):
            raise ScoringError(f"tag audit: model {name}'s neighbours must cover every item in order")
    out = {f"agreement:{m}": shares_own_value(member, nb).mean(axis=1) for m, nb in neighbours.items()}
    agreement = np.mean([out[f"agreement:{m}"] for m in neighbours], axis=0)
    shares = sp.csr_matrix(sum(vote_shares(member, nb) for nb in neighbours.values()) / len(neighbours))
    counts = np.asarray(member.sum(axis=0)).ravel()
    n_values = np.asarray(member.sum(axis=1)).ravel()
    # Calibration by the embedding itself: the mean agreement of the items carrying each value, and
    # the mean share each value gets from the items lacking it.
    value_agreement = np.divide(member.T @ agreement, counts, out=np.zeros(counts.size), where=counts > 0)
    expected = np.divide(member @ value_agreement, n_values, out=np.zeros(n), where=n_values > 0)
    own_shares = np.asarray(shares.multiply(member).sum(axis=0)).ravel()
    lacking = n - counts
    baseline = np.divide(
        np.asarray(shares.sum(axis=0)).ravel() - own_shares, lacking, out=np.zeros(counts.size), where=lacking > 0
    )
    _, calibrated_surplus, _ = best_other_value(shares, member, baseline)
    chance = chance_agreement(member)
    best, surplus, best_share = best_other_value(shares, member, counts / max(n - 1, 1))
    out.update(
        agreement=agreement,
        suggested=best,
        suggested_share=best_share,
        chance_agreement=chance,
        suspicion=(chance - agreement) + np.maximum(surplus, 0.0),
        expected_agreement=expected,
        calibrated_suspicion=(expected - agreement) + np.maximum(calibrated_surplus, 0.0),
        naive_suspicion=1.0 - agreement,
    )
    return out


def tag_audit(
    matrix,
    slot_category,
    slot_value,
    item_ids,
    neighbours: Mapping[str, Neighbours],
    *,
    categories: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The audit table (:data:`AUDIT_COLUMNS` plus ``agreement:<model>`` per model), most suspect first.

    Args:
        matrix: (n, t) tag matrix (only its non-zeros are used).
        slot_category, slot_value: (t,) category and value of each column.
        item_ids: (n,) item ids, rows of ``matrix``.
        neighbours: model -> :func:`audit_neighbours` of every item (the consensus models).
        categories: categories to audit (default: :func:`auditable_categories`).

    One row per item and audited category the item has a value in; ``value`` joins an item's
    values with ``|``; ``models`` lists the consensus models (``;``).

    Examples:
        >>> x = np.array([[0.0, 1], [0.1, 1], [0.2, 1], [1, 0.0], [1, 0.1], [1, 0.2]])
        >>> tags = sp.csr_matrix(np.array([[1.0, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 1]]))
        >>> nb = {"m": audit_neighbours(x, 2)}
        >>> table = tag_audit(tags, np.array(["c", "c"]), np.array(["a", "b"]), np.arange(6).astype(str), nb)
        >>> table.row(0, named=True)["item_id"], table.row(0, named=True)["suggested_value"]
        ('2', 'a')
    """
    chosen = auditable_categories(matrix, slot_category) if categories is None else list(categories)
    slots = category_slots(slot_category)
    values = np.asarray(slot_value, dtype=str)
    ids = np.asarray(item_ids, dtype=str)
    models = ";".join(neighbours)
    parts = []
    for category in chosen:
        if category not in slots:
            raise ConfigError(
                f"diagnostics.audit.categories: {category!r} is not a tag category; known: {', '.join(slots)}"
            )
        member = membership(matrix, slots[category])
        names = values[slots[category]]
        result = audit_category(member, neighbours)
        has = np.flatnonzero(np.diff(member.indptr) > 0)
        own = ["|".join(names[member.indices[member.indptr[i] : member.indptr[i + 1]]]) for i in has]
        suggested = result["suggested"][has]
        parts.append(
            pl.DataFrame(
                {
                    "item_id": ids[has],
                    "category": [category] * has.size,
                    "value": own,
                    "suggested_value": np.where(suggested >= 0, names[np.maximum(suggested, 0)], ""),
                    **{c: result[c][has] for c in AUDIT_COLUMNS[4:] if c in result},
                    "models": [models] * has.size,
                    **{f"agreement:{m}": result[f"agreement:{m}"][has] for m in neighbours},
                }
            )
        )
    if not parts:
        return pl.DataFrame(schema=dict.fromkeys(AUDIT_COLUMNS, pl.String))
    table = pl.concat(parts).with_row_index("_order")
    columns = [*AUDIT_COLUMNS, *(f"agreement:{m}" for m in neighbours)]
    return table.sort(["suspicion", "_order"], descending=[True, False]).select(columns)


def confusion_pairs(audit: pl.DataFrame, top: int = 5) -> pl.DataFrame:
    """Per category, the value pairs the neighbours confuse most: ``category, pair, n_items, mean_suspicion``.

    Counts the audit rows with a suggestion and a positive suspicion by unordered pair
    ``value ↔ suggested_value``; the ``top`` pairs per category, most items first.
    """
    flagged = audit.filter((pl.col("suggested_value") != "") & (pl.col("suspicion") > 0))
    if flagged.is_empty():
        return pl.DataFrame(
            schema={"category": pl.String, "pair": pl.String, "n_items": pl.UInt32, "mean_suspicion": pl.Float64}
        )
    low = pl.min_horizontal("value", "suggested_value")
    high = pl.max_horizontal("value", "suggested_value")
    return (
        flagged.with_columns(pair=pl.concat_str([low, pl.lit(" ↔ "), high]))
        .group_by("category", "pair")
        .agg(n_items=pl.len(), mean_suspicion=pl.col("suspicion").mean())
        .sort(["category", "n_items", "pair"], descending=[False, True, False])
        .group_by("category", maintain_order=True)
        .head(top)
    )


def consensus_models(ranking: pl.DataFrame, max_models: int = 3) -> list[str]:
    """The best model and those tied with it (a ``ranking.csv`` of the comparison), by rank, at most ``max_models``.

    Examples:
        >>> r = pl.DataFrame({"model": ["a", "b", "c"], "rank": [1, 2, 3], "tied_with": ["b", "a;c", "b"]})
        >>> consensus_models(r)
        ['a', 'b']
    """
    table = ranking.sort("rank")
    best = table.row(0, named=True)
    tied = best["tied_with"]
    tied = [] if tied is None else (tied.split(";") if isinstance(tied, str) else list(tied))
    chosen = {best["model"], *[t for t in tied if t]}
    return [m for m in table["model"].to_list() if m in chosen][: max(1, int(max_models))]

"""Does the tag audit find planted errors? Flip a seeded share of one category's values and measure.

For a category c, a seeded ``fraction`` (default 5 %) of the items with exactly one value in c get
another value of c, drawn uniformly among its other values (so a flipped item often gets a rare
value: the base-rate trap of a naive neighbour vote). The audit runs on the flipped tags with the
same neighbours (they depend on the images only), and each suspicion score is judged by

- ROC AUC of the flipped items against the others (Mann-Whitney, ties counted one half);
- precision@#flipped: the share of flipped items among the top-ranked as many items as were
  flipped (ties in the score broken by item order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.stats import rankdata

from ..errors import ScoringError
from .audit import audit_category
from .categories import category_slots, membership
from .neighbours import Neighbours

VALIDATION_COLUMNS = ("category", "embedding", "score", "n_items", "n_flipped", "auc", "precision_at_flipped")


def flip_values(matrix, slot_category, category: str, fraction: float = 0.05, seed: int = 42):
    """(flipped tag matrix CSR, (n,) bool flipped): a seeded ``fraction`` of single-valued items moved.

    Examples:
        >>> m = sp.csr_matrix(np.tile([[1.0, 0.0, 0.0]], (20, 1)))
        >>> flipped, mask = flip_values(m, np.array(["c"] * 3), "c", fraction=0.1, seed=0)
        >>> int(mask.sum()), bool((flipped[mask, 0].toarray() == 0).all())
        (2, True)
    """
    slots = category_slots(slot_category).get(category)
    if slots is None or slots.size < 2:
        raise ScoringError(f"flip validation: category {category!r} needs at least two values")
    m = sp.lil_matrix(sp.csr_matrix(matrix, dtype=np.float64, copy=True))
    member = membership(matrix, slots)
    single = np.flatnonzero(np.diff(member.indptr) == 1)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(single, size=int(round(fraction * single.size)), replace=False))
    flipped = np.zeros(matrix.shape[0], dtype=bool)
    for i in chosen:
        own = slots[member.indices[member.indptr[i]]]
        weight = m[i, own]
        target = rng.choice(slots[slots != own])
        m[i, own] = 0.0
        m[i, target] = weight
        flipped[i] = True
    out = sp.csr_matrix(m)
    out.eliminate_zeros()
    return out, flipped


def roc_auc(scores, labels) -> float:
    """ROC AUC of ``scores`` for the positive ``labels`` (Mann-Whitney U / (n+ n-); ties count 1/2).

    Examples:
        >>> roc_auc([0.9, 0.2, 0.8, 0.1], [1, 0, 0, 0])
        1.0
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def precision_at_flipped(scores, labels) -> float:
    """Share of positives among the top ``labels.sum()`` scores (ties by position).

    Examples:
        >>> precision_at_flipped([0.9, 0.2, 0.8, 0.1], [1, 0, 0, 1])
        0.5
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    m = int(labels.sum())
    if m == 0:
        return float("nan")
    top = np.argsort(-scores, kind="stable")[:m]
    return float(labels[top].mean())


def flip_validation(
    matrix,
    slot_category,
    categories: Sequence[str],
    neighbours: Mapping[str, Mapping[str, Neighbours]],
    *,
    fraction: float = 0.05,
    seed: int = 42,
) -> pl.DataFrame:
    """:data:`VALIDATION_COLUMNS` for each category x embedding x score (suspicion, calibrated_ and naive_suspicion).

    Args:
        matrix: (n, t) tag matrix; slot_category: (t,) category of each column.
        categories: categories to flip, one at a time (the same seed for each).
        neighbours: embedding label (e.g. ``"pretrained"``, ``"random-init"``) -> the audit's
            neighbours (model -> every item's neighbours), as :func:`~.audit.tag_audit` takes them.
        fraction, seed: the share flipped and the seed of the draw.
    """
    rows = []
    for category in categories:
        flipped_matrix, flipped = flip_values(matrix, slot_category, category, fraction, seed)
        member = membership(flipped_matrix, category_slots(slot_category)[category])
        has = np.diff(member.indptr) > 0
        for label, by_model in neighbours.items():
            result = audit_category(member, by_model)
            for score in ("suspicion", "calibrated_suspicion", "naive_suspicion"):
                s, y = result[score][has], flipped[has]
                rows.append(
                    (category, label, score, int(has.sum()), int(y.sum()), roc_auc(s, y), precision_at_flipped(s, y))
                )
    return pl.DataFrame(rows, schema=list(VALIDATION_COLUMNS), orient="row")

"""Which columns of a tag matrix belong to which category, and per-category views of it."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import ConfigError


def category_slots(slot_category) -> dict[str, np.ndarray]:
    """Category -> (s,) int64 column indices of its (category, value) slots, categories sorted."""
    slot_category = np.asarray(slot_category, dtype=str)
    return {str(c): np.flatnonzero(slot_category == c).astype(np.int64) for c in np.unique(slot_category)}


def check_category(category: str, slot_category) -> None:
    """ConfigError naming the known categories when ``category`` is not one of them."""
    known = sorted(set(np.asarray(slot_category, dtype=str).tolist()))
    if category not in known:
        raise ConfigError(f"diagnostics: category {category!r} is not a tag category; known: {', '.join(known)}")


def membership(matrix, slots: np.ndarray) -> sp.csr_matrix:
    """(n, s) 0/1 float64 CSR: which values of one category each item has (from a tag matrix's slots)."""
    sub = sp.csr_matrix(matrix)[:, slots]
    out = sp.csr_matrix((sub != 0).astype(np.float64))
    out.eliminate_zeros()
    return out


def item_values(matrix, slot_category, slot_value, category: str) -> list[list[str]]:
    """Per item, the sorted values it has in ``category`` (empty list when it lacks it)."""
    check_category(category, slot_category)
    slots = category_slots(slot_category)[category]
    values = np.asarray(slot_value, dtype=str)[slots]
    m = membership(matrix, slots)
    return [sorted(values[m.indices[m.indptr[i] : m.indptr[i + 1]]].tolist()) for i in range(m.shape[0])]


def primary_value(matrix, slot_category, slot_value, category: str, missing: str = "(none)") -> np.ndarray:
    """(n,) str: each item's first value in ``category`` (alphabetical), ``missing`` when it has none."""
    return np.array([v[0] if v else missing for v in item_values(matrix, slot_category, slot_value, category)])


def all_item_values(matrix, slot_category, slot_value) -> dict[str, list[list[str]]]:
    """Category (sorted) -> per item the sorted values it has there (:func:`item_values` for each)."""
    return {c: item_values(matrix, slot_category, slot_value, c) for c in category_slots(slot_category)}


def has_tags(matrix) -> np.ndarray:
    """(n,) bool: items with at least one tag (a non-zero tag vector)."""
    m = sp.csr_matrix(matrix)
    return np.diff(m.indptr) > 0

"""Per-anchor correlations (CorrEmbed and its Spearman variant) on prepared operands."""

from __future__ import annotations

import numpy as np

from ..errors import ScoringError
from .correlation import anchor_rows
from .options import Strategy
from .pearson import PearsonFactors, anchor_pearson, use_factored
from .prepare import BlockSizes, Operands
from .results import CorrEmbedResult


def corrembed_of(
    ops: Operands,
    anchors: np.ndarray,
    include_self: bool,
    blocks: BlockSizes,
    method: str,
    strategy: Strategy,
    factors: PearsonFactors | None = None,
    anchors_factored: bool | None = None,
) -> CorrEmbedResult:
    """Per-anchor r_a and their mean.

    Parameters
    ----------
    ops : Operands
    anchors : (k,) int64
    include_self : bool
    blocks : BlockSizes
        Block sizes (``pearson`` for Pearson, ``ranks`` for Spearman).
    method : {"pearson", "spearman"}
    strategy : {"auto", "blockwise", "factored"}
        Pearson route, unless ``anchors_factored`` decides it.
    factors : PearsonFactors, optional
        Reused factor matrices (Pearson).
    anchors_factored : bool, optional
        The route already planned (:func:`~corrembed.score.pearson.pearson_plan`).
    """
    if method not in ("pearson", "spearman"):
        raise ScoringError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if method == "pearson":
        factored = use_factored(ops, anchors.size, strategy) if anchors_factored is None else anchors_factored
        per_anchor = anchor_pearson(ops, anchors, include_self, blocks.pearson, factored, factors)
    else:
        per_anchor = anchor_rows(ops, anchors, include_self, method, blocks.ranks)
    zero_tags = ops.zero_tag_rows[anchors]
    per_anchor[zero_tags] = np.nan
    return _result(per_anchor, anchors, int(zero_tags.sum()), ops.n, method, include_self)


def _result(per_anchor, anchors, n_zero_tags, n, method, include_self) -> CorrEmbedResult:
    """A :class:`CorrEmbedResult` from (k,) per-anchor values (NaN = undefined).

    Raises
    ------
    ScoringError
        When no anchor has a defined correlation (says why that usually happens).
    """
    defined = np.isfinite(per_anchor)
    if not defined.any():
        raise ScoringError(
            f"no anchor has a defined {method} correlation ({anchors.size} anchors, {n_zero_tags} with "
            "all-zero tag vectors, the rest with constant similarity rows): check that items carry tags "
            "and that embeddings are not all identical"
        )
    return CorrEmbedResult(
        mean=float(per_anchor[defined].mean()),
        per_anchor=per_anchor,
        anchors=anchors,
        n_skipped=int((~defined).sum()),
        n_zero_tags=n_zero_tags,
        n_items=n,
        method=method,
        include_self=include_self,
    )

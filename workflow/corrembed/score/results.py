"""What the scoring functions return: plain frozen dataclasses of floats and numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CorrEmbedResult:
    """Per-anchor correlations and their mean.

    Attributes
    ----------
    mean : float
        CorrEmbed, the mean of the defined per-anchor correlations.
    per_anchor : (n_anchors,) float64
        r_a per anchor, NaN where undefined.
    anchors : (n_anchors,) int64
        Item indices, in the order of ``per_anchor``.
    n_skipped : int
        Anchors whose r_a is undefined (all-zero tag vector or a constant row).
    n_zero_tags : int
        Of those, anchors skipped because their tag vector is all zero.
    n_items : int
        n, the number of items.
    method : str
        "pearson" or "spearman".
    include_self : bool
        Whether the anchor's own item was among the compared items.

    Examples
    --------
    >>> from corrembed.score import corrembed
    >>> tags = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 0]])
    >>> result = corrembed(tags + 0.1, tags, anchors="all")
    >>> result.n_anchors, result.n_defined, result.n_zero_tags, result.method
    (5, 4, 1, 'pearson')
    >>> bool(result.mean == np.nanmean(result.per_anchor))
    True
    """

    mean: float
    per_anchor: np.ndarray
    anchors: np.ndarray
    n_skipped: int
    n_zero_tags: int
    n_items: int
    method: str
    include_self: bool

    @property
    def n_anchors(self) -> int:
        """Number of anchors (defined or not)."""
        return int(self.anchors.size)

    @property
    def n_defined(self) -> int:
        """Number of anchors with a defined correlation (those averaged into ``mean``)."""
        return self.n_anchors - self.n_skipped


@dataclass(frozen=True)
class AllPairsSpearman:
    """All-pairs Spearman correlation and how it was obtained.

    Attributes
    ----------
    value : float
        The correlation.
    method : str
        "exact" (every pair i < j) or "sampled" (uniform pairs, with replacement).
    n_pairs : int
        Number of pairs used.
    standard_error : float
        0.0 when exact; for a sample, the batch-means standard error of ``value`` as an estimate
        of the exact all-pairs value.
    """

    value: float
    method: str
    n_pairs: int
    standard_error: float


@dataclass(frozen=True)
class MantelResult:
    """Permutation (Mantel) test of the all-pairs Pearson correlation.

    Attributes
    ----------
    statistic : float
        The observed all-pairs Pearson correlation.
    p_value : float
        One-sided (1 + #{null >= observed}) / (1 + permutations).
    permutations : int
        Number of item-label permutations of the tag side.
    null : (permutations,) float64
        Correlations under the permutations.
    """

    statistic: float
    p_value: float
    permutations: int
    null: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class ScoreReport:
    """Everything section 1 of the SPEC asks to report for one embedding set.

    Scalars are in :meth:`as_dict`; the per-anchor results in :meth:`per_anchor_table`.
    ``anchors``, ``per_anchor_pearson`` and ``per_anchor_spearman`` are (n_anchors,) arrays
    (int64, float64, float64; NaN = undefined).

    Examples
    --------
    >>> from corrembed.score import score_report
    >>> rng = np.random.default_rng(0)
    >>> tags = rng.random((40, 4)) < 0.5
    >>> report = score_report(tags + 0.2 * rng.standard_normal((40, 4)), tags, anchors="all", bootstrap=50)
    >>> report.n_items, report.n_anchors, report.per_anchor_pearson.shape
    (40, 40, (40,))
    >>> bool(report.corrembed > report.control_shuffled_tags)
    True
    >>> sorted(report.as_dict())[:3]
    ['allpairs_pearson', 'allpairs_spearman', 'allpairs_spearman_method']
    """

    corrembed: float
    ci_low: float
    ci_high: float
    allpairs_pearson: float
    anchor_spearman: float
    allpairs_spearman: float
    allpairs_spearman_method: str
    allpairs_spearman_pairs: int
    allpairs_spearman_se: float
    n_items: int
    n_anchors: int
    n_anchors_skipped: int
    n_anchors_zero_tags: int
    include_self: bool
    seed: int
    bootstrap: int
    confidence: float
    control_random: float
    control_shuffled_embeddings: float
    control_shuffled_tags: float
    mantel_p: float
    permutations: int
    device: str
    anchors: np.ndarray = field(repr=False)
    per_anchor_pearson: np.ndarray = field(repr=False)
    per_anchor_spearman: np.ndarray = field(repr=False)

    def as_dict(self) -> dict:
        """The scalar fields as plain Python values (JSON-ready; NaN stays float NaN)."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                continue
            if isinstance(value, (bool, np.bool_)):
                out[name] = bool(value)
            elif isinstance(value, (int, np.integer)):
                out[name] = int(value)
            elif isinstance(value, (float, np.floating)):
                out[name] = float(value)
            else:
                out[name] = value
        return out

    def per_anchor_table(self):
        """polars DataFrame: anchor (int64 item index), r_pearson, r_spearman (float64, NaN = undefined)."""
        import polars as pl

        return pl.DataFrame(
            {
                "anchor": self.anchors,
                "r_pearson": self.per_anchor_pearson,
                "r_spearman": self.per_anchor_spearman,
            }
        )

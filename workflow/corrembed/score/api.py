"""The public entry points on raw arrays: per-anchor, all-pairs and Mantel statistics.

Each takes ``embeddings`` (n, d) float32/float64 and ``tag_vectors`` (n, t) dense or scipy
sparse, rows aligned, then ``options`` (:class:`ScoreOptions`) and/or keyword overrides of its
fields (``anchors=``, ``seed=``, ``device=``, ...). ``device="auto"`` works everywhere.
"""

from __future__ import annotations

from typing import Literal

from .inference import mantel_of
from .options import ScoreOptions, resolve_options
from .pearson import MAX_DENSE_SLOTS, allpairs_pearson_of, pearson_factors, pearson_plan
from .peranchor import corrembed_of
from .prepare import prepared_job
from .results import AllPairsSpearman, CorrEmbedResult, MantelResult
from .spearman import allpairs_spearman_of


def corrembed(
    embeddings,
    tag_vectors,
    options: ScoreOptions | None = None,
    *,
    method: Literal["pearson", "spearman"] = "pearson",
    **overrides,
) -> CorrEmbedResult:
    """CorrEmbed: mean over anchors of the correlation between tag and embedding similarity rows.

    Per anchor a, r_a is the Pearson correlation, over the compared items j (j != a unless
    ``include_self``), between a's tag-similarity row and embedding-similarity row (cosine on
    both sides); CorrEmbed is the mean of the defined r_a. r_a is undefined (NaN, counted in
    ``n_skipped``) when the anchor's tag vector is all zero or one of its rows is constant.

    Parameters
    ----------
    embeddings : (n, d) float32/float64 array
    tag_vectors : (n, t) dense array or scipy sparse matrix, rows aligned with ``embeddings``
    options : ScoreOptions, optional
        Uses ``anchors``, ``seed``, ``include_self``, ``block_size``, ``memory_budget_mb``,
        ``strategy``, ``device``, ``allow_tf32``.
    method : {"pearson", "spearman"}
        "pearson" (CorrEmbed) or "spearman" (rank rows, ties averaged after rounding).
    **overrides
        Fields of :class:`ScoreOptions` for this call.

    Returns
    -------
    CorrEmbedResult

    Raises
    ------
    ScoringError
        Bad shapes or values, or no anchor with a defined correlation.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> tags = rng.random((50, 4)) < 0.5
    >>> x = tags + 0.1 * rng.standard_normal((50, 4))
    >>> bool(corrembed(x, tags, anchors="all").mean > 0.5)
    True
    """
    opts = resolve_options(options, overrides)
    with prepared_job(embeddings, tag_vectors, opts) as job:
        return corrembed_of(job.ops, job.anchors(), opts.include_self, job.blocks, method, opts.strategy)


def anchor_spearman(embeddings, tag_vectors, options: ScoreOptions | None = None, **overrides) -> CorrEmbedResult:
    """Per-anchor Spearman variant of :func:`corrembed` (same as ``corrembed(..., method="spearman")``).

    Each anchor's two similarity rows are ranked (ties averaged after rounding to
    ``TIE_DECIMALS`` decimals) before the Pearson correlation.

    Parameters
    ----------
    embeddings : (n, d) float array
        One row per item (float32 and float64 kept, other numeric dtypes become float64).
    tag_vectors : (n, t) dense array or scipy sparse matrix
        Tag vectors, rows aligned with ``embeddings``.
    options : ScoreOptions, optional
        How to score; keyword ``overrides`` replace its fields.

    Returns
    -------
    CorrEmbedResult
        ``method == "spearman"``; ``per_anchor`` (n_anchors,) float64.

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> anchor_spearman(x, x, anchors="all").mean
    1.0
    """
    return corrembed(embeddings, tag_vectors, options, method="spearman", **overrides)


def allpairs_pearson(embeddings, tag_vectors, options: ScoreOptions | None = None, **overrides) -> float:
    """One Pearson correlation over all pairs i < j of the two cosine-similarity matrices.

    Uses the options ``block_size``, ``memory_budget_mb``, ``strategy``, ``device`` and
    ``allow_tf32``.

    Parameters
    ----------
    embeddings : (n, d) float array
        One row per item (float32 and float64 kept, other numeric dtypes become float64).
    tag_vectors : (n, t) dense array or scipy sparse matrix
        Tag vectors, rows aligned with ``embeddings``.
    options : ScoreOptions, optional
        How to score; keyword ``overrides`` replace its fields.

    Returns
    -------
    float
        The correlation; NaN when either side is constant over pairs.

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> round(allpairs_pearson(x, x), 6)
    1.0
    """
    opts = resolve_options(options, overrides)
    with prepared_job(embeddings, tag_vectors, opts) as job:
        return allpairs_pearson_of(job.ops, job.blocks.pearson, opts.strategy)


def pearson_scores(
    embeddings, tag_vectors, options: ScoreOptions | None = None, **overrides
) -> tuple[CorrEmbedResult, float]:
    """Per-anchor CorrEmbed and the all-pairs Pearson in one pass (shared factor matrices).

    The same computation :func:`score_report` does for these two numbers. Parameters as
    :func:`corrembed`; without ``options``, ``anchors`` defaults to all items.
    Returns (CorrEmbedResult, all-pairs r).

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> result, r = pearson_scores(x, x)
    >>> result.n_anchors, round(r, 6)
    (4, 1.0)
    """
    opts = resolve_options(options, overrides, anchors="all")
    with prepared_job(embeddings, tag_vectors, opts) as job:
        ops, anchor_idx = job.ops, job.anchors()
        anchors_factored, pairs_factored = pearson_plan(ops, anchor_idx.size, opts.strategy)
        factors = None
        if ops.tags.shape[1] <= MAX_DENSE_SLOTS:
            factors = pearson_factors(ops, scatter=anchors_factored or pairs_factored, centred=not anchors_factored)
        result = corrembed_of(
            ops, anchor_idx, opts.include_self, job.blocks, "pearson", opts.strategy, factors, anchors_factored
        )
        return result, allpairs_pearson_of(ops, job.blocks.pearson, opts.strategy, factors, pairs_factored)


def mantel_test(embeddings, tag_vectors, options: ScoreOptions | None = None, **overrides) -> MantelResult:
    """Mantel test: is the all-pairs Pearson higher than with item labels of the tags shuffled?

    Each permutation pi re-labels the tag vectors (item i gets item pi(i)'s tags) and recomputes
    the all-pairs Pearson exactly from the factor matrices: only K = sum_j (x_j - m) tau_pi(j)^T
    changes, one sparse (t, n) x dense (n, d) float32 product, O(nnz d) per permutation, nothing
    of size n x n. Permutations (``permutations``, default 999 without ``options``) come from
    ``np.random.default_rng(seed)``.

    Parameters
    ----------
    embeddings : (n, d) float array
        One row per item (float32 and float64 kept, other numeric dtypes become float64).
    tag_vectors : (n, t) dense array or scipy sparse matrix
        Tag vectors, rows aligned with ``embeddings``.
    options : ScoreOptions, optional
        How to score; keyword ``overrides`` replace its fields.

    Returns
    -------
    MantelResult
        ``statistic`` (the observed all-pairs Pearson), ``p_value``, ``permutations`` and the
        ``null`` values, (permutations,) float64.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> tags = rng.random((60, 5)) < 0.4
    >>> mantel_test(tags + 0.1 * rng.standard_normal((60, 5)), tags, permutations=99).p_value
    0.01
    """
    opts = resolve_options(options, overrides, permutations=999)
    with prepared_job(embeddings, tag_vectors, opts) as job:
        factors = pearson_factors(job.ops, scatter=True, centred=True)
        return mantel_of(job.ops, factors, opts.permutations, opts.seed)


def allpairs_spearman(embeddings, tag_vectors, options: ScoreOptions | None = None, **overrides) -> AllPairsSpearman:
    """Spearman correlation over all pairs i < j of the two cosine-similarity matrices.

    Exact when n(n-1)/2 <= ``max_exact_pairs``; it then holds 8 bytes per pair (1.6 GB at
    n = 20,000), beyond ``memory_budget_mb`` (which bounds the similarity blocks only).
    Otherwise from ``sample_pairs`` pairs drawn uniformly with replacement (``seed``), with a
    standard error. Similarities are rounded to TIE_DECIMALS decimals before ranking; ties get
    average ranks.

    Parameters
    ----------
    embeddings : (n, d) float array
        One row per item (float32 and float64 kept, other numeric dtypes become float64).
    tag_vectors : (n, t) dense array or scipy sparse matrix
        Tag vectors, rows aligned with ``embeddings``.
    options : ScoreOptions, optional
        How to score; keyword ``overrides`` replace its fields.

    Returns
    -------
    AllPairsSpearman
        ``value``, ``method`` ("exact" or "sampled"), ``n_pairs`` and ``standard_error``.

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> res = allpairs_spearman(x, x)
    >>> res.method, res.n_pairs, round(res.value, 6)
    ('exact', 6, 1.0)
    """
    opts = resolve_options(options, overrides)
    with prepared_job(embeddings, tag_vectors, opts) as job:
        return allpairs_spearman_of(job.ops, job.blocks.pairs, opts.max_exact_pairs, opts.sample_pairs, opts.seed)

"""The full score report: CorrEmbed, its interval, all-pairs and Spearman variants, controls."""

from __future__ import annotations

import numpy as np

from ..errors import ScoringError
from .inference import bootstrap_interval, control_scores, mantel_of
from .options import ScoreOptions, resolve_options
from .pearson import MAX_DENSE_SLOTS, allpairs_pearson_of, pearson_factors, pearson_plan
from .peranchor import corrembed_of
from .prepare import ScoreJob, prepared_job
from .results import ScoreReport
from .spearman import allpairs_spearman_of


def score_report(embeddings, tag_vectors, options: ScoreOptions | None = None, **overrides) -> ScoreReport:
    """CorrEmbed with its bootstrap interval, all-pairs and Spearman variants, and controls.

    Controls (each CorrEmbed over the same anchors, NaN when ``controls`` is false): random
    Gaussian embeddings of the same shape and dtype; embeddings with rows permuted across items;
    tag vectors with rows permuted across items. With ``permutations`` > 0, also the Mantel
    p-value of the all-pairs Pearson (:func:`mantel_test`; NaN when 0). Seeds derive from ``seed``.

    Memory: O(n d) for the inputs' normalized and centred copies plus the (b, n) blocks bounded
    by ``memory_budget_mb``; the exact all-pairs Spearman adds 8 bytes per pair (see
    :func:`allpairs_spearman`; ``max_exact_pairs`` caps it).

    Parameters
    ----------
    embeddings : (n, d) float32/float64 array
    tag_vectors : (n, t) dense array or scipy sparse matrix, rows aligned
    options : ScoreOptions, optional
        Every field is used.
    **overrides
        Fields of :class:`ScoreOptions` for this call.

    Returns
    -------
    ScoreReport

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> tags = rng.random((80, 5)) < 0.4
    >>> rep = score_report(tags + 0.1 * rng.standard_normal((80, 5)), tags, anchors="all", bootstrap=100)
    >>> bool(rep.ci_low <= rep.corrembed <= rep.ci_high), rep.allpairs_spearman_method
    (True, 'exact')
    """
    opts = resolve_options(options, overrides)
    if int(opts.permutations) < 0:
        raise ScoringError(f"permutations must be >= 0 (0 = no Mantel test), got {opts.permutations}")
    with prepared_job(embeddings, tag_vectors, opts) as job:
        return _score_report(job)


def _score_report(job: ScoreJob) -> ScoreReport:
    """:func:`score_report` on a prepared job (backend precision already set)."""
    opts, ops, blocks, be = job.options, job.ops, job.blocks, job.backend
    n, seed, include_self, permutations = ops.n, opts.seed, opts.include_self, opts.permutations
    anchor_idx = job.anchors()

    # One pass over the data gives the factor matrices shared by the per-anchor Pearson, the
    # all-pairs Pearson and the Mantel test (whichever of them use it).
    anchors_factored, pairs_factored = pearson_plan(ops, anchor_idx.size, opts.strategy)
    factors = None
    if ops.tags.shape[1] <= MAX_DENSE_SLOTS:
        need_scatter = anchors_factored or pairs_factored or permutations > 0
        need_centred = not anchors_factored or permutations > 0
        factors = pearson_factors(ops, scatter=need_scatter, centred=need_centred)
    pearson = corrembed_of(ops, anchor_idx, include_self, blocks, "pearson", opts.strategy, factors, anchors_factored)
    all_pearson = allpairs_pearson_of(ops, blocks.pearson, opts.strategy, factors, pairs_factored)
    seq_random, seq_emb, seq_tags, seq_mantel = np.random.SeedSequence(seed).spawn(4)
    mantel_p = float("nan")
    if permutations > 0:
        if factors is None or factors.scatter_x is None or factors.x_centred is None:
            factors = pearson_factors(ops, scatter=True, centred=True)
        mantel_seed = int(seq_mantel.generate_state(1)[0])
        mantel_p = mantel_of(ops, factors, int(permutations), mantel_seed).p_value
    control_random = control_shuffled_emb = control_shuffled_tags = float("nan")
    if opts.controls:
        control_random, control_shuffled_emb, control_shuffled_tags = control_scores(
            ops, factors, anchor_idx, include_self, blocks, opts.strategy, (seq_random, seq_emb, seq_tags)
        )
    del factors  # O(n d) centred copy when the blockwise route or Mantel made one: free it first

    spearman = corrembed_of(ops, anchor_idx, include_self, blocks, "spearman", "blockwise")
    ci_low, ci_high = bootstrap_interval(pearson.per_anchor, opts.bootstrap, opts.confidence, seed)
    all_spearman = allpairs_spearman_of(ops, blocks.pairs, opts.max_exact_pairs, opts.sample_pairs, seed)

    return ScoreReport(
        corrembed=pearson.mean,
        ci_low=ci_low,
        ci_high=ci_high,
        allpairs_pearson=all_pearson,
        anchor_spearman=spearman.mean,
        allpairs_spearman=all_spearman.value,
        allpairs_spearman_method=all_spearman.method,
        allpairs_spearman_pairs=all_spearman.n_pairs,
        allpairs_spearman_se=all_spearman.standard_error,
        n_items=n,
        n_anchors=int(anchor_idx.size),
        n_anchors_skipped=pearson.n_skipped,
        n_anchors_zero_tags=pearson.n_zero_tags,
        include_self=include_self,
        seed=seed,
        bootstrap=opts.bootstrap,
        confidence=opts.confidence,
        control_random=control_random,
        control_shuffled_embeddings=control_shuffled_emb,
        control_shuffled_tags=control_shuffled_tags,
        mantel_p=mantel_p,
        permutations=int(permutations),
        device=be.label,
        anchors=anchor_idx,
        per_anchor_pearson=pearson.per_anchor,
        per_anchor_spearman=spearman.per_anchor,
    )

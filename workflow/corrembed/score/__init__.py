"""The CorrEmbed metric, its variants, confidence interval and controls (SPEC section 1).

CorrEmbed (Borgersen et al., "CorrEmbed: Evaluating Pre-trained Model Image Similarity
Efficacy with a Novel Metric", 2023) asks how well a vision model's embedding similarities agree
with similarities of human tags. Inputs everywhere: ``embeddings`` (n, d) float32 or float64
array and ``tag_vectors`` (n, t) dense array or scipy sparse matrix, rows aligned (row i of both
describe item i). Similarities are cosine on both sides. Nothing of size n x n is ever held
(the exact all-pairs Spearman's 8-byte keys aside): work is done over blocks of anchors, each a
(b, n) slice of both similarity matrices, or from small factor matrices (the *factored* Pearson).

Statistics (the front, re-exported here):

- :func:`corrembed`: per-anchor r_a = Pearson between an anchor's tag-similarity row and
  embedding-similarity row; CorrEmbed is the mean of the defined r_a. ``method="spearman"``
  (:func:`anchor_spearman`) ranks the rows first (ties averaged after rounding to
  :data:`TIE_DECIMALS` decimals).
- :func:`allpairs_pearson`: one Pearson over the upper triangle (i < j) of both matrices
  (Mantel / RSA); :func:`pearson_scores` gives both Pearson statistics from one pass.
- :func:`allpairs_spearman`: the same on ranks; exact up to ``max_exact_pairs`` pairs, above that
  a seeded uniform sample of pairs with a standard error.
- :func:`bootstrap_interval`: percentile interval of the mean of the defined r_a over anchors.
- :func:`mantel_test`: the all-pairs Pearson under permutations of the items' tag vectors.
- :func:`score_report`: all of the above plus controls (random, shuffled embeddings, shuffled tags).

Every entry point takes ``options`` (:class:`ScoreOptions`) and/or keyword overrides of its
fields; ``device`` is None/"cpu" (numpy), "cuda"/"cuda:N" (torch: float32 products with TF32
off unless ``allow_tf32``, float64 moments), "torch-cpu" (the torch path on the CPU, to test it)
or "auto" (a GPU when torch sees one).

Where things are:

- :mod:`.options` the options object and defaults; :mod:`.results` the result types;
- :mod:`.backends` numpy and torch array backends; :mod:`.threads` the pass thread pool;
- :mod:`.tag_layout` the unit tag rows and their products (host CSR, device copy), made by
  the backend, owned by the operands;
- :mod:`.prepare` input checks, normalized operands, anchors, block sizes, similarity blocks;
- :mod:`.correlation` row Pearson from moments, per-anchor correlations over blocks;
- :mod:`.pearson` the factored and blockwise Pearson routes and their cost model;
- :mod:`.ranks` row ranks; :mod:`.spearman` the all-pairs Spearman (exact and sampled);
- :mod:`.peranchor` per-anchor results; :mod:`.inference` bootstrap, Mantel test, controls;
- :mod:`.api` the entry points; :mod:`.report` :func:`score_report`.

Examples
--------
>>> import numpy as np
>>> from corrembed.score import corrembed
>>> tags = np.eye(4)[[0, 0, 1, 1, 2, 2, 3, 3]]
>>> x = tags + 0.01 * np.arange(32).reshape(8, 4)
>>> round(corrembed(x, tags, anchors="all").mean, 3) > 0.9
True
"""

from .api import allpairs_pearson, allpairs_spearman, anchor_spearman, corrembed, mantel_test, pearson_scores
from .backends import TIE_DECIMALS, resolve_score_device
from .inference import bootstrap_interval
from .options import (
    DEFAULT_MAX_EXACT_PAIRS,
    DEFAULT_MEMORY_BUDGET_MB,
    DEFAULT_SPEARMAN_SAMPLE_PAIRS,
    AnchorsArg,
    ScoreOptions,
    Strategy,
)
from .prepare import resolve_anchors, similarity_block
from .ranks import row_ranks
from .report import score_report
from .results import AllPairsSpearman, CorrEmbedResult, MantelResult, ScoreReport

__all__ = [
    "DEFAULT_MAX_EXACT_PAIRS",
    "DEFAULT_MEMORY_BUDGET_MB",
    "DEFAULT_SPEARMAN_SAMPLE_PAIRS",
    "TIE_DECIMALS",
    "AllPairsSpearman",
    "AnchorsArg",
    "CorrEmbedResult",
    "MantelResult",
    "ScoreOptions",
    "ScoreReport",
    "Strategy",
    "allpairs_pearson",
    "allpairs_spearman",
    "anchor_spearman",
    "bootstrap_interval",
    "corrembed",
    "mantel_test",
    "pearson_scores",
    "resolve_anchors",
    "resolve_score_device",
    "row_ranks",
    "score_report",
    "similarity_block",
]

"""Diagnostics: why a model scores as it does (issue 12).

Modules, one concept each:

- :mod:`.neighbours` — exact blockwise top-k cosine neighbours; seeded stratified queries.
- :mod:`.retrieval` — nDCG@k (gain = tag similarity), precision@k and mAP@k per category;
  :mod:`.ranking_metrics` — Recall@k, R-precision, mAP@R and MRR over the full ranking.
- :mod:`.audit` — the tag audit (likely tagging errors); :mod:`.audit_validation` — planted errors.
- :mod:`.agreement` — which models see the catalogue alike: debiased CKA, mutual k-NN.
- :mod:`.attributes` — per-category CorrEmbed alone and the drop when a category is left out.
- :mod:`.comparison` — paired bootstrap between models: differences, p-values, ranks, tied sets.
- :mod:`.embedding_map` — 2-D t-SNE map (openTSNE) on a seeded subsample.
- :mod:`.figures` — the figures (matplotlib, Agg).
- :mod:`.report` — one self-contained HTML report (generic: sections, tables, figures).
- :mod:`.categories` — per-category views of a tag matrix (slots, values per item).
- :mod:`.inputs` — what the workflow rules read (items aligned as the score stage aligns them).
- :mod:`.workflow_report` — the workflow's report: which figures, in what order, with captions.

Nothing here holds an n x n matrix: similarities are computed in (b, n) blocks.
"""

from .attributes import attribute_scores
from .comparison import ModelComparison, compare_models
from .embedding_map import EmbeddingMap, embedding_map
from .neighbours import Neighbours, stratified_queries, top_k_neighbours
from .retrieval import RetrievalScores, retrieval_scores

__all__ = [
    "EmbeddingMap",
    "ModelComparison",
    "Neighbours",
    "RetrievalScores",
    "attribute_scores",
    "compare_models",
    "embedding_map",
    "retrieval_scores",
    "stratified_queries",
    "top_k_neighbours",
]

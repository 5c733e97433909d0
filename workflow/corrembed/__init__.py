"""CorrEmbed: how well do a vision model's embedding similarities agree with human tags?

CorrEmbed is the metric of Borgersen et al., "CorrEmbed: Evaluating Pre-trained Model Image
Similarity Efficacy with a Novel Metric" (2023, arXiv:2308.16126): for each anchor item, the
Pearson correlation between its row of embedding cosine similarities and its row of
(entropy-weighted) tag-vector cosine similarities, averaged over anchors. This package is the
library behind the CorrEmbed Snakemake workflow; everything here works without Snakemake.

The public API (re-exported here; each name is loaded on first use, so ``import corrembed`` does
not import torch):

Metric (:mod:`corrembed.score`)
    :func:`corrembed`, :func:`score_report`, :class:`ScoreOptions`, :class:`ScoreReport`,
    :class:`CorrEmbedResult`, :func:`anchor_spearman`, :func:`allpairs_pearson`,
    :func:`allpairs_spearman`, :func:`bootstrap_interval`, :func:`mantel_test`,
    :func:`resolve_anchors`
Tags (:mod:`corrembed.tags`)
    :func:`category_table`, :func:`tag_vectors`, :class:`TagVectors`, :func:`load_tag_vectors`
Catalogue (:mod:`corrembed.ingest`)
    :func:`ingest_catalogue`, :class:`IngestOptions`, :func:`read_catalogue`
Models and embeddings (:mod:`corrembed.models`, :mod:`corrembed.embed`)
    :class:`ModelSpec`, :func:`parse_model_spec`, :func:`embed_images`, :func:`read_embeddings`,
    :func:`item_embeddings`
Stage records (:mod:`corrembed.records`)
    :class:`CatalogueReport`, :class:`EmbeddingMeta`, :class:`ScoreRecord`
Diagnostics (:mod:`corrembed.diagnostics`)
    :func:`top_k_neighbours`, :func:`retrieval_scores`, :func:`attribute_scores`,
    :func:`compare_models`, :func:`embedding_map`
Errors
    :class:`CorrEmbedError` (every error a user can hit derives from it)

The packages follow the pipeline's stages: ``ingest``, ``images``, ``models``, ``embed``,
``score``, ``summary``, ``diagnostics``; each package's docstring says what it holds. At the top
sit only the shared base: ``errors``, ``storage`` (atomic writes, file hashes), ``records`` (the
stage hand-over records), ``joblog`` (job logs) and ``tags`` (tag vectors).

Examples
--------
>>> import numpy as np
>>> import corrembed
>>> tags = np.eye(4)[[0, 0, 1, 1, 2, 2, 3, 3]]          # 8 items, 4 tag values
>>> x = tags + 0.05 * np.random.default_rng(0).standard_normal((8, 4))
>>> result = corrembed.corrembed(x, tags, anchors="all")
>>> bool(result.mean > 0.8)
True
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:  # one source of truth: pyproject.toml's version, through the installed package's metadata
    __version__ = version("corrembed")
except PackageNotFoundError:  # imported from a checkout that was never installed (a rule script)
    __version__ = "0+unknown"

#: Public name -> the module that defines it.
_EXPORTS = {
    **dict.fromkeys(
        [
            "corrembed",
            "score_report",
            "ScoreOptions",
            "ScoreReport",
            "CorrEmbedResult",
            "anchor_spearman",
            "allpairs_pearson",
            "allpairs_spearman",
            "bootstrap_interval",
            "mantel_test",
            "resolve_anchors",
        ],
        "corrembed.score",
    ),
    **dict.fromkeys(["category_table", "tag_vectors", "TagVectors", "load_tag_vectors"], "corrembed.tags"),
    **dict.fromkeys(["ingest_catalogue", "IngestOptions", "read_catalogue"], "corrembed.ingest"),
    **dict.fromkeys(["ModelSpec", "parse_model_spec"], "corrembed.models"),
    **dict.fromkeys(["embed_images", "read_embeddings", "item_embeddings"], "corrembed.embed"),
    **dict.fromkeys(["CatalogueReport", "EmbeddingMeta", "ScoreRecord"], "corrembed.records"),
    **dict.fromkeys(
        ["top_k_neighbours", "retrieval_scores", "attribute_scores", "compare_models", "embedding_map"],
        "corrembed.diagnostics",
    ),
    "CorrEmbedError": "corrembed.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Load a public name's module on first use (PEP 562), so that importing the package is cheap."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'corrembed' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

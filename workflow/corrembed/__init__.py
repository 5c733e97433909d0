"""CorrEmbed: how well do a vision model's embedding similarities agree with human tags?

Modules, one per workflow stage or concept:

- :mod:`corrembed.demo`        deterministic demo catalogue (rendered products, tags, interactions)
- :mod:`corrembed.ingest`      manifest -> normalized catalogue (images, tags, rejects)
- :mod:`corrembed.models`      torchvision models: weights, transforms, layers, ImageNet metadata
- :mod:`corrembed.weights`     the weights cache (fetch or explain how to fill it offline)
- :mod:`corrembed.embed`       batched embedding extraction into Parquet shards
- :mod:`corrembed.embedding_store`  the embeddings on-disk format (read/write)
- :mod:`corrembed.tags`        tag vectors and entropy weights
- :mod:`corrembed.score`       the CorrEmbed metric, its variants, intervals and controls
- :mod:`corrembed.summary`     the results table
- :mod:`corrembed.plots`       figures
- :mod:`corrembed.storage`     atomic file writing
- :mod:`corrembed.errors`      errors a user can hit
"""

from importlib.metadata import PackageNotFoundError, version

try:  # one source of truth: pyproject.toml's version, through the installed package's metadata
    __version__ = version("corrembed")
except PackageNotFoundError:  # imported from a checkout that was never installed (a rule script)
    __version__ = "0+unknown"

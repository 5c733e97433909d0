"""Typed records of what the workflow stages hand each other, written and read through one type each.

- :class:`CatalogueReport`: ``results/catalogue/report.json``, written by ingest;
- :class:`ShardMeta`: ``results/embeddings/{model}/shards/shard-{k}-of-{N}.json``, written by
  an embed job, read by the merge;
- :class:`EmbeddingMeta`: ``results/embeddings/{model}/meta.json``, written by the embed stage;
- :class:`ScoreRecord`: ``results/scores/{model}/{weighting}.json``, written by the score stage;
- :class:`DeploymentVariantRecord`: ``results/deployment/{model}/{variant}.json``, written by the
  deployment_variant rule (``results/deployment.csv`` carries :data:`DEPLOYMENT_SCHEMA_VERSION`).

Each record is a dataclass defined once, in its module (:mod:`.catalogue`, :mod:`.embeddings`,
:mod:`.score`, :mod:`.deployment`), over the shared :class:`~corrembed.records.base.Record` (:mod:`.base`). A file is
a JSON object: ``schema_version`` first, then the fields in declaration order, then any keys the
record does not declare (``extra``, kept verbatim so that a stage may add a field before this
code learns about it), so the files keep the keys and values they had before these types existed.

Reading (:meth:`read`, :meth:`from_dict`) is tolerant of older files and strict on newer ones:

- a file without ``schema_version`` was written before the field existed; it is read as version 1
  (the format was the same), and fields it lacks take their defaults (``None`` for fields
  added later, such as a score's ``n_excluded_items``);
- a ``schema_version`` this code does not know (a file written by a newer CorrEmbed, or
  garbage) raises :class:`RecordVersionError` naming the file, the version and what to do.
"""

from .base import Record, RecordVersionError
from .catalogue import CatalogueReport
from .deployment import DEPLOYMENT_SCHEMA_VERSION, DeploymentVariantRecord
from .embeddings import EmbeddingMeta, ShardMeta
from .score import ScoreRecord

__all__ = [
    "DEPLOYMENT_SCHEMA_VERSION",
    "CatalogueReport",
    "DeploymentVariantRecord",
    "EmbeddingMeta",
    "Record",
    "RecordVersionError",
    "ScoreRecord",
    "ShardMeta",
]

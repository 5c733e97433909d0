"""One scored deployment variant of a model (``results/deployment/{model}/{variant}.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import Record

#: The ``schema_version`` column of ``results/deployment.csv``.
DEPLOYMENT_SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class DeploymentVariantRecord(Record):
    """One scored deployment variant of a model, written by the ``deployment_variant`` rule.

    Attributes
    ----------
    model, variant : str
        What was scored (the variant as :func:`corrembed.deployment.parse_variant` spells it).
    reduction : str
        ``full``, ``pcaK`` or ``truncK``.
    dims, bytes_per_item : int
        The stored vector's length and size.
    precision : str
        ``fp32``, ``fp16``, ``int8`` or ``binary``.
    n_items : int
        Items scored.
    retrieval_k : int
        The nDCG cut-off.
    scores : dict
        Weighting -> ``{corrembed, ndcg, n_anchors}`` (per-anchor values in the ``.parquet`` beside it).
    settings : dict or None
        The ``deployment:`` and scoring settings used.
    skipped : str or None
        Why the variant was not scored (a reduction to at least the model's dimension), else None.
    schema_version, extra
        See :class:`~corrembed.records.base.Record`.

    Examples
    --------
    >>> record = DeploymentVariantRecord(model="r18", variant="pca128", reduction="pca128", dims=128,
    ...                                  precision="fp32", bytes_per_item=512, n_items=10, retrieval_k=10)
    >>> DeploymentVariantRecord.from_dict(record.to_dict()) == record
    True
    """

    WHAT: ClassVar[str] = "deployment variant file"
    STAGE: ClassVar[str] = "the deployment_variant rule for this model and variant"

    model: str
    variant: str
    reduction: str
    dims: int
    precision: str
    bytes_per_item: int
    n_items: int
    retrieval_k: int
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] | None = None
    skipped: str | None = None
    schema_version: int = Record.SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

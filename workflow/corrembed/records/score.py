"""One model x weighting score (``results/scores/{model}/{weighting}.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import Record


@dataclass(frozen=True, kw_only=True)
class ScoreRecord(Record):
    """One model x weighting score (``results/scores/{model}/{weighting}.json``).

    Attributes:
        model, weighting: what was scored; settings: the config's ``scoring:`` mapping;
        n_excluded_embeddings, n_excluded_items: unusable embeddings / items excluded before
            scoring.
        corrembed, ci_low, ci_high: CorrEmbed and its bootstrap interval; allpairs_pearson,
            anchor_spearman, allpairs_spearman (+ _method, _pairs, _se): the variants;
            n_items, n_anchors, n_anchors_skipped, n_anchors_zero_tags; include_self, seed,
            bootstrap, confidence; control_random, control_shuffled_embeddings,
            control_shuffled_tags; mantel_p, permutations; device: as
            :class:`corrembed.score.ScoreReport` (NaN is written as null).
        schema_version, extra: see :class:`Record` (report fields added by newer scoring code
            land in ``extra`` and are written back unchanged).

    Examples
    --------
    >>> record = ScoreRecord.from_report({"corrembed": 0.21, "n_items": 3000, "new_statistic": 1.5},
    ...                                  model="r18", weighting="binary")
    >>> record.corrembed, record.get("new_statistic"), list(record.to_dict())[-1]
    (0.21, 1.5, 'new_statistic')
    """

    WHAT: ClassVar[str] = "score file"
    STAGE: ClassVar[str] = "the score stage for this model and weighting"

    model: str
    weighting: str
    settings: dict[str, Any] | None = None
    n_excluded_embeddings: int = 0
    n_excluded_items: int = 0
    corrembed: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    allpairs_pearson: float | None = None
    anchor_spearman: float | None = None
    allpairs_spearman: float | None = None
    allpairs_spearman_method: str | None = None
    allpairs_spearman_pairs: int | None = None
    allpairs_spearman_se: float | None = None
    n_items: int | None = None
    n_anchors: int | None = None
    n_anchors_skipped: int | None = None
    n_anchors_zero_tags: int | None = None
    include_self: bool | None = None
    seed: int | None = None
    bootstrap: int | None = None
    confidence: float | None = None
    control_random: float | None = None
    control_shuffled_embeddings: float | None = None
    control_shuffled_tags: float | None = None
    mantel_p: float | None = None
    permutations: int | None = None
    device: str | None = None
    schema_version: int = Record.SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_report(cls, report: dict[str, Any], **extra: Any) -> ScoreRecord:
        """The record of a score report's scalars (:meth:`corrembed.score.ScoreReport.as_dict`) plus
        the workflow's fields (``model``, ``weighting``, ``settings``, ``n_excluded_*``).

        The file keeps the key order the score stage wrote before this type existed: the
        workflow's fields, then the report's.
        """
        return cls.from_dict({**extra, **report})

    def get(self, key: str, default: Any = None) -> Any:
        """A declared field or an ``extra`` key by name (for table building)."""
        if key in self.__dataclass_fields__ and key not in ("extra",):
            return getattr(self, key)
        return self.extra.get(key, default)

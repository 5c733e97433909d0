"""Scoring options: one frozen object that every entry point reads, and the defaults.

Every public entry point of :mod:`corrembed.score` takes ``options`` (a :class:`ScoreOptions`)
and/or keyword overrides of its fields, so ``corrembed(x, tags, anchors="all")`` and
``corrembed(x, tags, ScoreOptions(anchors="all"))`` are the same call.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

import numpy as np

from ..errors import ScoringError

#: MiB the (b, n) working arrays of one block may take when ``block_size`` is not given.
DEFAULT_MEMORY_BUDGET_MB = 512

#: All-pairs Spearman is exact up to this many pairs (n ~ 20k); above it, pairs are sampled.
DEFAULT_MAX_EXACT_PAIRS = 200_000_000

#: Number of pairs drawn when the all-pairs Spearman is sampled.
DEFAULT_SPEARMAN_SAMPLE_PAIRS = 1_000_000

AnchorsArg = int | Literal["all"] | np.ndarray
Strategy = Literal["auto", "blockwise", "factored"]

#: Workflow config keys (``scoring:`` section) whose option field has another name.
_CONFIG_NAMES = {"max_exact_spearman_pairs": "max_exact_pairs"}


@dataclass(frozen=True)
class ScoreOptions:
    """How to score: which anchors, which seeds, how much memory, which device.

    Attributes
    ----------
    anchors : int, "all" or (k,) integer array
        Number of anchors drawn with ``seed`` (all items if >= n), ``"all"``, or explicit item
        indices (order kept, duplicates allowed).
    seed : int
        Seed of the anchor draw, the bootstrap, the pair sample and the controls.
    include_self : bool
        Compare each anchor with itself too (the paper's choice) or not (default).
    bootstrap : int
        Bootstrap resamples of the per-anchor mean (:func:`score_report`).
    confidence : float
        Coverage of the bootstrap interval, in (0, 1).
    controls : bool
        Compute the three controls in :func:`score_report`.
    permutations : int
        Mantel permutations in :func:`score_report` (0 = no test).
    block_size : int or None
        Anchors per similarity block; None = from ``memory_budget_mb``.
    memory_budget_mb : float
        Bound on the (b, n) working blocks, MiB.
    max_exact_pairs : int
        The all-pairs Spearman is exact up to this many pairs, sampled above.
    sample_pairs : int
        Pairs drawn when the all-pairs Spearman is sampled.
    strategy : {"auto", "blockwise", "factored"}
        Route of the Pearson statistics (both exact; "auto" picks the cheaper by flop count).
    device : str or None
        None / "cpu" (numpy), "cuda" / "cuda:N" (torch on a GPU), "torch-cpu" (torch on the CPU),
        "auto" ("cuda" when torch sees a GPU, else "cpu").
    allow_tf32 : bool
        Let float32 GPU products use TF32 (faster, ~1e-3 relative error); off by default.

    Examples
    --------
    >>> opts = ScoreOptions(anchors="all", seed=7)
    >>> opts.with_overrides(device="cpu").device
    'cpu'
    """

    anchors: AnchorsArg = 1000
    seed: int = 42
    include_self: bool = False
    bootstrap: int = 1000
    confidence: float = 0.95
    controls: bool = True
    permutations: int = 0
    block_size: int | None = None
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB
    max_exact_pairs: int = DEFAULT_MAX_EXACT_PAIRS
    sample_pairs: int = DEFAULT_SPEARMAN_SAMPLE_PAIRS
    strategy: Strategy = "auto"
    device: str | None = None
    allow_tf32: bool = False

    def with_overrides(self, **overrides) -> ScoreOptions:
        """A copy with the given fields replaced.

        Raises
        ------
        TypeError
            For a name that is not a field (the valid names are listed).
        """
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown scoring option(s) {unknown}; valid options: {sorted(names)}")
        return replace(self, **overrides) if overrides else self

    @classmethod
    def from_config(cls, scoring: dict) -> ScoreOptions:
        """Options from the workflow config's ``scoring`` section (validated by the schema).

        Keys that are not scoring options (``item_embedding``) are ignored;
        ``max_exact_spearman_pairs`` maps to ``max_exact_pairs``.

        Examples
        --------
        >>> ScoreOptions.from_config({"anchors": "all", "max_exact_spearman_pairs": 10}).max_exact_pairs
        10
        """
        names = {f.name for f in fields(cls)}
        values = {_CONFIG_NAMES.get(k, k): v for k, v in scoring.items()}
        return cls(**{k: v for k, v in values.items() if k in names})


def resolve_options(options: ScoreOptions | None, overrides: dict, **defaults) -> ScoreOptions:
    """The options of one call: ``options`` (or the entry point's ``defaults``) with ``overrides``.

    Parameters
    ----------
    options : ScoreOptions or None
        Passed by the caller; when None, ``ScoreOptions(**defaults)`` (an entry point's own
        defaults, e.g. ``anchors="all"`` for :func:`pearson_scores`).
    overrides : dict
        Keyword arguments of the call, field name -> value.
    """
    if options is not None and not isinstance(options, ScoreOptions):
        raise ScoringError(f"options must be a ScoreOptions, got {type(options).__name__}")
    base = options if options is not None else ScoreOptions(**defaults)
    return base.with_overrides(**overrides)

"""Is the winner really better? Paired bootstrap over the same anchors for every pair of models.

Input: each model's per-anchor correlations r_a on the SAME anchor items (rows aligned; NaN where
r_a is undefined). For a pair (A, B), d_a = r_a(A) - r_a(B) on the anchors where both are defined;
the observed difference is the mean of d_a (this equals CorrEmbed(A) - CorrEmbed(B) whenever both
models define the same anchors). Each bootstrap resample draws k anchor positions with replacement
(k = all anchors); the SAME draws serve every pair (paired, and one seeded stream), and a resample's
difference is the mean of d over its drawn anchors where d is defined.

- interval: percentile interval of the resampled differences;
- p-value (two-sided): p = min(1, 2 * min(#{diff* <= 0} + 1, #{diff* >= 0} + 1) / (B + 1)), the
  bootstrap tail probability of "no difference" with the +1 that keeps p > 0 for a finite B;
- multiple pairs: p adjusted by Benjamini-Hochberg (``correction="fdr"``, as rsatoolbox's default),
  ``"bonferroni"`` or ``"none"``; a pair is *tied* when its adjusted p >= alpha.

Ranks follow each model's own CorrEmbed (mean of its defined r_a), best = 1; each model's tied set
lists the models it does not differ from significantly.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import polars as pl

from ..errors import ScoringError
from ..score import bootstrap_interval

PAIR_COLUMNS = ("model_a", "model_b", "n_paired", "difference", "ci_low", "ci_high", "p_value", "p_adjusted", "tied")
RANK_COLUMNS = ("model", "rank", "corrembed", "ci_low", "ci_high", "tied_with")


@dataclass(frozen=True)
class ModelComparison:
    """Result of :func:`compare_models`.

    Attributes:
        ranking: polars DataFrame (:data:`RANK_COLUMNS`), best first; ``tied_with`` a list of names.
        pairs: polars DataFrame (:data:`PAIR_COLUMNS`), one row per pair, model_a ranked above model_b.
        alpha, correction, resamples, confidence: the settings used.
    """

    ranking: pl.DataFrame
    pairs: pl.DataFrame
    alpha: float
    correction: str
    resamples: int
    confidence: float


def adjust_p(p: np.ndarray, correction: str) -> np.ndarray:
    """Adjusted p-values: "fdr" (Benjamini-Hochberg step-up), "bonferroni" or "none"."""
    p = np.asarray(p, dtype=np.float64)
    if correction == "none" or p.size == 0:
        return p.copy()
    if correction == "bonferroni":
        return np.minimum(1.0, p * p.size)
    if correction == "fdr":
        order = np.argsort(p)
        scaled = p[order] * p.size / np.arange(1, p.size + 1)
        stepped = np.minimum.accumulate(scaled[::-1])[::-1]
        out = np.empty_like(p)
        out[order] = np.minimum(1.0, stepped)
        return out
    raise ScoringError(f"correction must be 'fdr', 'bonferroni' or 'none', got {correction!r}")


def _draw_chunks(k: int, resamples: int, seed: int, draws):
    """Yield (c, k) arrays of anchor positions; ``draws`` (B, k) given explicitly (tests) or seeded."""
    if draws is not None:
        draws = np.asarray(draws, dtype=np.int64)
        if draws.ndim != 2 or draws.shape[1] != k:
            raise ScoringError(f"draws must have shape (resamples, {k}), got {draws.shape}")
        yield draws
        return
    rng = np.random.default_rng(seed)
    chunk = max(1, 2**22 // max(k, 1))
    for start in range(0, resamples, chunk):
        yield rng.integers(0, k, size=(min(chunk, resamples - start), k))


def _resampled_means(d: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per row of ``idx``, the mean of the finite entries of d[idx] (NaN when none)."""
    values = d[idx]
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        return np.where(finite, values, 0.0).sum(axis=1) / finite.sum(axis=1)


def compare_models(
    per_anchor: dict[str, np.ndarray],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    alpha: float = 0.05,
    correction: str = "fdr",
    seed: int = 42,
    draws=None,
) -> ModelComparison:
    """Rank models and test every pair by a paired bootstrap over anchors (module docstring).

    Parameters
    ----------
    per_anchor : dict of str to (k,) float ndarray
        Model name -> r_a on the same anchors, rows aligned, NaN = undefined.
    resamples, confidence, seed
        Bootstrap settings (as the score's interval).
    alpha : float
        Significance level for "tied".
    correction : str
        Multiple-comparison correction over all pairs (:func:`adjust_p`).
    draws : (B, k) int ndarray, optional
        Explicit resample positions instead of the seeded draw (for checks by hand).

    Returns
    -------
    ModelComparison
        ``ranking`` (one row per model: rank, CorrEmbed, interval, tied_with) and ``pairs``.

    Examples
    --------
    >>> cmp = compare_models({"a": np.array([0.3, 0.2, 0.4]), "b": np.array([0.1, 0.1, 0.2])}, resamples=200)
    >>> cmp.ranking["model"].to_list()
    ['a', 'b']
    """
    names = list(per_anchor)
    if len(names) < 1:
        raise ScoringError("compare_models needs at least one model")
    r = np.column_stack([np.asarray(per_anchor[m], dtype=np.float64) for m in names])
    k = r.shape[0]
    if any(np.asarray(per_anchor[m]).shape != (k,) for m in names):
        raise ScoringError("every model's per-anchor values must be aligned on the same anchors")
    means = np.array([np.nanmean(r[:, j]) if np.isfinite(r[:, j]).any() else np.nan for j in range(len(names))])
    order = sorted(range(len(names)), key=lambda j: (-means[j] if np.isfinite(means[j]) else np.inf, names[j]))
    pairs = list(combinations(order, 2))  # (better, worse) by rank
    diffs = [r[:, a] - r[:, b] for a, b in pairs]
    boot = [[] for _ in pairs]
    n_boot = 0
    for idx in _draw_chunks(k, resamples, seed, draws):
        n_boot += idx.shape[0]
        for p, d in enumerate(diffs):
            boot[p].append(_resampled_means(d, idx))
    rows, pvals = _pair_rows(pairs, diffs, boot, names, confidence)
    adjusted = adjust_p(np.array(pvals), correction) if pvals else np.empty(0)
    for row, q in zip(rows, adjusted):
        row += [float(q), bool(not q < alpha)]  # NaN p (nothing paired) counts as tied
    pair_table = (
        pl.DataFrame(rows, schema=list(PAIR_COLUMNS), orient="row")
        if rows
        else pl.DataFrame(
            schema={
                c: t for c, t in zip(PAIR_COLUMNS, (pl.String, pl.String, pl.Int64) + (pl.Float64,) * 5 + (pl.Boolean,))
            }
        )
    )
    ranking_table = _ranking_table(r, names, means, order, rows, resamples, confidence, seed)
    return ModelComparison(ranking_table, pair_table, alpha, correction, n_boot, confidence)


def _pair_rows(pairs, diffs, boot, names, confidence) -> tuple[list[list], list[float]]:
    """One row per (better, worse) pair: names, anchors paired, mean difference, interval, p."""
    rows, pvals = [], []
    tail = (1.0 - confidence) / 2.0
    for p, (a, b) in enumerate(pairs):
        d = diffs[p]
        both = np.isfinite(d)
        dist = np.concatenate(boot[p]) if boot[p] else np.empty(0)
        dist = dist[np.isfinite(dist)]
        if not both.any() or dist.size == 0:
            observed = low = high = pval = float("nan")
        else:
            observed = float(d[both].mean())
            low, high = (float(v) for v in np.quantile(dist, [tail, 1.0 - tail]))
            below, above = int((dist <= 0).sum()), int((dist >= 0).sum())
            pval = min(1.0, 2.0 * min(below + 1, above + 1) / (dist.size + 1))
        pvals.append(pval)
        rows.append([names[a], names[b], int(both.sum()), observed, low, high, pval])
    return rows, pvals


def _ranking_table(r, names, means, order, rows, resamples, confidence, seed) -> pl.DataFrame:
    """One row per model in rank order: mean, bootstrap interval, the models it is tied with."""
    tied = {m: [] for m in names}
    for row in rows:
        if row[-1]:
            tied[row[0]].append(row[1])
            tied[row[1]].append(row[0])
    ranking = []
    for rank, j in enumerate(order, start=1):
        values = r[:, j]
        ci = bootstrap_interval(values, resamples, confidence, seed) if np.isfinite(values).any() else (np.nan,) * 2
        tied_by_rank = sorted(tied[names[j]], key=lambda m: order.index(names.index(m)))
        ranking.append(
            (
                names[j],
                rank,
                float(means[j]),
                float(ci[0]),
                float(ci[1]),
                tied_by_rank,
            )
        )
    return pl.DataFrame(
        ranking,
        schema={
            "model": pl.String,
            "rank": pl.Int64,
            "corrembed": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
            "tied_with": pl.List(pl.String),
        },
        orient="row",
    )


def align_per_anchor(
    tables: dict[str, pl.DataFrame], column: str = "r_pearson"
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per-anchor tables (item_id, ``column``) of several models, on the anchors they all share.

    Models scoring the same items draw the same anchors (same seed), so normally every anchor is
    shared; an item excluded for one model (unusable embedding) shifts the draw, and only the
    anchors common to all are compared. Returns (shared anchor item ids in the first model's
    order, model -> (k,) values aligned on them).
    """
    names = list(tables)
    shared = set(tables[names[0]]["item_id"].to_list())
    for name in names[1:]:
        shared &= set(tables[name]["item_id"].to_list())
    ids = [i for i in tables[names[0]]["item_id"].to_list() if i in shared]
    if not ids:
        raise ScoringError(f"the models {', '.join(names)} share no anchor item: nothing to compare")
    order = pl.DataFrame({"item_id": ids})
    return ids, {
        name: order.join(t.select("item_id", column), on="item_id", how="left")[column].to_numpy().astype(np.float64)
        for name, t in tables.items()
    }


def with_rank_columns(summary: pl.DataFrame, rankings: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """``summary`` with its ``rank`` and ``tied_with`` columns filled for each (model, weighting).

    rankings: weighting -> that weighting's ranking table (model, rank, tied_with as a list or a
    ";"-joined string, as ``ranking.csv`` holds it). Rows without a ranking get nulls; the column
    order of ``summary`` is kept (the columns are added at the end when it lacks them).
    """
    parts = []
    for weighting, table in rankings.items():
        tied = table["tied_with"]
        if tied.dtype == pl.List(pl.String):
            tied = tied.list.join(";")
        parts.append(
            pl.DataFrame(
                {
                    "model": table["model"].cast(pl.String),
                    "weighting": [weighting] * table.height,
                    "rank": table["rank"].cast(pl.Int64),
                    "tied_with": tied.cast(pl.String).fill_null(""),
                }
            )
        )
    columns = list(dict.fromkeys([*summary.columns, "rank", "tied_with"]))
    base = summary.drop(["rank", "tied_with"], strict=False)
    if not parts:
        return base.with_columns(rank=pl.lit(None, pl.Int64), tied_with=pl.lit(None, pl.String)).select(columns)
    return base.join(pl.concat(parts), on=["model", "weighting"], how="left").select(columns)

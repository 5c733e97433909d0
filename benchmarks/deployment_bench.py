"""Benchmark of the deployment study (issue 23): the whole default study for one model against that
model's default score stage, in the same invocation.

Synthetic catalogue (``score_bench.synthetic``): n items, d = 1280 float32 embeddings driven by
t = 300 tag slots in 8 categories; two weightings (binary, and the same slots weighted per
category as entropy weights would) as the workflow scores by default.

- ``score``: the score stage of the model, once per weighting (:func:`corrembed.score.score_report`
  with the workflow's default ``scoring:`` settings, embeddings normalized in place as the stage
  does; the stage's own copy is made outside the timing).
- ``study``: the default deployment study of the same model (config defaults of ``deployment:``):
  the PCA basis (:func:`corrembed.deployment.pca_basis`), every variant through
  :func:`corrembed.deployment.score_variant` on the score's anchors (both weightings per call; the
  full variant takes the score's per-anchor values, as the rule does; the ideal DCG of the nDCG,
  which depends on the tags only, once per weighting) and the deployment table with
  its paired tests (:func:`corrembed.deployment.deployment_table`). Per-part seconds are printed.
- ``ratio`` = study / score. Each is the best of ``--repeat`` alternating runs (shared machine).

    .venv/bin/python benchmarks/deployment_bench.py [--n 100000] [--d 1280] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_bench import machine, synthetic, workflow_default_options  # noqa: E402


def deployment_defaults() -> dict:
    schema = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"
    spec = yaml.safe_load(schema.read_text())["properties"]["deployment"]["properties"]
    return {k: v["default"] for k, v in spec.items() if "default" in v}


def weighted(tags, categories: int, seed: int = 1):
    """The tags with one weight in (0, 1] per category (as entropy weights), slots in category order."""
    rng = np.random.default_rng(seed)
    t = tags.shape[1]
    sizes = np.full(categories, t // categories)
    sizes[: t - sizes.sum()] += 1
    weights = np.repeat(rng.uniform(0.2, 1.0, categories), sizes)
    return (tags @ sp.diags(weights)).tocsr()


def time_score(x, matrices, options):
    from corrembed.score import score_report

    total, reports = 0.0, {}
    for w, tags in matrices.items():
        own = x.copy()  # the stage reads its own array from the shard
        start = time.perf_counter()
        reports[w] = score_report(own, tags, options)
        total += time.perf_counter() - start
        del own
    return total, reports


def time_study(x, matrices, options, reports, settings):
    from corrembed.deployment import ModelCost, deployment_table, pca_basis, score_variant, variants_for
    from corrembed.deployment.study import ideal_dcg

    parts = {}
    start = time.perf_counter()
    basis = pca_basis(x)
    parts["pca_basis"] = time.perf_counter() - start
    first = next(iter(reports.values()))
    anchors = first.anchors
    full = {w: r.per_anchor_pearson for w, r in reports.items()}
    t0 = time.perf_counter()
    ideal = {w: ideal_dcg(tags, anchors, settings["retrieval_k"]) for w, tags in matrices.items()}
    parts["ideal_dcg"] = time.perf_counter() - t0
    scores = []
    for variant in variants_for(settings["variants"], x.shape[1]):
        t0 = time.perf_counter()
        scores.append(
            score_variant(
                x,
                matrices,
                anchors,
                variant,
                options=options,
                basis=basis if variant.reduction == "pca" else None,
                retrieval_k=settings["retrieval_k"],
                full_per_anchor=full,
                ideal=ideal,
            )
        )
        parts[variant.name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = deployment_table({"m": scores}, {"m": ModelCost()}, {"m": x.shape[0]}, resamples=options.bootstrap)
    parts["table"] = time.perf_counter() - t0
    return time.perf_counter() - start, parts, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=1280)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    x, tags = synthetic(args.n, args.d, 300, 8)
    matrices = {"binary": tags, "entropy": weighted(tags, 8)}
    options = workflow_default_options()
    settings = deployment_defaults()
    best_score, best_study, best_parts, table = np.inf, np.inf, None, None
    for _ in range(args.repeat):
        score_s, reports = time_score(x, matrices, options)
        study_s, parts, table = time_study(x, matrices, options, reports, settings)
        best_score = min(best_score, score_s)
        if study_s < best_study:
            best_study, best_parts = study_s, parts
    print(f"<!-- {machine()}; load average {os.getloadavg()[0]:.1f} at the end -->")
    print(f"n = {args.n:,}, d = {args.d}, variants: full + {', '.join(settings['variants'])}")
    print("\n| n | d | score stage (2 weightings) s | deployment study s | ratio |")
    print("|---|---|---|---|---|")
    print(f"| {args.n:,} | {args.d} | {best_score:.1f} | {best_study:.1f} | {best_study / best_score:.2f} |")
    print("\nstudy parts (s): " + ", ".join(f"{k} {v:.2f}" for k, v in best_parts.items()))
    shown = table.filter(table["weighting"] == "binary").select("variant", "bytes_per_item", "corrembed", "p_vs_full")
    print(shown)


if __name__ == "__main__":
    main()

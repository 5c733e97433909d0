"""Issue 24 at scale: tag audit, 4-model agreement and retrieval metrics against the score stage.

A seeded synthetic catalogue (``score_bench.synthetic``: n items, d-dim float32 embeddings partly
driven by 8 skewed tag categories) is scored with the workflow's default scoring settings
(:func:`corrembed.score.score_report`: 1,000 anchors, bootstrap, controls) as the baseline, and in
the same invocation:

- ``audit``: :func:`~corrembed.diagnostics.audit.audit_neighbours` (every item's 10 nearest, the
  blocked top-k of the neighbour sheets) for each of ``--audit-models`` consensus models, then
  :func:`~corrembed.diagnostics.audit.tag_audit` over all 8 categories;
- ``agreement``: :func:`~corrembed.diagnostics.agreement.model_agreement` of 4 models (the
  embedding and 3 noisy rotations of it): CKA over all items, mutual 10-NN on 1,000 queries;
- ``retrieval``: :func:`~corrembed.diagnostics.retrieval.retrieval_scores` on the 1,000 anchors at
  k = 10 (nDCG, precision, mAP@k, Recall@k, R-precision, mAP@R, MRR for every category), and its
  new full-ranking part alone (:func:`~corrembed.diagnostics.ranking_metrics.ranking_metrics`).

Each is reported as wall seconds and as a ratio to the score stage's wall time.

Usage::

    .venv/bin/python benchmarks/audit_bench.py --n 20000 --dim 1280 [--audit-models 1] [--skip audit]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--slots", type=int, default=400)
    parser.add_argument("--audit-models", type=int, default=1)
    parser.add_argument("--skip", nargs="*", default=[], choices=["audit", "agreement", "retrieval"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from score_bench import synthetic, workflow_default_options

    from corrembed.diagnostics.agreement import model_agreement
    from corrembed.diagnostics.audit import audit_neighbours, tag_audit
    from corrembed.diagnostics.categories import category_slots, membership
    from corrembed.diagnostics.ranking_metrics import ranking_metrics
    from corrembed.diagnostics.retrieval import retrieval_scores
    from corrembed.score import resolve_anchors, score_report

    x, tags = synthetic(args.n, args.dim, args.slots, 8)
    per = args.slots // 8
    slot_category = np.repeat([f"c{j}" for j in range(8)], [per + (j < args.slots - 8 * per) for j in range(8)])
    slot_value = np.array([f"v{i}" for i in range(args.slots)])
    ids = np.array([f"i{i}" for i in range(args.n)])
    rng = np.random.default_rng(1)
    results = {"n": args.n, "dim": args.dim, "load_before": os.getloadavg()[0]}

    options = workflow_default_options()
    results["score"], _ = timed(lambda: score_report(x.copy(), tags, options))
    print(f"score stage (defaults): {results['score']:.1f} s", flush=True)
    anchors = resolve_anchors(options.anchors, args.n, options.seed)

    if "retrieval" not in args.skip:
        results["retrieval"], _ = timed(lambda: retrieval_scores(x, tags, slot_category, anchors, k=10))
        members = {c: membership(tags, s) for c, s in category_slots(slot_category).items()}
        results["ranking_metrics"], _ = timed(lambda: ranking_metrics(x, members, anchors))
        print(f"retrieval: {results['retrieval']:.1f} s (full-ranking part {results['ranking_metrics']:.1f} s)")

    if "agreement" not in args.skip:
        models = {"m0": x}
        for j in range(1, 4):
            q = np.linalg.qr(rng.standard_normal((args.dim, args.dim)))[0].astype(np.float32)
            models[f"m{j}"] = x @ q + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(2.0 * j)
        results["agreement"], table = timed(lambda: model_agreement(models, k=10, n_queries=1000))
        results["agreement_table"] = table.to_dicts()
        print(f"agreement (4 models): {results['agreement']:.1f} s\n{table}", flush=True)
        del models

    if "audit" not in args.skip:

        def audit():
            nbs = {f"m{j}": audit_neighbours(x if j == 0 else x[:, ::-1].copy(), 10) for j in range(args.audit_models)}
            return tag_audit(tags, slot_category, slot_value, ids, nbs)

        results["audit"], table = timed(audit)
        results["audit_models"] = args.audit_models
        print(f"audit ({args.audit_models} model(s), {table.height} rows): {results['audit']:.1f} s", flush=True)

    results["load_after"] = os.getloadavg()[0]
    for key in ("retrieval", "ranking_metrics", "agreement", "audit"):
        if key in results:
            results[f"{key}_ratio"] = results[key] / results["score"]
    print(json.dumps({k: v for k, v in results.items() if k != "agreement_table"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()

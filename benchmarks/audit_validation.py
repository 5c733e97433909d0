"""Tag-audit validation on a finished workflow run: flip 5 % of one category's values, find them.

Reads ``results/embeddings/{model}/part-00000.parquet`` for the given models and
``results/tags/binary/vectors.npz`` of a run (read only), computes each model's audit neighbours
once (every item's k nearest, the workflow's search), adds a Gaussian random embedding of the same
shape as a pure-chance control, then for every category (or ``--categories``) and each of
``--seeds`` flips a seeded ``--fraction`` of the single-valued items to another value of the
category (uniformly among its other values) and scores the flipped items with the chance-corrected
``suspicion``, the ``calibrated_suspicion`` and the ``naive_suspicion`` (1 - agreement): ROC AUC
and precision@#flipped, mean over the seeds. Prints a markdown table (and writes it with ``--out``).

Usage::

    .venv/bin/python benchmarks/audit_validation.py /work/before/results \\
        --models mobilenet_v2_coral efficientnet_lite0 --random mobilenet_v2_random [--out docs/...md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--models", nargs="+", required=True, help="pretrained models (each judged alone)")
    parser.add_argument("--random", nargs="*", default=[], help="random-init models")
    parser.add_argument("--categories", nargs="*")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from corrembed.diagnostics.agreement import aligned_embeddings
    from corrembed.diagnostics.audit import audit_neighbours, auditable_categories
    from corrembed.diagnostics.audit_validation import flip_validation
    from corrembed.diagnostics.inputs import load_model_inputs

    vectors = args.results / "tags" / "binary" / "vectors.npz"
    names = [*args.models, *args.random]
    inputs = {
        m: load_model_inputs(args.results / "embeddings" / m / "part-00000.parquet", vectors, "first") for m in names
    }
    ids, embeddings = aligned_embeddings(
        {m: i.embeddings for m, i in inputs.items()}, {m: i.item_ids for m, i in inputs.items()}
    )
    tags = inputs[names[0]].tags
    rows, _ = inputs[names[0]].index_of(ids)
    matrix = tags.matrix[rows]
    rng = np.random.default_rng(0)
    embeddings["gaussian (chance)"] = rng.standard_normal(embeddings[names[0]].shape).astype(np.float32)
    neighbours = {m: {m: audit_neighbours(e, args.k)} for m, e in embeddings.items()}
    categories = args.categories or auditable_categories(matrix, tags.slot_category)
    tables = [
        flip_validation(matrix, tags.slot_category, categories, neighbours, fraction=args.fraction, seed=seed)
        for seed in args.seeds
    ]
    table = (
        pl.concat(tables)
        .group_by("category", "embedding", "score", maintain_order=True)
        .agg(
            pl.col("n_items").first(),
            pl.col("n_flipped").first(),
            pl.col("auc").mean(),
            pl.col("precision_at_flipped").mean(),
        )
    )
    wide = table.pivot(
        on="score", index=["category", "embedding", "n_items", "n_flipped"], values=["auc", "precision_at_flipped"]
    )
    lines = [
        f"n = {len(ids)} items, k = {args.k}, {args.fraction:.0%} flipped, mean over seeds {args.seeds}",
        "",
        "| category | embedding | flipped / items | AUC suspicion | AUC calibrated | AUC naive "
        "| P@#flipped suspicion | P@#flipped calibrated | P@#flipped naive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in wide.iter_rows(named=True):
        lines.append(
            f"| {r['category']} | {r['embedding']} | {r['n_flipped']} / {r['n_items']} | {r['auc_suspicion']:.3f} | "
            f"{r['auc_calibrated_suspicion']:.3f} | {r['auc_naive_suspicion']:.3f} | "
            f"{r['precision_at_flipped_suspicion']:.3f} | {r['precision_at_flipped_calibrated_suspicion']:.3f} | "
            f"{r['precision_at_flipped_naive_suspicion']:.3f} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Run the deployment study on a finished workflow run's results (read only) into another folder.

For the README/docs table on the real catalogue: reads ``{results}/embeddings/{model}``,
``{results}/tags/{weighting}`` and ``{results}/scores/{model}`` of a run of ``--config``, writes the
PCA bases, the variant files, ``deployment.csv``, ``recommendation.json`` and the figures under
``--out`` (the same layout as the workflow's ``results/``), through the same library calls as the
deployment rules. Models whose scores are not there yet are skipped (rerun when they are).

    .venv/bin/python benchmarks/deployment_real.py --results /path/to/results \\
        --config examples/fashion-product-224.yaml --out /tmp/deployment-real
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"


def section(config: dict, name: str) -> dict:
    """The config's ``name`` section over the schema's defaults."""
    spec = yaml.safe_load(SCHEMA.read_text())["properties"][name]["properties"]
    return {**{k: v["default"] for k, v in spec.items() if "default" in v}, **config.get(name, {})}


def main() -> None:
    from corrembed.deployment.stages import deployment_paths, run_study, run_variant, write_pca_basis

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    settings = section(config, "deployment")
    scoring = section(config, "scoring")
    comparison = {**section(config, "diagnostics").get("comparison", {})}
    comparison = {"alpha": comparison.get("alpha", 0.05), "correction": comparison.get("correction", "fdr")}
    weightings = config.get("tags", {}).get("weightings", ["binary", "entropy"])
    res, out = args.results, args.out
    vectors = {w: res / f"tags/{w}/vectors.npz" for w in weightings}
    variants = list(dict.fromkeys(["full", *settings["variants"]]))
    settings = {k: v for k, v in settings.items() if k not in ("variants", "enabled")}
    files, models = [], []
    for model in config["models"]:
        per_anchor = {w: res / f"scores/{model}/{w}.per_anchor.parquet" for w in weightings}
        shard = res / f"embeddings/{model}/part-00000.parquet"
        if not all(p.exists() for p in per_anchor.values()):
            print(f"{model}: no scores yet, skipped")
            continue
        models.append(model)
        basis = out / f"deployment/{model}/pca_basis.npz"
        if not basis.exists():
            write_pca_basis(basis, shard, vectors[weightings[0]], scoring["item_embedding"])
        for variant in variants:
            table, record = out / f"deployment/{model}/{variant}.parquet", out / f"deployment/{model}/{variant}.json"
            files.append((str(table), str(record)))
            if record.exists():
                continue
            start = time.perf_counter()
            run_variant(
                model=model,
                variant=variant,
                shard=shard,
                vectors=vectors,
                per_anchor=per_anchor,
                basis=basis if variant.startswith("pca") else None,
                settings=settings,
                scoring=scoring,
                table_path=table,
                record_path=record,
            )
            print(f"{model} {variant}: {time.perf_counter() - start:.1f} s", flush=True)
    paths = deployment_paths(out)
    run_study(
        variant_files=files,
        metas={m: res / f"embeddings/{m}/meta.json" for m in models},
        model_specs={m: config["models"][m] for m in models},
        categories={w: res / f"tags/{w}/categories.csv" for w in weightings},
        comparison=comparison,
        scoring=scoring,
        csv_path=paths["csv"],
        recommendation_path=paths["recommendation"],
        bytes_figure=paths["bytes_figure"],
        speed_figure=paths["speed_figure"],
    )
    print(f"wrote {paths['csv']}")
    print(markdown(paths["csv"], "binary"))


def markdown(csv_path, weighting: str) -> str:
    """A Markdown table: per model, full CorrEmbed [CI], then each variant's difference from full
    (bold: not significant after correction), and the cheapest configuration tied with the best."""
    import polars as pl

    table = pl.read_csv(csv_path).filter(pl.col("weighting") == weighting)
    variants = [v for v in dict.fromkeys(table["variant"].to_list()) if v != "full"]
    lines = [
        "| model | full [95 % CI] | " + " | ".join(variants) + " |",
        "|---|---|" + "---|" * len(variants),
    ]
    for (model,), rows in table.group_by("model", maintain_order=True):
        full = rows.filter(pl.col("variant") == "full").row(0, named=True)
        cells = [f"{full['corrembed']:.3f} [{full['ci_low']:.3f}, {full['ci_high']:.3f}]"]
        by_variant = {r["variant"]: r for r in rows.iter_rows(named=True)}
        for v in variants:
            r = by_variant.get(v)
            text = "" if r is None else f"{r['delta_vs_full']:+.4f}"
            cells.append(f"**{text}**" if r is not None and r["tied_with_full"] else text)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

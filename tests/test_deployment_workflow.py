"""The deployment rules on a tiny demo run: documented columns, the full rows equal the scores,
the summary's columns, the report section, and a `deployment:` change re-scores only variants."""

from __future__ import annotations

import copy
import json
import re

import polars as pl
import pytest

from corrembed.deployment import DEPLOYMENT_COLUMNS, SUMMARY_DEPLOYMENT_COLUMNS
from corrembed.deployment.report import deployment_section
from corrembed.diagnostics.report import render_report
from workflow_runner import check, demo_config, random_model, snakemake, write_config

pytestmark = pytest.mark.slow

TINY = demo_config(
    n_items=40,
    n_users=30,
    seed=4,
    embed={"batch_size": 16, "num_workers": 0, "device": "cpu", "threads": 1},
    models={"r18": random_model("resnet18", 64, 56), "mnv3": random_model("mobilenet_v3_small", 64, 56)},
    scoring={"anchors": "all", "bootstrap": 50, "seed": 42},
) | {
    "diagnostics": {"enabled": False},
    "deployment": {"variants": ["pca16", "pca4096", "fp16", "int8", "binary", "pca16+int8", "truncate32"]},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("deployment")
    write_config(directory, TINY)
    check(snakemake(directory, "--cores", "2"))
    return directory


def planned(directory, config) -> set[str]:
    write_config(directory, config)
    try:
        result = check(snakemake(directory, "--dry-run", "--cores", "1"))
    finally:
        write_config(directory, TINY)
    jobs = set()
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n?)*)", result.stdout, re.MULTILINE):
        wildcards = re.search(r"^    wildcards: (.*)$", body, re.MULTILINE)
        values = ",".join(p.split("=", 1)[1] for p in wildcards.group(1).split(", ")) if wildcards else ""
        jobs.add(f"{rule}[{values}]" if values else rule)
    return jobs


def test_deployment_csv_has_the_documented_columns_and_the_full_rows_are_the_scores(run):
    table = pl.read_csv(run / "results/deployment.csv")
    assert table.columns == [c.replace("ndcg_at_k", "ndcg_at_10") for c in DEPLOYMENT_COLUMNS]
    variants = ["full", "pca16", "fp16", "int8", "binary", "pca16+int8", "truncate32"]  # pca4096: skipped
    for model in ("r18", "mnv3"):
        for weighting in ("binary", "entropy"):
            part = table.filter((pl.col("model") == model) & (pl.col("weighting") == weighting))
            assert part["variant"].to_list() == variants
            score = json.loads((run / f"results/scores/{model}/{weighting}.json").read_text())
            full = part.filter(pl.col("variant") == "full").row(0, named=True)
            assert full["corrembed"] == pytest.approx(score["corrembed"], abs=1e-12)
            assert full["delta_vs_full"] == 0.0 and full["p_vs_full"] == 1.0
    skipped = json.loads((run / "results/deployment/r18/pca4096.json").read_text())
    assert skipped["skipped"] and skipped["schema_version"] == 1
    assert table["schema_version"].unique().to_list() == [1]
    assert table["images_per_second"].is_not_null().all()  # measured by the embed stage
    assert (table.filter(pl.col("variant") == "pca16+int8")["bytes_per_item"] == 16).all()
    summary = pl.read_csv(run / "results/summary.csv")
    assert set(SUMMARY_DEPLOYMENT_COLUMNS) <= set(summary.columns)
    assert summary["deploy_recommended"].sum() == 2  # one recommendation per weighting
    for name in ("quality_vs_bytes.png", "quality_vs_speed.png", "recommendation.json"):
        assert (run / "results/deployment" / name).stat().st_size > 0


def test_report_section_reads_the_outputs(run):
    out = run / "results/deployment"
    section = deployment_section(
        run / "results/deployment.csv",
        out / "recommendation.json",
        out / "quality_vs_bytes.png",
        out / "quality_vs_speed.png",
    )
    page = render_report("t", "", [section])
    assert page.count("data:image/png;base64,") == 2
    sentence = json.loads((out / "recommendation.json").read_text())["weightings"]["entropy"]["sentence"]
    assert sentence.split(":")[0] in page


def test_a_deployment_change_rescores_only_variants(run):
    config = copy.deepcopy(TINY)
    config["deployment"]["variants"] = [*config["deployment"]["variants"], "pca8"]
    assert planned(run, config) == {
        "deployment_variant[r18,pca8]",
        "deployment_variant[mnv3,pca8]",
        "deployment",
        "summary",
        "plots",
        "all",
    }
    config = copy.deepcopy(TINY)
    config["deployment"]["retrieval_k"] = 5
    jobs = planned(run, config)
    assert jobs - {"deployment", "summary", "plots", "all"} == {
        f"deployment_variant[{m},{v}]"
        for m in ("r18", "mnv3")
        for v in ("full", "pca16", "pca4096", "fp16", "int8", "binary", "pca16+int8", "truncate32")
    }
    config = copy.deepcopy(TINY)
    config["deployment"]["enabled"] = False
    assert planned(run, config) == {"summary", "plots", "all"}

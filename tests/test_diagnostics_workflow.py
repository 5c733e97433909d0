"""The diagnostics rules in a real tiny run: every output, the report in Chromium, and reruns that
touch only what a changed setting feeds."""

from __future__ import annotations

import copy
import re

import polars as pl
import pytest

from test_diagnostics_report import run_chromium
from test_reruns import Workspace
from workflow_runner import demo_config, random_model

pytestmark = pytest.mark.slow

TINY = demo_config(
    n_items=40,
    n_users=30,
    seed=5,
    embed={"batch_size": 16, "num_workers": 0, "device": "cpu", "threads": 1},
    models={
        "r18": random_model("resnet18", 64, 56, layers=[1, -1, "penultimate"]),
        "mnv3": random_model("mobilenet_v3_small", 64, 56),
    },
    scoring={"anchors": "all", "bootstrap": 50, "seed": 42},
) | {
    "diagnostics": {"queries": 4, "neighbours": 3, "retrieval_k": 5, "collage_grid": 6, "category": "category"},
    # The deployment study (its own tests: test_deployment_workflow.py) is not what these claims are about.
    "deployment": {"enabled": False},
}


def changed(**values) -> dict:
    config = copy.deepcopy(TINY)
    for dotted, value in values.items():
        *parents, key = dotted.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return config


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    space = Workspace(tmp_path_factory.mktemp("diagnostics"))
    space.snakemake(TINY, "--cores", "2")
    assert space.planned(TINY) == {}, "a finished run must have nothing to do"
    return space


def test_outputs_and_report(workspace, tmp_path):
    out = workspace.run_dir / "results" / "diagnostics"
    for model in ("r18", "mnv3"):
        for name in ("neighbours.png", "map.png", "collage.png", "neighbours.parquet", "map.parquet"):
            assert (out / "models" / model / name).stat().st_size > 0
        neighbours = pl.read_parquet(out / "models" / model / "neighbours.parquet")
        assert neighbours.height == 4 * 3 and neighbours["rank"].to_list()[:3] == [1, 2, 3]
        attributes = pl.read_csv(out / "models" / model / "binary.attributes.csv")
        assert set(attributes["category"]) >= {"category", "colour"}
    ranking = pl.read_csv(out / "comparison" / "entropy" / "ranking.csv")
    assert sorted(ranking["model"]) == ["mnv3", "r18"] and ranking["rank"].to_list() == [1, 2]
    # The layer sweep (r18 only): the headline layer's row reproduces the headline score.
    layers = pl.read_csv(out / "models" / "r18" / "layers.csv")
    assert layers["layer"].unique(maintain_order=True).to_list() == ["layer1", "layer4", "penultimate"]
    assert layers["relative_depth"].is_sorted() and layers["dim"].to_list()[::2] == [64, 512, 512]
    summary = pl.read_csv(workspace.run_dir / "results" / "summary.csv").filter(pl.col("model") == "r18")
    for row in layers.filter(pl.col("headline")).iter_rows(named=True):
        headline = summary.filter(pl.col("weighting") == row["weighting"]).row(0, named=True)
        assert row["layer"] == "penultimate" and row["n_anchors"] == headline["n_anchors"]
        assert row["corrembed"] == pytest.approx(headline["corrembed"], abs=1e-6)
        assert row["ci_low"] == pytest.approx(headline["ci_low"], abs=1e-6)
    assert not (out / "models" / "mnv3" / "layers.csv").exists()
    page = out / "report.html"
    dom = run_chromium(page, tmp_path, "--dump-dom")
    status = re.search(r'id="image-status"[^>]*data-loaded="(\d+)"[^>]*data-total="(\d+)"', dom)
    # summary plot + 4 per weighting x 2 + audit sheet + agreement heatmap + 3 per model x 2 + r18's layer sweep
    assert status and status.group(1) == status.group(2) == str(1 + 4 * 2 + 2 + 3 * 2 + 1)


def test_audit_agreement_and_summary_retrieval_columns(workspace):
    # Tag audit, model agreement and the summary's retrieval columns (issue 24).
    out = workspace.run_dir / "results" / "diagnostics"
    audit = pl.read_csv(out / "tag_audit.csv")
    assert {"item_id", "category", "value", "suggested_value", "agreement", "suspicion", "models"} <= set(audit.columns)
    assert audit["suspicion"].is_sorted(descending=True) and audit["item_id"].n_unique() == 40
    assert audit["models"].unique().to_list() in (["r18;mnv3"], ["mnv3;r18"], ["r18"], ["mnv3"])
    for name in ("suspects.png", "model_agreement.png", "confusions.csv"):
        assert (out / "audit" / name).stat().st_size > 0
    agreement = pl.read_csv(out / "model_agreement.csv")
    assert agreement.columns == ["model_a", "model_b", "cka", "mutual_knn", "k"] and agreement.height == 1
    summary = pl.read_csv(workspace.run_dir / "results" / "summary.csv")
    for column in ("ndcg_at_10", "recall_at_10", "map_at_r", "mrr"):
        assert summary[column].is_between(0.0, 1.0).all()


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            {"diagnostics.queries": 3},
            {
                "diagnostics_neighbours[r18]",
                "diagnostics_neighbours[mnv3]",
                "diagnostics_best_vs_worst[binary]",
                "diagnostics_best_vs_worst[entropy]",
            },
        ),
        ({"diagnostics.collage_grid": 5}, {"diagnostics_map_figures[r18]", "diagnostics_map_figures[mnv3]"}),
        (
            {"diagnostics.map": {"perplexity": 5}},
            {
                "diagnostics_map[r18]",
                "diagnostics_map[mnv3]",
                "diagnostics_map_figures[r18]",
                "diagnostics_map_figures[mnv3]",
            },
        ),
        (
            {"diagnostics.retrieval_k": 4},
            {f"diagnostics_scores[{m},{w}]" for m in ("r18", "mnv3") for w in ("binary", "entropy")}
            | {"diagnostics_model_figures[binary]", "diagnostics_model_figures[entropy]"},
        ),
        (
            {"models.r18.layers": [1, 2, "penultimate"]},
            {"check_layers[r18]", "diagnostics_layers[r18]"},
        ),
        (
            {"diagnostics.comparison": {"alpha": 0.1}},
            {
                "diagnostics_comparison[binary]",
                "diagnostics_comparison[entropy]",
                "diagnostics_model_figures[binary]",
                "diagnostics_model_figures[entropy]",
                "diagnostics_best_vs_worst[binary]",
                "diagnostics_best_vs_worst[entropy]",
                "diagnostics_audit",  # its consensus comes from the headline ranking
            },
        ),
        ({"diagnostics.audit": {"neighbours": 4}}, {"diagnostics_audit"}),
        ({"diagnostics.agreement": {"queries": 10}}, {"diagnostics_agreement"}),
    ],
)
def test_a_setting_reruns_only_what_it_feeds(workspace, change, expected):
    planned = set(workspace.planned(changed(**change)))
    # The report gathers everything; the summary may carry ranks from the comparison.
    assert planned - {"diagnostics_report", "all", "summary", "plots"} == expected


def test_disabled_diagnostics_plan_nothing_of_them(workspace):
    planned = workspace.planned(changed(**{"diagnostics.enabled": False}))
    assert not any(job.startswith("diagnostics") for job in planned)

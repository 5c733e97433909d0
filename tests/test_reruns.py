"""Reruns touch only what changed: each claim of the README's "Reruns" section, proven with
``snakemake --dry-run`` on a finished tiny run (the jobs Snakemake plans, with their reasons).

The run uses a copy of the workflow (Snakefile, workflow/, envs/) so that a test can edit a rule
script the way a user would, without touching the repository.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from workflow_runner import REPO, SNAKEMAKE, demo_config, random_model

pytestmark = pytest.mark.slow

TINY = demo_config(
    n_items=40,
    n_users=30,
    seed=4,
    embed={"batch_size": 16, "num_workers": 0, "device": "auto", "threads": 1},
    models={
        "r18": random_model("resnet18", 64, 56),
        "mnv3": random_model("mobilenet_v3_small", 64, 56, layer="penultimate"),
    },
    scoring={"anchors": "all", "bootstrap": 50, "seed": 42},
    # The diagnostics' and the deployment study's own rerun claims are checked in
    # tests/test_diagnostics_workflow.py and tests/test_deployment_workflow.py.
) | {"diagnostics": {"enabled": False}, "deployment": {"enabled": False}}
# Cheap per-model checks that may rerun with their model's embedding (local, seconds).
MODEL_CHECKS = ("weights", "check_model")
DOWNSTREAM = {"summary", "plots", "all"}


class Workspace:
    """A private copy of the workflow and a run directory for it."""

    def __init__(self, root: Path):
        self.workflow = root / "workflow_copy"
        self.run_dir = root / "run"
        self.run_dir.mkdir(parents=True)
        self.workflow.mkdir()
        shutil.copy2(REPO / "Snakefile", self.workflow / "Snakefile")
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        for folder in ("workflow", "envs"):
            shutil.copytree(REPO / folder, self.workflow / folder, ignore=ignore)

    def snakemake(self, config: dict, *args: str) -> subprocess.CompletedProcess:
        config_path = self.run_dir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        command = [
            str(SNAKEMAKE),
            "--snakefile",
            str(self.workflow / "Snakefile"),
            "--directory",
            str(self.run_dir),
            "--configfile",
            str(config_path),
            "--replace-workflow-config",
            *args,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        assert result.returncode == 0, f"snakemake failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        return result

    def planned(self, config: dict) -> dict[str, str]:
        """Jobs a dry run plans for ``config``: "rule" or "rule[wildcards]" -> reason."""
        result = self.snakemake(config, "--dry-run", "--cores", "1")
        return planned_jobs(result.stdout + result.stderr)


def planned_jobs(output: str) -> dict[str, str]:
    """ "rule[model,weighting]" -> reason for each job in a dry run's output.

    Every rule that makes a model's embeddings (embed, and any per-shard or merge step: a rule
    whose name holds "embed") is named "embed[model]", so that the claims below hold however
    the extraction is split into jobs.
    """
    jobs = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n?)*)", output, re.MULTILINE):
        fields = dict(re.findall(r"^    (\w+): (.*)$", body, re.MULTILINE))
        wildcards = dict(part.split("=", 1) for part in fields.get("wildcards", "").split(", ") if part)
        if "embed" in rule:
            rule, wildcards = "embed", {"model": wildcards["model"]}
        values = ",".join(wildcards.values())
        key = f"{rule}[{values}]" if values else rule
        # Several jobs fold into one name (embed shards + merge): keep every reason.
        jobs[key] = "; ".join(filter(None, [jobs.get(key), fields.get("reason", "")]))
    return jobs


def expect(planned: dict[str, str], required: set[str], allowed_extra: set[str] = frozenset()):
    """``planned`` holds every ``required`` job, and nothing else but ``allowed_extra``."""
    names = set(planned)
    reasons = "\n".join(f"  {job}: {reason}" for job, reason in sorted(planned.items()))
    assert required <= names, f"missing {sorted(required - names)}; planned:\n{reasons}"
    assert names <= required | allowed_extra, (
        f"unexpected {sorted(names - required - allowed_extra)}; planned:\n{reasons}"
    )


def model_jobs(model: str, weightings=("binary", "entropy")) -> set[str]:
    return {f"embed[{model}]"} | {f"score[{model},{w}]" for w in weightings}


def model_checks(model: str) -> set[str]:
    return {f"{rule}[{model}]" for rule in MODEL_CHECKS}


def edited(**changes) -> dict:
    """TINY with ``changes``: "section.key" (dots for nesting) -> new value (None deletes)."""
    config = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return config


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    space = Workspace(tmp_path_factory.mktemp("reruns"))
    space.snakemake(TINY, "--cores", "2")
    assert space.planned(TINY) == {}, "a finished run must have nothing to do"
    return space


def precision_levels() -> set[str]:
    """Where the config sets the forward pass's precision: {"model", "embed"} or a part of it."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    levels = set()
    if "precision" in schema["models"]["additionalProperties"]["properties"]:
        levels.add("model")
    if "precision" in schema["embed"]["properties"]:
        levels.add("embed")
    return levels


EMBEDDING_CHANGES = {
    "weights": {"models.r18.weights": "IMAGENET1K_V1"},
    "layer": {"models.r18.layer": "output"},
    "transforms": {"models.r18.transforms": {"resize_size": 72, "crop_size": 56}},
    "precision": {"models.r18.precision": "bf16"},
}


@pytest.mark.parametrize("setting", sorted(EMBEDDING_CHANGES))
def test_changing_one_models_embedding_setting_reruns_only_that_model(workspace, setting):
    if setting == "precision" and "model" not in precision_levels():
        pytest.skip("precision is not a per-model setting (see the next test)")
    planned = workspace.planned(edited(**EMBEDDING_CHANGES[setting]))
    expect(planned, model_jobs("r18") | DOWNSTREAM, model_checks("r18"))
    # Found by the params trigger (embed's own, or the weights check's it then depends on).
    assert any("Params have changed" in reason for reason in planned.values())


def test_changing_the_run_wide_precision_re_embeds_every_model_and_nothing_upstream(workspace):
    if "embed" not in precision_levels():
        pytest.skip("no run-wide embed.precision setting")
    planned = workspace.planned(edited(**{"embed.precision": "bf16"}))
    every_model = set().union(*(model_jobs(m) for m in TINY["models"]))
    expect(planned, every_model | DOWNSTREAM, set().union(*map(model_checks, TINY["models"])))


@pytest.mark.parametrize(
    "change",
    [
        {"embed.batch_size": 7},
        {"embed.num_workers": 1},
        {"embed.device": "cpu"},
        {"embed.threads": 2},
        {"embed.resources": {"gpu": 0, "mem_mb": 999, "runtime": 5}},
        {"models.mnv3.imagenet": None},  # absent stays absent: a no-op edit
    ],
    ids=["batch_size", "num_workers", "device", "threads", "cluster_resources", "noop"],
)
def test_run_settings_rerun_nothing(workspace, change):
    assert workspace.planned(edited(**change)) == {}


def test_rewriting_the_config_in_another_key_order_or_with_explicit_defaults_reruns_nothing(workspace):
    def reorder(value):
        if isinstance(value, dict):
            return {key: reorder(value[key]) for key in reversed(list(value))}
        return value

    config = reorder(TINY)
    config["models"]["r18"]["layer"] = "penultimate"  # the default, now written out
    config["scoring"]["include_self"] = False  # likewise
    assert workspace.planned(config) == {}


@pytest.mark.parametrize(
    "change",
    [
        {"scoring.anchors": 25},
        {"scoring.seed": 7},
        {"scoring.include_self": True},
        {"scoring.bootstrap": 20},
    ],
    ids=["anchors", "seed", "include_self", "bootstrap"],
)
def test_scoring_settings_rerun_scores_and_summary_only(workspace, change):
    planned = workspace.planned(edited(**change))
    scores = {f"score[{m},{w}]" for m in TINY["models"] for w in ("binary", "entropy")}
    expect(planned, scores | DOWNSTREAM)


def test_adding_a_model_embeds_only_that_model(workspace):
    models = {
        **TINY["models"],
        "r18_small": {"arch": "resnet18", "weights": None, "transforms": {"resize_size": 48, "crop_size": 40}},
    }
    planned = workspace.planned(edited(models=models))
    expect(planned, model_jobs("r18_small") | DOWNSTREAM, model_checks("r18_small"))


def test_removing_a_model_reruns_only_the_summary_and_plots(workspace):
    planned = workspace.planned(edited(models={"r18": TINY["models"]["r18"]}))
    expect(planned, DOWNSTREAM)


@pytest.mark.parametrize(
    "change",
    [
        {"tags.exclude_categories": ["colour"]},
        {"tags.min_user_interactions": 3},
    ],
    ids=["exclude_categories", "min_user_interactions"],
)
def test_tag_settings_rerun_tags_scores_and_summary_without_embedding(workspace, change):
    planned = workspace.planned(edited(**change))
    tags = {f"tags[{w}]" for w in ("binary", "entropy")}
    scores = {f"score[{m},{w}]" for m in TINY["models"] for w in ("binary", "entropy")}
    # Binary tags ignore min_user_interactions, but may be recomputed (cheap); never an embedding.
    required = DOWNSTREAM | {"tags[entropy]"} | {f"score[{m},entropy]" for m in TINY["models"]}
    expect(planned, required, tags | scores)


def test_dropping_a_weighting_reruns_only_the_summary(workspace):
    expect(workspace.planned(edited(**{"tags.weightings": ["binary"]})), DOWNSTREAM)


def test_adding_a_weighting_computes_only_its_tags_and_scores(tmp_path_factory):
    space = Workspace(tmp_path_factory.mktemp("weighting"))
    config = edited(**{"tags.weightings": ["binary"], "models": {"r18": TINY["models"]["r18"]}})
    space.snakemake(config, "--cores", "2")
    planned = space.planned(edited(models={"r18": TINY["models"]["r18"]}))
    expect(planned, {"tags[entropy]", "score[r18,entropy]"} | DOWNSTREAM)


UNCHANGED_FILES = [
    "results/demo/manifest.csv",
    "results/demo/interactions.csv",
    "results/catalogue/images.parquet",
    "results/catalogue/tags.parquet",
    "results/weights/r18.json",
    "results/tags/binary/vectors.npz",
]


def test_touching_or_resaving_unchanged_files_reruns_nothing(workspace):
    later = time.time() + 5
    for relative in UNCHANGED_FILES:
        path = workspace.run_dir / relative
        if relative.endswith(".csv"):
            path.write_bytes(path.read_bytes())  # re-saved: same bytes, new modification time
        else:
            os.utime(path, (later, later))  # touched
    assert workspace.planned(TINY) == {}


def test_editing_a_plotting_script_reruns_only_the_plots(workspace, tmp_path_factory):
    script = workspace.workflow / "workflow/scripts/plots.py"
    original = script.read_bytes()
    try:
        script.write_bytes(original + b"\n# a comment added by an edit\n")
        expect(workspace.planned(TINY), {"plots", "all"})
    finally:
        script.write_bytes(original)
        later = time.time() - 3600  # older than every output again, as before the edit
        os.utime(script, (later, later))

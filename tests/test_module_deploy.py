"""The workflow as a Snakemake module: deployed into a separate project with its own config.

The snakemake-workflows convention (``snakedeploy deploy-workflow`` writes exactly this):
the project's ``workflow/Snakefile`` declares the checkout's ``workflow/Snakefile`` as a
``module`` with ``config: config`` and uses all its rules; the config lives in the project's
``config/config.yaml`` and every output lands in the project, none in the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from conftest import REPO
from workflow_runner import demo_config, random_model

pytestmark = pytest.mark.slow

PROJECT_SNAKEFILE = f"""configfile: "config/config.yaml"


module corrembed:
    snakefile:
        "{REPO / "workflow" / "Snakefile"}"
    config:
        config


use rule * from corrembed
"""


def test_the_checkout_runs_as_a_module_of_another_project(tmp_path):
    project = tmp_path / "my_project"
    (project / "workflow").mkdir(parents=True)
    (project / "config").mkdir()
    (project / "workflow" / "Snakefile").write_text(PROJECT_SNAKEFILE, encoding="utf-8")
    config = demo_config(
        n_items=24,
        n_users=20,
        seed=4,
        weightings=("binary",),
        embed={"batch_size": 8, "num_workers": 0, "device": "cpu", "threads": 1},
        models={"r18_random": random_model("resnet18", 48, 40)},
        scoring={"anchors": "all", "bootstrap": 20},
    )
    config["diagnostics"] = {"enabled": False}
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)  # the rule scripts import the checkout's own library
    result = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "--cores", "2"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = pl.read_csv(project / "results" / "summary.csv")
    assert summary["model"].unique().to_list() == ["r18_random"] and summary["n_items"][0] == 24
    for path in ("plots/corrembed_vs_imagenet.png", "plots/corrembed_vs_imagenet.svg"):
        assert (project / "results" / path).stat().st_size > 1000
    assert (project / "logs" / "summary.log").is_file()

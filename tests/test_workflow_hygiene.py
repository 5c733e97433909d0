"""What users expect of a Snakemake workflow: lint-clean, snakefmt-formatted, a log for every
job, constrained wildcards, a conda env in step with pyproject.toml, a report with captions,
and extraction progress readable in the embed job's log."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import polars as pl
import pytest
import yaml

from workflow_runner import REPO, check, demo_config, random_model, snakemake, write_config

SNAKEFMT = Path(sys.executable).with_name("snakefmt")
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
# Conda package name -> PyPI name, where they differ.
CONDA_TO_PYPI = {"pytorch": "torch", "snakemake-minimal": "snakemake"}

TINY = demo_config(
    n_items=40,
    n_users=30,
    seed=6,
    weightings=("entropy",),
    # Batch size 1: 40 batches, so the extraction logs progress more than once.
    embed={"batch_size": 1, "num_workers": 0, "device": "cpu", "threads": 1},
    models={"r18": random_model("resnet18", 64, 56)},
    scoring={"anchors": "all", "bootstrap": 20},
)


def rule_blocks() -> dict[str, str]:
    """Rule name -> the text of its definition, from every rule file and the Snakefile."""
    blocks = {}
    for path in [REPO / "Snakefile", *RULE_FILES]:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.MULTILINE):
            blocks[match.group(1)] = match.group(2)
    return blocks


def requirement(spec: str) -> tuple[str, str]:
    """ "torch>=2.2" or "pytorch >=2.2" -> ("torch", ">=2.2") (PyPI name, lower-cased)."""
    name, version = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", spec).groups()
    name = name.lower()
    return CONDA_TO_PYPI.get(name, name), version.replace(" ", "")


def test_conda_env_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    env = yaml.safe_load((REPO / "envs" / "corrembed.yaml").read_text(encoding="utf-8"))
    conda = dict(requirement(d) for d in env["dependencies"] if isinstance(d, str))
    python = conda.pop("python")
    assert python == project["requires-python"].replace(" ", "")
    # Packages only on PyPI sit in the env's pip: section, beside the optional sources' packages.
    pip = dict(requirement(d) for entry in env["dependencies"] if isinstance(entry, dict) for d in entry["pip"])
    extras = {requirement(d)[0] for group in project["optional-dependencies"].values() for d in group}
    assert conda | {k: v for k, v in pip.items() if k not in extras} == dict(
        requirement(d) for d in project["dependencies"]
    )


def test_every_rule_with_work_has_a_log_and_the_conda_env():
    blocks = rule_blocks()
    assert {"ingest", "embed", "score", "summary", "plots"} <= set(blocks)
    for name, body in blocks.items():
        if not re.search(r"^\s+(script|shell|run):", body, re.MULTILINE):
            continue  # a target rule such as `all`
        assert re.search(r"^\s+log:", body, re.MULTILINE), f"rule {name} has no log:"
        env = re.search(r'^\s+conda:\s*\n\s+"([^"]+)"', body, re.MULTILINE)
        assert env, f"rule {name} has no conda:"
        assert (REPO / "workflow" / "rules" / env.group(1)).resolve() == REPO / "envs" / "corrembed.yaml"


def test_snakemake_lint_reports_nothing(tmp_path):
    write_config(tmp_path, TINY)
    result = check(snakemake(tmp_path, "--lint"))
    output = result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in output
    assert "Lints for" not in output


def test_snakefmt_check_passes():
    result = subprocess.run(
        [str(SNAKEFMT), "--check", "Snakefile", "workflow/"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


RUFF = Path(sys.executable).with_name("ruff")
PYTHON_TREES = ["workflow", "tests", "benchmarks"]


def test_ruff_lint_reports_nothing():
    result = subprocess.run(
        [str(RUFF), "check", "--no-cache", *PYTHON_TREES], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_check_passes():
    result = subprocess.run(
        [str(RUFF), "format", "--check", "--no-cache", *PYTHON_TREES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_wildcard_matches_configured_models_only(tmp_path):
    write_config(tmp_path, TINY)
    result = snakemake(tmp_path, "--dry-run", "results/scores/r18x/entropy.json")
    assert result.returncode != 0
    assert "MissingRuleException" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hygiene_run")
    write_config(directory, TINY)
    check(snakemake(directory, "--cores", "2"))
    return directory


@pytest.mark.slow
def test_report_holds_the_summary_table_and_the_plot_with_captions(tiny_run):
    check(snakemake(tiny_run, "--report", "results/report.zip"))
    with zipfile.ZipFile(tiny_run / "results" / "report.zip") as report:
        names = report.namelist()
        assert any(n.endswith("/summary.csv") for n in names), names
        assert any(n.endswith("/corrembed_vs_imagenet.png") for n in names), names
        page = report.read(next(n for n in names if n.endswith("report.html"))).decode()
    # The captions' own words (rendered from workflow/report/*.rst; the page holds them as
    # JSON strings), and the workflow description with its template filled in.
    assert "One row per model \\u00d7 layer \\u00d7 weighting" in page
    assert "least-squares line with its Pearson r" in page
    assert "Models scored: 1." in page


@pytest.mark.slow
def test_embed_log_shows_extraction_progress_line_by_line(tiny_run):
    logs = sorted((tiny_run / "logs" / "embed").rglob("*.log"))
    assert logs, "no embed log"
    text = "".join(log.read_text(encoding="utf-8") for log in logs)
    # "<date> <time> INFO <job's logger>: r18: 20/47 images (42.6%), 78.3 img/s, ETA 0 s"
    pattern = re.compile(
        r"^\S+ \S+ INFO [^:]+: r18: (\d+)/(\d+) images \((\d+\.\d)%\), "
        r"(\d+\.\d) img/s, ETA (\d+) s$",
        re.MULTILINE,
    )
    progress = [tuple(map(float, m.groups())) for m in pattern.finditer(text)]
    assert len(progress) >= 2, text
    n_images = pl.read_parquet(tiny_run / "results/catalogue/images.parquet").height
    done = [p[0] for p in progress]
    assert done == sorted(done) and done[-1] == progress[-1][1] == n_images
    for images, total, percent, rate, _eta in progress:
        assert percent == pytest.approx(100 * images / total, abs=0.05)
        assert rate > 0
    assert progress[-1][4] == 0  # nothing left at the end


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profiles_are_accepted_by_snakemake(tmp_path, profile):
    write_config(tmp_path, TINY)
    result = check(snakemake(tmp_path, "--profile", str(REPO / "profiles" / profile), "--dry-run"))
    output = result.stdout + result.stderr
    assert re.search(r"^rule embed:|^rule embed_\w+:", output, re.MULTILINE), output[-3000:]

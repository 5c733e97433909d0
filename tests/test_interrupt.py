"""Ctrl-C in the middle of a run, then a rerun, gives the same results as an uninterrupted run;
a model spec error stops the run before anything is embedded.

Real ``snakemake`` processes on a tiny generated catalogue with a random-init model (CPU).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from workflow_runner import (
    SNAKEMAKE_ENV,
    check,
    demo_config,
    random_model,
    snakemake,
    snakemake_command,
    write_config,
)

pytestmark = pytest.mark.slow

SMALL = demo_config(
    n_items=40,
    n_users=30,
    seed=5,
    embed={"batch_size": 4, "num_workers": 0, "device": "cpu", "threads": 1},
    models={"mnv3_random": random_model("mobilenet_v3_small", 128, 112)},
    scoring={"anchors": "all", "bootstrap": 50},
)
# Measured, not computed: they differ between any two runs.
TIMING_COLUMNS = ["images_per_second"]


def _summary(directory) -> pl.DataFrame:
    return pl.read_csv(directory / "results" / "summary.csv").drop(TIMING_COLUMNS).sort("model", "weighting")


def _interrupt_when(directory, started: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Start snakemake, send SIGINT (Ctrl-C) to its process group once ``started`` exists."""
    process = subprocess.Popen(
        snakemake_command(directory, "--cores", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=SNAKEMAKE_ENV,
    )
    deadline = time.monotonic() + timeout
    try:
        while not (directory / started).exists():
            assert process.poll() is None, "the run ended before the interruption point"
            assert time.monotonic() < deadline, f"{started} never appeared"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, output, "")


def test_ctrl_c_during_embed_then_rerun_gives_the_uninterrupted_results(tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    write_config(reference, SMALL)
    check(snakemake(reference, "--cores", "1"))

    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    write_config(interrupted, SMALL)
    # embed_images creates the model's folder just before building the model and embedding
    killed = _interrupt_when(interrupted, "results/embeddings/mnv3_random")
    assert killed.returncode != 0, killed.stdout[-3000:]
    assert not (interrupted / "results" / "summary.csv").exists()

    check(snakemake(interrupted, "--cores", "1", "--rerun-incomplete"))
    # Same results; float columns to 1e-12 (parallel reductions may sum in another order).
    assert_frame_equal(_summary(interrupted), _summary(reference), rel_tol=1e-12, abs_tol=1e-12)
    again = check(snakemake(interrupted, "--cores", "1", "--dry-run"))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_bad_layer_stops_the_run_before_anything_is_embedded(tmp_path):
    config = {**SMALL, "models": {"bad": {"arch": "resnet18", "weights": None, "layer": "layer9"}}}
    write_config(tmp_path, config)
    result = snakemake(tmp_path, "--cores", "1")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "CorrEmbed error in check_model[bad]" in output
    assert "layer 'layer9' is not a graph node" in output and "Traceback" not in output
    assert not (tmp_path / "results" / "embeddings").exists()

"""The workflow on a real Slurm cluster through ``--profile profiles/slurm``, not a mock.

``tests/slurm/cluster.sh`` installs (apt, as root) and starts a single-node Slurm 22.05 with
accounting (MariaDB + slurmdbd) and a fake GPU; this module submits a tiny workflow with the
official ``snakemake-executor-plugin-slurm``, checks from Slurm's own records (``sacct``, the job
logs named by job id) and from what the jobs wrote themselves (``meta.json``) that every
non-local job ran as a Slurm job with the resources the rules declare, compares the results with
a local run's, and stops only the daemons it started. Takes about 1.5 minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import polars as pl
import pytest

from corrembed.embed.store import read_embeddings
from workflow_runner import REPO, SNAKEMAKE, check, demo_config, random_model, snakemake, write_config

pytestmark = pytest.mark.slow

CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "cluster.sh"
ACCOUNT = "corrembed_ci"  # registered by cluster.sh
SNAKEMAKE_TIMEOUT = 300  # seconds; Snakemake may ignore SIGTERM while it waits on jobs

TINY = demo_config(
    n_items=40,
    n_users=30,
    seed=5,
    # gpu: 1 (the default) -> sbatch --gpus=1 on the fake GPU; device auto falls back to CPU.
    embed={
        "batch_size": 16,
        "num_workers": 0,
        "device": "auto",
        "threads": 1,
        "resources": {"mem_mb": 2000, "runtime": 10},
    },
    models={"r18": random_model("resnet18", 64, 56)},
    scoring={"anchors": "all", "bootstrap": 50},
    # Not the subject here, and they would add ~8 jobs to a run bounded by SNAKEMAKE_TIMEOUT.
) | {"diagnostics": {"enabled": False}}
# Rules whose jobs must go to Slurm, and local rules (cheap, or needing the internet).
CLUSTER_RULES = {"ingest", "embed", "score"}
LOCAL_RULES = {"demo_catalogue", "weights", "tags", "summary", "plots", "all"}


@pytest.fixture(scope="module")
def cluster():
    """A running Slurm cluster; stops, at the end, only the daemons this fixture started."""
    if shutil.which("slurmctld") is None and os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("Slurm is not installed and installing it needs root")
    started = subprocess.run(["bash", str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, f"cluster start failed:\n{started.stdout}\n{started.stderr}"
    names = re.search(r"^started:(.*)$", started.stdout, re.MULTILINE).group(1).split()
    yield
    if names:
        stopped = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), "stop", *names], capture_output=True, text=True, timeout=120
        )
        assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """(local run directory, Slurm run directory, Slurm run's output)."""
    local_dir = tmp_path_factory.mktemp("local_run")
    slurm_dir = tmp_path_factory.mktemp("slurm_run")
    for directory in (local_dir, slurm_dir):
        write_config(directory, TINY)
    command = [
        "timeout",
        "-k",
        "15",
        str(SNAKEMAKE_TIMEOUT),
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(slurm_dir),
        "--configfile",
        str(slurm_dir / "config.yaml"),
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--workflow-profile",
        str(REPO / "profiles" / "slurm-test"),
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    slurm = subprocess.run(command, capture_output=True, text=True, env=env, timeout=SNAKEMAKE_TIMEOUT + 60)
    check(slurm)
    check(snakemake(local_dir, "--cores", "2"))
    return local_dir, slurm_dir, slurm.stdout + slurm.stderr


def submitted_jobs(output: str) -> dict[int, str]:
    """Slurm job id -> its log path, from the executor's "submitted with SLURM jobid" lines."""
    return {
        int(job_id): log for job_id, log in re.findall(r"submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", output)
    }


def sacct(job_ids) -> dict[int, dict[str, str]]:
    fields = ["JobID", "JobName", "State", "ExitCode", "Comment", "Account", "AllocTRES"]
    result = subprocess.run(
        ["sacct", "-X", "-n", "-P", f"--format={','.join(fields)}", "-j", ",".join(str(j) for j in job_ids)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [dict(zip(fields, line.split("|"))) for line in result.stdout.splitlines() if line]
    return {int(row["JobID"]): row for row in rows}


def test_every_cluster_job_ran_as_a_completed_slurm_job(runs):
    _, _, output = runs
    jobs = submitted_jobs(output)
    records = sacct(jobs)
    assert set(records) == set(jobs)
    for row in records.values():
        assert (row["State"], row["ExitCode"]) == ("COMPLETED", "0:0"), row
        assert row["Account"] == ACCOUNT
    # One workflow run: the executor names every job after its run id.
    assert len({row["JobName"] for row in records.values()}) == 1
    # The executor's comment names each job's rule and wildcards.
    comments = {row["Comment"] for row in records.values()}
    assert {"rule_ingest", "rule_score_wildcards_r18_binary", "rule_score_wildcards_r18_entropy"} <= comments
    assert any(c.startswith("rule_embed") and "r18" in c for c in comments), comments
    # Every job Snakemake ran itself is a local rule; every other job went through sbatch, once
    # (no retry hid a failure).
    ran_here = set(re.findall(r"^localrule (\w+):", output, re.MULTILINE))
    sent = re.findall(r"^rule (\w+):", output, re.MULTILINE)
    assert LOCAL_RULES <= ran_here and not CLUSTER_RULES & ran_here
    assert CLUSTER_RULES <= set(sent)
    assert len(sent) == len(jobs) == len(comments)
    assert {re.match(r"rule_(.+?)(_wildcards_|$)", c).group(1) for c in comments} == set(sent)


def test_embed_job_got_the_declared_resources_and_recorded_its_job_id(runs):
    _, slurm_dir, output = runs
    jobs = submitted_jobs(output)
    records = sacct(jobs)
    embed_ids = {
        j
        for j, row in records.items()
        if row["Comment"].startswith("rule_embed_") and re.match(r"rule_embed_wildcards_r18($|_)", row["Comment"])
    }
    assert embed_ids
    for embed_id in embed_ids:
        tres = records[embed_id]["AllocTRES"]
        assert "gres/gpu=1" in tres and "mem=2000M" in tres, tres  # embed.resources: gpu, 2000 MB
    # What the embed job wrote about itself: its Slurm job id, the device it fell back to.
    metas = [json.loads(path.read_text()) for path in (slurm_dir / "results/embeddings/r18").rglob("*.json")]
    recorded = [meta for meta in metas if meta.get("slurm_job_id")]
    assert recorded, metas
    for meta in recorded:  # a merged meta lists its shards' jobs: "12" or "12,13"
        assert {int(j) for j in str(meta["slurm_job_id"]).split(",")} <= embed_ids
        assert meta["device"] == "cpu"  # a GPU was allocated but none exists: auto -> CPU
        assert meta["images_per_second"] > 0
    embed_id = int(str(recorded[0]["slurm_job_id"]).split(",")[0])
    # The job's own output, in the Slurm log named by its job id.
    log = jobs[embed_id]
    assert log.endswith(f"/{embed_id}.log")
    assert re.search(r"^rule embed:", open(log).read(), re.MULTILINE)


def test_results_equal_a_local_runs(runs):
    local_dir, slurm_dir, _ = runs
    local = read_embeddings(local_dir / "results/embeddings/r18")
    remote = read_embeddings(slurm_dir / "results/embeddings/r18")
    assert local.item_ids.tolist() == remote.item_ids.tolist()
    # Same code, same float32 CPU arithmetic: the same bits.
    np.testing.assert_array_equal(local.vectors, remote.vectors)
    run_specific = {"device", "images_per_second"}
    local_summary = pl.read_csv(local_dir / "results/summary.csv")
    remote_summary = pl.read_csv(slurm_dir / "results/summary.csv")
    assert local_summary.columns == remote_summary.columns
    assert local_summary.height == remote_summary.height == 2
    for column in local_summary.columns:
        if column in run_specific:
            continue
        mine, theirs = local_summary[column], remote_summary[column]
        if mine.dtype.is_float():
            # Scores may differ in the last bits: BLAS sums in another order with other CPU counts.
            np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-12, atol=1e-14, err_msg=column)
        else:
            assert mine.to_list() == theirs.to_list(), column


def test_a_second_slurm_run_has_nothing_to_do(runs):
    _, slurm_dir, _ = runs
    again = check(
        snakemake(
            slurm_dir,
            "--dry-run",
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--workflow-profile",
            str(REPO / "profiles" / "slurm-test"),
        )
    )
    assert "Nothing to be done" in again.stdout + again.stderr

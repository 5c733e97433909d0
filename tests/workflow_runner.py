"""Run the real ``snakemake`` command on a configuration in a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def random_model(arch: str, resize_size: int, crop_size: int, **extra) -> dict:
    """A random-init torchvision model entry (``weights: null``) with small transforms."""
    return {"arch": arch, "weights": None, **extra, "transforms": {"resize_size": resize_size, "crop_size": crop_size}}


def demo_config(
    *,
    n_items: int,
    n_users: int,
    seed: int,
    embed: dict,
    models: dict,
    scoring: dict | None = None,
    weightings: tuple[str, ...] | None = ("binary", "entropy"),
) -> dict:
    """A workflow config on the generated demo catalogue (tags from its interactions log unless
    ``weightings`` is None), weights cached in the run directory's ``torch_cache``."""
    config = {"catalogue": {"manifest": "demo"}, "demo": {"n_items": n_items, "n_users": n_users, "seed": seed}}
    if weightings is not None:
        config["tags"] = {"interactions": "demo", "weightings": list(weightings)}
    config |= {"torch_home": "torch_cache", "embed": embed, "models": models}
    if scoring is not None:
        config["scoring"] = scoring
    return config


def write_config(directory: Path, config: dict) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


#: The environment of every snakemake run here (unbuffered, so a job's log lines arrive as written).
SNAKEMAKE_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def snakemake_command(directory: Path, *args: str) -> list[str]:
    """``snakemake --snakefile REPO/Snakefile --directory DIR --configfile DIR/config.yaml ARGS``."""
    return [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(directory),
        "--configfile",
        str(directory / "config.yaml"),
        *args,
    ]


def snakemake(directory: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run :func:`snakemake_command` to completion, capturing its output."""
    return subprocess.run(
        snakemake_command(directory, *args), capture_output=True, text=True, timeout=timeout, env=SNAKEMAKE_ENV
    )


def check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (
        f"snakemake failed ({result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )
    return result

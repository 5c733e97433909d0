"""The example configurations: their DAGs build and every model spec passes the start-up checks.

``examples/paper-comparison.yaml`` needs the internet for its weights step, which these machines do
not have: the test builds its DAG (``snakemake --dry-run``), runs every model's start-up check
(source, arch, pretrained tag, layer, preprocessing where known offline) and shows that the
weights step, run offline, is what stops, naming the model.
"""

from __future__ import annotations

import pytest
import yaml

from conftest import FASHION_DIR, REPO, require_shared
from corrembed.errors import WeightsUnavailableError
from corrembed.models.checks import check_model_spec
from corrembed.models.weights import ensure_weights
from workflow_runner import check, snakemake, write_config

PAPER = yaml.safe_load((REPO / "examples" / "paper-comparison.yaml").read_text(encoding="utf-8"))
FASHION = yaml.safe_load((REPO / "examples" / "fashion-product-224.yaml").read_text(encoding="utf-8"))
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_only_the_test_catalogue_example_names_shared(path):
    """Examples must run for a user: on the demo catalogue (or one given on the command line)."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    if path.stem == "fashion-product-224":
        assert "../shared" in config["catalogue"]["manifest"]
    else:
        assert config["catalogue"]["manifest"] == "demo"
        assert "../shared" not in yaml.safe_dump(config["models"])


def test_paper_comparison_dag_builds(tmp_path):
    require_shared(FASHION_DIR / "tags.csv")
    # The test catalogue given in place of the demo, as the example's comment shows.
    config = dict(PAPER, catalogue={**FASHION["catalogue"], "manifest": str(FASHION_DIR / "tags.csv")})
    config["tags"] = {**PAPER["tags"], "interactions": None}
    write_config(tmp_path, config)
    result = check(snakemake(tmp_path, "--dry-run", "--cores", "1"))
    for model in PAPER["models"]:
        assert f"results/embeddings/{model}/meta.json" in result.stdout
    assert "weights" in result.stdout and "check_model" in result.stdout


@pytest.mark.parametrize("model", sorted(PAPER["models"]))
def test_paper_comparison_specs_pass_the_start_check_and_stop_at_the_weights_step(model, tmp_path, monkeypatch):
    pytest.importorskip(
        {"timm": "timm", "open_clip": "open_clip", "huggingface": "transformers"}.get(
            PAPER["models"][model].get("source"), "torch"
        )
    )
    spec = PAPER["models"][model]
    record = check_model_spec(spec, model_name=model, torch_home=tmp_path / "torch")
    assert record["model"] == model and record["arch"] == spec["arch"]
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # an offline hub, refused at once
    with pytest.raises(WeightsUnavailableError, match=f"model '{model}'"):
        ensure_weights(spec, tmp_path / "torch", model_name=model, allow_download=False)

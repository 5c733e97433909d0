"""Rule weights: make sure a model's weights are in the cache before any embedding job."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.joblog import job_logging
from corrembed.models.weights import ensure_weights
from corrembed.storage import write_json

model = snakemake.wildcards.model
with job_logging(snakemake.log[0], f"weights[{model}]") as log:
    # hf_home is read from the config, not a param: a cache location must not rerun anything.
    record = ensure_weights(
        snakemake.params.spec,
        snakemake.params.torch_home,
        model_name=model,
        progress=log.info,
        hf_home=snakemake.config.get("hf_home"),
    )
    log.info("weights ready: %s", record)
    write_json(snakemake.output[0], record)

"""Rule weights: make sure a model's weights are in the cache before any embedding job."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.joblog import job_logging
from corrembed.storage import write_json
from corrembed.weights import ensure_weights

model = snakemake.wildcards.model
with job_logging(snakemake.log[0], f"weights[{model}]") as log:
    record = ensure_weights(snakemake.params.spec, snakemake.params.torch_home, model_name=model, progress=log.info)
    log.info("weights ready: %s", record)
    write_json(snakemake.output[0], record)

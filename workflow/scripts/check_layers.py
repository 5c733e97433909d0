"""Rule check_layers: validate one model's layer sweep (``layers:``) before anything is embedded."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.joblog import job_logging
from corrembed.models.checks import check_layer_sweep
from corrembed.storage import write_json

model = snakemake.wildcards.model
with job_logging(snakemake.log[0], f"check_layers[{model}]") as log:
    record = check_layer_sweep(snakemake.params.spec, snakemake.params.layers, model_name=model)
    log.info("layer sweep is valid: %s", record)
    write_json(snakemake.output[0], record)

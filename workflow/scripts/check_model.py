"""Rule check_model: validate one model spec before anything is embedded."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.joblog import job_logging
from corrembed.models.checks import check_model_spec
from corrembed.storage import write_json

model = snakemake.wildcards.model
with job_logging(snakemake.log[0], f"check_model[{model}]") as log:
    # The caches are read from the config, not params: a cache location must not rerun anything.
    record = check_model_spec(
        snakemake.params.spec,
        model_name=model,
        torch_home=snakemake.config.get("torch_home"),
        hf_home=snakemake.config.get("hf_home"),
    )
    log.info("model spec is valid: %s", record)
    write_json(snakemake.output[0], record)

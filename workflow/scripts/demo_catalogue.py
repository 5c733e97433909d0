"""Rule demo_catalogue: the bundled, deterministic demo catalogue."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.ingest.demo import make_demo_catalogue
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], "demo_catalogue") as log:
    demo = snakemake.params.demo
    written = make_demo_catalogue(
        Path(snakemake.output.manifest).parent,
        n_items=demo["n_items"],
        n_users=demo["n_users"],
        seed=demo["seed"],
    )
    log.info("demo catalogue: %s", written)

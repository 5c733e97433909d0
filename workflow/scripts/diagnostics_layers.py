"""Rule diagnostics_layers: a model's layer sweep (config ``layers:``), embedded in one pass per
batch and cached per layer, scored on the headline anchors; table and plot. Logic in the library
(:func:`corrembed.diagnostics.jobs.layer_sweep_job`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.diagnostics.jobs import layer_sweep_job
from corrembed.joblog import job_logging

model = snakemake.wildcards.model
with job_logging(snakemake.log[0], f"diagnostics_layers[{model}]") as log:
    layer_sweep_job(
        snakemake.input.images,
        model=model,
        params=dict(snakemake.params),
        vectors_paths=snakemake.input.vectors,
        per_anchor_paths=snakemake.input.per_anchor,
        table_out=snakemake.output.table,
        plot_out=snakemake.output.plot,
        run=snakemake.config["embed"],
        threads=snakemake.threads,
        log=log,
        hf_home=snakemake.config.get("hf_home"),
    )

"""Rule embed: one shard of one model's embeddings (results/embeddings/{model}/shards/).

Only what changes an embedding comes from params (spec, precision, decoder); run settings
(batch size, workers, device, channels_last, compile, cache location) are read from
``config["embed"]`` so that changing them re-embeds nothing. All logic is in the library.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.embed import embed_shard_job
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"embed[{snakemake.wildcards.model}, {snakemake.wildcards.shard}]") as log:
    embed_shard_job(
        snakemake.input.images,
        snakemake.output.shard,
        model_name=snakemake.wildcards.model,
        shard=snakemake.wildcards.shard,
        params=dict(snakemake.params),
        run=snakemake.config["embed"],
        threads=snakemake.threads,
        log=log,
        hf_home=snakemake.config.get("hf_home"),  # a cache location, not a param: reruns nothing
    )

"""Rule deployment_basis: the PCA basis of one model's scored item embeddings."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the corrembed library

from corrembed.deployment.stages import write_pca_basis
from corrembed.joblog import job_logging

with job_logging(snakemake.log[0], f"deployment_basis[{snakemake.wildcards.model}]"):
    write_pca_basis(
        snakemake.output[0], snakemake.input.shard, snakemake.input.vectors, snakemake.params.item_embedding
    )

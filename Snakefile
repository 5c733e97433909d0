# CorrEmbed: which pre-trained vision model's embeddings agree best with the catalogue's tags?
# Stages: ingest -> weights -> embed -> tags -> score -> summary -> plots (see README.md).

import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("8.20")


configfile: "config.yaml"


# Model names become folder names: refuse a bad one in words before the schema's pattern does.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from corrembed.models.names import check_model_names

check_model_names(config.get("models") or {})
validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/precomputed.smk"
include: "workflow/rules/tags.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/deployment.smk"


rule all:
    default_target: True
    input:
        all_targets(),

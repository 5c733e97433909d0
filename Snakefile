# CorrEmbed: which pre-trained vision model's embeddings agree best with the catalogue's tags?
# Stages: ingest -> weights -> embed -> tags -> score -> summary -> plots (see README.md).

from snakemake.utils import min_version, validate

min_version("8.20")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/tags.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/deployment.smk"


rule all:
    default_target: True
    input:
        "results/summary.csv",
        "results/plots/corrembed_vs_imagenet.png",
        "results/plots/corrembed_vs_imagenet.svg",
        (
            ["results/diagnostics/report.html"]
            if config["diagnostics"]["enabled"]
            else []
        ),
        deployment_outputs().values(),

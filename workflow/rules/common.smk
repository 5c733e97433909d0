# Helpers shared by the rules: config look-ups kept out of the rule bodies.

import re


def rule_model_spec(spec):
    """A model's config entry as every rule sees it (a copy; the config is never edited).

    A torchvision model's layer defaults to penultimate here, not in the schema (other sources
    have other defaults); the source key is dropped when it names the default. Every rule then
    sees the params it saw before sources existed, written out or not: nothing reruns.
    """
    spec = dict(spec)
    if spec.get("source", "torchvision") == "torchvision":
        spec.pop("source", None)
        spec.setdefault("layer", "penultimate")
    return spec


MODEL_SPECS = {name: rule_model_spec(spec) for name, spec in config["models"].items()}
MODELS = list(MODEL_SPECS)
WEIGHTINGS = list(config["tags"]["weightings"])
DEMO = "results/demo"
# Model keys that change the embedding; everything else (batch size, device, ImageNet
# figures) must not re-embed, so embed jobs see only these as params. The same tuple as
# corrembed.models.spec.EMBEDDING_KEYS (kept here so the DAG is built without importing the
# library); tests/test_spec_keys.py checks both, and the layer default above, against the schema
# and the sources.
EMBEDDING_KEYS = (
    "source",
    "arch",
    "weights",
    "layer",
    "transforms",
    "trust_remote_code",
    "factory",
    "kwargs",
    "embeddings",
    "ids",
    "key",
    "on_missing",
)

# What an embedding job (embed, diagnostics_layers) asks a cluster for (sbatch --gpus/--gres,
# --mem, -t, --cpus-per-gpu through the Slurm executor); None values are dropped. Partition and
# account live in the profile.
EMBED_RESOURCES = {
    key: config["embed"]["resources"][key]
    for key in ("gpu", "gpu_model", "gres", "mem_mb", "runtime", "cpus_per_gpu")
}
# Models with a layer sweep (`layers:`): they get results/diagnostics/models/{model}/layers.*.
SWEPT_MODELS = [m for m in MODELS if MODEL_SPECS[m].get("layers")]


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),
    weighting="binary|entropy",
    shard=r"\d{5}-of-\d{5}",
    variant=r"full|(pca|truncate)\d+(\+(fp16|int8|binary))?|fp16|int8|binary",


def canonical(value):
    """``value`` with every mapping's keys sorted, recursively. Snakemake's params trigger
    compares reprs, so the order keys are written in (or defaults filled in) must not look like
    a change; rules pass config sections through this."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


def all_targets():
    """What `snakemake` with no target makes: the summary, the headline plot and, when they
    are on, the diagnostics report and the deployment study."""
    targets = [
        "results/summary.csv",
        "results/plots/corrembed_vs_imagenet.png",
        "results/plots/corrembed_vs_imagenet.svg",
    ]
    if config["diagnostics"]["enabled"]:
        targets.append("results/diagnostics/report.html")
    return targets + list(deployment_outputs().values())


def is_demo():
    return config["catalogue"]["manifest"] == "demo"


def manifest_path():
    return f"{DEMO}/manifest.csv" if is_demo() else config["catalogue"]["manifest"]


def ingest_inputs(wildcards):
    inputs = {"manifest": manifest_path()}
    if is_demo():
        inputs["images"] = f"{DEMO}/images"
    return inputs


def interactions_path():
    source = config["tags"]["interactions"]
    return f"{DEMO}/interactions.csv" if source == "demo" else source


def tags_inputs(wildcards):
    inputs = {
        "images": "results/catalogue/images.parquet",
        "tags": "results/catalogue/tags.parquet",
    }
    if interactions_path():
        inputs["interactions"] = interactions_path()
    return inputs


def tag_settings():
    # Without the list of weightings: adding one must not rerun the others' tags and scores.
    return canonical({k: v for k, v in config["tags"].items() if k != "weightings"})


def embedding_spec(wildcards):
    """The model's embedding-relevant keys (the library parses this mapping once per job)."""
    spec = MODEL_SPECS[wildcards.model]
    return canonical({key: spec[key] for key in EMBEDDING_KEYS if key in spec})


def sweep_layers(wildcards):
    """The model's layer sweep entries (config `layers:`)."""
    return list(MODEL_SPECS[wildcards.model]["layers"])


def embedding_setting(key):
    """A model's own precision/decoder, else the run-wide embed default (both re-embed)."""
    return lambda wildcards: MODEL_SPECS[wildcards.model].get(key, config["embed"][key])


def embedding_shard_files(wildcards):
    count = config["embed"]["shards"]
    return [
        f"results/embeddings/{wildcards.model}/shards/shard-{k:05d}-of-{count:05d}.parquet"
        for k in range(count)
    ]


def score_files(suffix):
    return expand(
        "results/scores/{model}/{weighting}{suffix}",
        model=MODELS,
        weighting=WEIGHTINGS,
        suffix=suffix,
    )


def diagnostics_settings(*keys):
    """The diagnostics config section, or only ``keys`` of it, as a plain (canonical) value."""
    section = config["diagnostics"]
    return canonical({k: section[k] for k in (keys or section)})


def diagnostics_rankings():
    """Each weighting's model ranking for the summary's rank columns (none when diagnostics are off)."""
    if not config["diagnostics"]["enabled"]:
        return []
    return expand(
        "results/diagnostics/comparison/{weighting}/ranking.csv", weighting=WEIGHTINGS
    )


def diagnostics_retrieval_tables():
    """Each model x weighting's retrieval table for the summary's retrieval columns (none when off)."""
    if not config["diagnostics"]["enabled"]:
        return []
    return expand(
        "results/diagnostics/models/{model}/{weighting}.retrieval.csv",
        model=MODELS,
        weighting=WEIGHTINGS,
    )


def diagnostics_report_inputs(wildcards):
    model_files = ("neighbours.png", "map.png", "collage.png")
    comparison_files = (
        "ranking.csv",
        "pairs.csv",
        "ranking.png",
        "attributes.png",
        "corrembed_vs_ndcg.png",
        "best_vs_worst.png",
    )
    return {
        **deployment_outputs(),
        "layers": expand(
            "results/diagnostics/models/{model}/layers.{ext}",
            model=SWEPT_MODELS,
            ext=("csv", "png"),
        ),
        "summary": "results/summary.csv",
        "headline": "results/plots/corrembed_vs_imagenet.png",
        "model_figures": expand(
            "results/diagnostics/models/{model}/{file}", model=MODELS, file=model_files
        ),
        "tables": expand(
            "results/diagnostics/models/{model}/{weighting}.{kind}.csv",
            model=MODELS,
            weighting=WEIGHTINGS,
            kind=("attributes", "retrieval"),
        ),
        "comparison": expand(
            "results/diagnostics/comparison/{weighting}/{file}",
            weighting=WEIGHTINGS,
            file=comparison_files,
        ),
        "audit": [
            "results/diagnostics/tag_audit.csv",
            "results/diagnostics/audit/confusions.csv",
            "results/diagnostics/audit/suspects.png",
            "results/diagnostics/model_agreement.csv",
            "results/diagnostics/audit/model_agreement.png",
        ],
    }


# Models with source: precomputed (rules/precomputed.smk reads their files instead of embedding).
PRECOMPUTED_MODELS = [
    m for m in MODELS if MODEL_SPECS[m].get("source") == "precomputed"
]


def precomputed_files(wildcards):
    spec = MODEL_SPECS[wildcards.model]
    return [spec["embeddings"]] + ([spec["ids"]] if spec.get("ids") else [])


# Deployment study (workflow/rules/deployment.smk): the variants every model is scored under.
DEPLOYMENT_VARIANTS = list(dict.fromkeys(["full", *config["deployment"]["variants"]]))


def deployment_enabled():
    return config["deployment"]["enabled"]


def deployment_settings():
    """What a variant's scores depend on (not the list of variants: adding one reruns no other)."""
    return canonical(
        {
            k: v
            for k, v in config["deployment"].items()
            if k not in ("variants", "enabled")
        }
    )


def deployment_variant_inputs(wildcards):
    inputs = {
        "shard": f"results/embeddings/{wildcards.model}/part-00000.parquet",
        "vectors": expand("results/tags/{weighting}/vectors.npz", weighting=WEIGHTINGS),
        "per_anchor": expand(
            "results/scores/{model}/{weighting}.per_anchor.parquet",
            model=wildcards.model,
            weighting=WEIGHTINGS,
        ),
    }
    if wildcards.variant.startswith("pca"):
        inputs["basis"] = f"results/deployment/{wildcards.model}/pca_basis.npz"
    return inputs


def deployment_variant_files():
    return expand(
        "results/deployment/{model}/{variant}.{ext}",
        model=MODELS,
        variant=DEPLOYMENT_VARIANTS,
        ext=("parquet", "json"),
    )


def deployment_outputs():
    """The study's outputs for rule all, the summary and the report (none when it is off)."""
    if not deployment_enabled():
        return {}
    return {
        "deployment_csv": "results/deployment.csv",
        "deployment_recommendation": "results/deployment/recommendation.json",
        "deployment_bytes_figure": "results/deployment/quality_vs_bytes.png",
        "deployment_speed_figure": "results/deployment/quality_vs_speed.png",
    }

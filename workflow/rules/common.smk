# Helpers shared by the rules: config look-ups kept out of the rule bodies.

import re

MODELS = list(config["models"])
WEIGHTINGS = list(config["tags"]["weightings"])
DEMO = "results/demo"
# Model keys that change the embedding; everything else (batch size, device, ImageNet
# figures) must not re-embed, so embed jobs see only these as params.
EMBEDDING_KEYS = ("arch", "weights", "layer", "transforms")


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),
    weighting="binary|entropy",


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


def embedding_spec(wildcards):
    spec = config["models"][wildcards.model]
    return {key: spec[key] for key in EMBEDDING_KEYS if key in spec}


def score_files(suffix):
    return expand(
        "results/scores/{model}/{weighting}{suffix}",
        model=MODELS,
        weighting=WEIGHTINGS,
        suffix=suffix,
    )

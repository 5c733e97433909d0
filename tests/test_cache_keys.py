"""Existing embedding cache keys stay valid across refactors of corrembed.models.

The expected keys below were computed by the code BEFORE the models package was split (commit
b656400, ``corrembed/models.py`` with torchvision's private ``ImageClassification``) for four
torchvision specs x two decoders x two precisions. A cache filled by that code must be found by
this one: if a key here changes, every user's embedding cache is silently re-embedded.

Random-init identities name the torch/torchvision versions, so their keys depend on the
installed versions: for those the identity dict is pinned (with the running versions) and the
key function is pinned on the dict recorded with the versions of the time.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

from conftest import MOBILENET_CHECKPOINT, require_shared
from corrembed.embed.cache import embedding_identity, identity_key
from corrembed.models import build_transform, parse_model_spec

SPECS = {
    "r18_random": {
        "arch": "resnet18",
        "weights": None,
        "transforms": {
            "resize_size": 72,
            "crop_size": 64,
            "mean": 0.5,
            "std": [0.25, 0.5, 0.75],
            "interpolation": "bicubic",
        },
    },
    "mnv2_ckpt": {
        "arch": "mobilenet_v2",
        "weights": str(MOBILENET_CHECKPOINT),
        "transforms": {"mean": 0.5, "std": 0.5},
    },
    "r50_v2": {"arch": "resnet50", "weights": "IMAGENET1K_V2"},
    "vit_default": {"arch": "vit_b_16", "weights": "DEFAULT", "layer": "encoder.ln"},
}

#: identity keys computed by the pre-split code (torch 2.14.1+cu130, torchvision 0.29.1+cu130).
OLD_KEYS = {
    "r18_random/pil/fp32": "46aafe4e088dc22a6edd",
    "r18_random/pil/bf16": "16e3626182bcad81035a",
    "r18_random/torchvision/fp32": "7a18e6d776ce13ca1599",
    "r18_random/torchvision/bf16": "622205dc5ff89cd5ecba",
    "mnv2_ckpt/pil/fp32": "0c50181914cf7175e87b",
    "mnv2_ckpt/pil/bf16": "1c7c01eda426d2ccba0b",
    "mnv2_ckpt/torchvision/fp32": "50a4653248e66cbf1bb3",
    "mnv2_ckpt/torchvision/bf16": "c100a112ee21dda0d5e1",
    "r50_v2/pil/fp32": "36226dbd9a4355a4cff3",
    "r50_v2/pil/bf16": "82f021ead1ccb1a0b270",
    "r50_v2/torchvision/fp32": "788bf71e41e49319c5a7",
    "r50_v2/torchvision/bf16": "e1acdd671e7b895610f0",
    "vit_default/pil/fp32": "5749ef41d3a9bd07ad13",
    "vit_default/pil/bf16": "48657e69f143ba753226",
    "vit_default/torchvision/fp32": "419fb1f9fab961b110ac",
    "vit_default/torchvision/bf16": "5385d4fbb224e7972ee0",
}
OLD_VERSIONS = {"torch": "2.14.1+cu130", "torchvision": "0.29.1+cu130"}

#: The pre-split identity of the random-init resnet18 (pil, fp32), versions of the time.
OLD_RANDOM_IDENTITY = {
    "format": "corrembed-embedding-cache/1",
    "arch": "resnet18",
    "weights": {"kind": "random", "seed": 0, **OLD_VERSIONS},
    "layer": "penultimate",
    "transforms": {
        "resize_size": 72,
        "crop_size": 64,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.5, 0.75],
        "interpolation": "bicubic",
        "antialias": True,
    },
    "decoder": "pil",
    "precision": "fp32",
}

CASES = sorted(OLD_KEYS)


def _identity(case: str) -> dict:
    name, decoder, precision = case.split("/")
    spec = parse_model_spec(SPECS[name], model_name=name)
    return embedding_identity(spec, build_transform(spec)[1], precision=precision, decoder=decoder)


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("r18_random")])
def test_pretrained_and_checkpoint_keys_unchanged(case):
    if case.startswith("mnv2_ckpt"):
        require_shared(MOBILENET_CHECKPOINT)
    identity = _identity(case)
    assert "source" not in identity  # torchvision identities keep their old shape
    assert identity_key(identity) == OLD_KEYS[case]


def test_key_function_unchanged():
    assert identity_key(OLD_RANDOM_IDENTITY) == OLD_KEYS["r18_random/pil/fp32"]


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("r18_random")])
def test_random_init_identity_unchanged(case):
    _, decoder, precision = case.split("/")
    expected = copy.deepcopy(OLD_RANDOM_IDENTITY)
    expected.update(decoder=decoder, precision=precision)
    assert identity_key(expected) == OLD_KEYS[case]
    # The same dict, with the versions installed now.
    expected["weights"].update(torch=torch.__version__, torchvision=torchvision.__version__)
    assert _identity(case) == expected

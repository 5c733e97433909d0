"""One source of truth for the model spec keys and the layer default: the config schema.

The library's key lists (``corrembed.models.spec``), every source's ``extra_keys`` and
``default_layer``, and the copies ``workflow/rules/common.smk`` keeps (it builds the DAG without
importing the library) are checked against ``workflow/schemas/config.schema.yaml``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from corrembed.models import SOURCES, get_source, parse_model_spec
from corrembed.models.preprocess import TRANSFORM_KEYS
from corrembed.models.spec import (
    DIAGNOSTIC_KEYS,
    EMBEDDING_KEYS,
    IMAGENET_KEYS,
    RUN_KEYS,
    SOURCE_OPTION_KEYS,
    SPEC_KEYS,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
MODEL = SCHEMA["properties"]["models"]["additionalProperties"]
COMMON = (ROOT / "workflow/rules/common.smk").read_text()


def required_keys(schema: dict) -> set[str]:
    """Keys the schema requires, also under its per-source ``allOf`` if/then/else clauses."""
    required = set(schema.get("required", []))
    for clause in schema.get("allOf", []):
        for branch in ("then", "else"):
            required |= set(clause.get(branch, {}).get("required", []))
    return required


def test_every_model_key_of_the_schema_is_one_the_library_knows_and_back():
    library = set(SPEC_KEYS + RUN_KEYS + DIAGNOSTIC_KEYS).union(*SOURCE_OPTION_KEYS.values())
    assert set(MODEL["properties"]) == library
    assert required_keys(MODEL) <= set(SPEC_KEYS).union(*SOURCE_OPTION_KEYS.values())


def test_the_sources_are_the_schemas_and_their_extra_keys_the_registrys():
    assert MODEL["properties"]["source"]["enum"] == list(SOURCES) == list(SOURCE_OPTION_KEYS)
    for name in SOURCES:
        source = get_source(name)
        assert source.extra_keys == SOURCE_OPTION_KEYS[name]
        for key in source.extra_keys:  # the schema says which source a key belongs to
            assert MODEL["properties"][key]["description"].startswith(f"{name} only")


def test_nested_key_lists_are_the_schemas():
    assert tuple(MODEL["properties"]["imagenet"]["properties"]) == IMAGENET_KEYS
    assert tuple(MODEL["properties"]["transforms"]["properties"]) == TRANSFORM_KEYS


def test_common_smk_embedding_keys_are_the_librarys():
    match = re.search(r"^EMBEDDING_KEYS = (\([^)]*\))", COMMON, re.M)
    assert match, "common.smk must define EMBEDDING_KEYS as a tuple literal"
    assert ast.literal_eval(match.group(1)) == EMBEDDING_KEYS
    assert set(EMBEDDING_KEYS) <= set(MODEL["properties"])
    assert not set(EMBEDDING_KEYS) & set(RUN_KEYS + DIAGNOSTIC_KEYS + ("imagenet",))


@pytest.mark.parametrize("name", list(SOURCES))
def test_layer_default_is_the_sources_own_and_the_schema_says_so(name):
    default = get_source(name).default_layer
    layer_doc = " ".join(MODEL["properties"]["layer"]["description"].split())
    section = layer_doc.split(f"{name}:", 1)[1]
    assert section.lstrip().startswith(f"{default} (default"), (name, section[:60])
    arch = {"torchvision": "resnet18", "timm": "resnet18", "open_clip": "RN50"}.get(name)
    if arch is not None:  # a hub id needs the hub, python and precomputed their own keys: same code path
        spec = parse_model_spec({"source": name, "arch": arch, "weights": None}, model_name="m")
        assert spec.layer == default


def test_common_smk_torchvision_layer_default_is_the_sources():
    match = re.search(r'setdefault\("layer", "([^"]+)"\)', COMMON)
    assert match, "common.smk's torchvision layer default moved: check it against the source here"
    assert match.group(1) == get_source("torchvision").default_layer

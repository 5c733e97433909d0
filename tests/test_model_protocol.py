"""Every registered model source provides the whole ModelSource protocol, fetch included."""

from __future__ import annotations

import inspect

import pytest

from corrembed.models import SOURCES, ModelSource, get_source

#: The protocol's members: its annotated attributes and its methods.
MEMBERS = sorted(
    set(ModelSource.__annotations__)
    | {name for name, value in vars(ModelSource).items() if inspect.isfunction(value) and not name.startswith("_")}
)


def test_the_protocol_has_fetch_and_the_attributes_it_documents():
    assert "fetch" in MEMBERS
    assert {"name", "default_layer", "extra_keys", "build", "preprocessing", "extractor"} <= set(MEMBERS)


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_source_has_every_member_with_the_protocols_keywords(name):
    source = get_source(name)
    missing = [member for member in MEMBERS if not hasattr(source, member)]
    assert not missing, f"source {name!r} lacks {missing}"
    assert source.name == name
    for member in MEMBERS:
        wanted = getattr(ModelSource, member, None)
        if inspect.isfunction(wanted):
            expected = {p for p in inspect.signature(wanted).parameters if p != "self"}
            have = set(inspect.signature(getattr(source, member)).parameters)
            assert expected <= have, (name, member, sorted(expected - have))

"""The examples in the docstrings of models/ and score/ modules that other doctest runs miss."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

MODULES = [
    "corrembed.models.spec",
    "corrembed.models.parse",
    "corrembed.models.build",
    "corrembed.models.source",
    "corrembed.models.preprocess",
    "corrembed.models.hub",
    "corrembed.score.results",
    "corrembed.score.tag_layout",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

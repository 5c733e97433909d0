"""The public API: every name in ``corrembed.__all__`` resolves and is documented, the package
imports without torch, and the documented examples run."""

from __future__ import annotations

import doctest
import inspect
import subprocess
import sys

import numpy as np
import pytest

import corrembed
import corrembed.score


@pytest.mark.parametrize("name", [n for n in corrembed.__all__ if n != "__version__"])
def test_every_public_name_resolves_and_has_a_docstring(name):
    obj = getattr(corrembed, name)
    assert obj.__doc__ and obj.__doc__.strip(), f"corrembed.{name} has no docstring"
    assert name in dir(corrembed)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        corrembed.no_such_thing  # noqa: B018


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    assert corrembed.__version__ == version("corrembed")


def test_importing_the_package_does_not_import_torch():
    code = "import sys, corrembed; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("module", [corrembed, corrembed.score])
def test_documented_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_auto_device_needs_no_separate_resolve_call():
    rng = np.random.default_rng(1)
    x, tags = rng.standard_normal((50, 8)), (rng.random((50, 6)) < 0.3).astype(float)
    auto = corrembed.corrembed(x, tags, anchors="all", device="auto").mean
    assert auto == corrembed.corrembed(x, tags, anchors="all").mean


#: Public names whose example H20b's branch adds (issue 20's score and model half); strict, so
#: the merge that brings the examples must drop them from here.
@pytest.mark.parametrize("name", [n for n in corrembed.__all__ if n != "__version__"])
def test_every_public_name_has_a_numpydoc_example_that_runs(name):
    obj = getattr(corrembed, name)
    assert "Examples\n" in inspect.cleandoc(obj.__doc__ or ""), f"corrembed.{name} has no numpydoc Examples section"
    module = sys.modules[obj.__module__]
    # numpydoc's convention: examples may use ``np`` without importing it.
    globs = {"np": np, **vars(module)}
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, module=module, globs=globs)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"corrembed.{name}: {result}"

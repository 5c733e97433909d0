"""The summary stage: one results table over every model, and its figures.

- :mod:`.table` :func:`summary_table` (``summary.csv``: a row per model, rank columns, the
  ingest, embedding and score records joined) and the readers of the stage records;
- :mod:`.plots` :func:`plot_corrembed_vs_imagenet` (matplotlib, Agg; written atomically);
- :mod:`.jobs` :func:`summary_job`, what the summary rule runs.

Names are loaded on first use, so reading the table does not import matplotlib.

Examples
--------
>>> from corrembed.summary import headline_weighting
>>> headline_weighting({"entropy": "catalogue", "binary": "binary"})
'binary'
"""

from importlib import import_module

#: Public name -> the module (in this package) that defines it.
_EXPORTS = {
    **dict.fromkeys(
        ["SUMMARY_COLUMNS", "headline_weighting", "read_metas", "read_scores", "summary_table", "weight_source"],
        "table",
    ),
    "plot_corrembed_vs_imagenet": "plots",
    "summary_job": "jobs",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Load a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)

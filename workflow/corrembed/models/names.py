"""Model names, in words: what the schema's ``propertyNames`` pattern means for a user.

A model's key in config ``models`` becomes a folder name (``results/embeddings/{model}/``,
``results/scores/{model}/``, ``logs/embed/{model}/``), so it may hold only characters that are safe
in a path on every system, and may not start with a dot or a dash (``../escape`` would write
outside ``results/``, ``a/b`` would make a nested folder). The pattern itself is read from
``workflow/schemas/config.schema.yaml``, its one source of truth; the Snakefile calls
:func:`check_model_names` before the schema validation so that a refused name is explained.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def model_name_pattern(schema: str | Path = SCHEMA) -> str:
    """The regular expression model keys must match (the schema's ``models.propertyNames``).

    Examples
    --------
    >>> model_name_pattern()
    '^[A-Za-z0-9][A-Za-z0-9_.-]*$'
    """
    import yaml  # Snakemake's own dependency: available wherever the Snakefile runs

    document = yaml.safe_load(Path(schema).read_text(encoding="utf-8"))
    return document["properties"]["models"]["propertyNames"]["pattern"]


def check_model_names(names: Iterable[object], *, pattern: str | None = None) -> None:
    """ConfigError explaining, in words, every model key that cannot be a folder name.

    Examples
    --------
    >>> check_model_names(["resnet50", "clip_vit-b.32"])
    >>> try:
    ...     check_model_names(["a/b"])
    ... except ConfigError as error:
    ...     print(str(error).splitlines()[0])
    model name 'a/b' in config 'models' cannot be used: it contains '/'.
    """
    expression = re.compile(pattern or model_name_pattern())
    problems = []
    for name in names:
        text = str(name)
        if expression.match(text):
            continue
        bad = sorted({c for c in text if not re.match(r"[A-Za-z0-9_.-]", c)})
        if not text:
            why = "it is empty"
        elif bad:
            why = "it contains " + ", ".join(repr(c) for c in bad)
        else:
            why = f"it starts with {text[0]!r}"
        problems.append(f"model name {text!r} in config 'models' cannot be used: {why}.")
    if problems:
        raise ConfigError(
            "\n".join(problems)
            + "\nModel names become folder names (results/embeddings/<name>/, results/scores/<name>/, logs/), so "
            "they may use only letters A-Z and a-z, digits, '_', '.' and '-', and must start with a letter or a "
            "digit (no '/', no '..' paths, no spaces). Rename the model key, e.g. 'resnet50_v2' or 'clip-vit-b32'."
        )

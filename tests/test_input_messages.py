"""Small input mishandlings: quoted CSV header cells, and refused model names explained in words."""

from __future__ import annotations

import csv
import io
import subprocess

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from corrembed.errors import ConfigError
from corrembed.ingest.manifest import read_table_as_strings
from corrembed.models.names import check_model_names, model_name_pattern
from test_messy_inputs import _csv, _ingest
from workflow_runner import SNAKEMAKE_ENV, snakemake_command, write_config

HEADER_CELL = st.text(alphabet=st.sampled_from(list("ab \"',;|\n")), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(HEADER_CELL, min_size=1, max_size=4, unique=True))
def test_csv_header_reads_as_the_csv_module_reads_it(tmp_path_factory, names):
    path = tmp_path_factory.mktemp("h") / "m.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerow([f"v{k}" for k in range(len(names))])
    expected = next(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert expected == names
    assert read_table_as_strings(path).columns == expected


def test_quoted_header_reaches_tags_parquet_unchanged(tmp_path):
    for i in range(3):
        Image.new("RGB", (4, 4), (60 * i, 10, 10)).save(tmp_path / f"{i}.png")
    manifest = _csv(
        tmp_path / "m.csv",
        ["item_id", "image", 'fit "slim"'],
        [["a", "0.png", "tight"], ["b", "1.png", "loose"], ["c", "2.png", "tight"]],
    )
    assert '"fit ""slim"""' in manifest.read_text()  # csv.writer quotes it as Excel does
    report, _, tags, _ = _ingest(manifest, tmp_path / "o")
    assert set(tags["category"].to_list()) == {'fit "slim"'}
    assert 'fit "slim"' in report.categories
    assert pl.read_parquet(tmp_path / "o" / "tags.parquet")["category"].unique().to_list() == ['fit "slim"']


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../escape", "it contains '/'"),
        ("a/b", "it contains '/'"),
        (".hidden", "it starts with '.'"),
        ("my model", "it contains ' '"),
        ("-x", "it starts with '-'"),
        ("", "it is empty"),
    ],
)
def test_refused_model_names_are_explained_in_words(name, why):
    with pytest.raises(ConfigError) as caught:
        check_model_names(["ok", name])
    text = str(caught.value)
    assert f"model name {name!r}" in text and why in text
    assert "become folder names" in text and "letters A-Z and a-z, digits, '_', '.' and '-'" in text
    assert model_name_pattern() not in text  # words, not the regular expression


def test_accepted_names_match_the_schema_pattern():
    import re

    for name in ["resnet50", "ViT-H_14.swag", "0model"]:
        assert re.match(model_name_pattern(), name)
        check_model_names([name])


def test_snakemake_prints_the_explanation(tmp_path):
    write_config(tmp_path, {"models": {"../escape": {"arch": "resnet18", "weights": None}}})
    result = subprocess.run(
        snakemake_command(tmp_path, "--cores", "1", "--dry-run"), capture_output=True, text=True, env=SNAKEMAKE_ENV
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "model name '../escape'" in output and "become folder names" in output

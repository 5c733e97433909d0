"""The audit and agreement report sections, their figures, and the summary's retrieval columns."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from corrembed.diagnostics.agreement import model_agreement
from corrembed.diagnostics.audit import audit_neighbours, confusion_pairs, tag_audit
from corrembed.diagnostics.audit_figures import agreement_heatmap, suspect_sheet
from corrembed.diagnostics.audit_report import audit_sections
from corrembed.diagnostics.report import write_report
from corrembed.diagnostics.retrieval_columns import RETRIEVAL_COLUMNS, with_retrieval_columns
from corrembed.storage import write_table


def test_sections_from_the_files_and_none_without_them(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    emb = rng.normal(size=(n, 4))
    values = rng.integers(0, 3, n)
    tags = sp.csr_matrix((np.ones(n), (np.arange(n), values)), shape=(n, 3))
    ids = np.array([f"i{j}" for j in range(n)])
    table = tag_audit(tags, np.array(["usage"] * 3), np.array(["a", "b", "c"]), ids, {"m": audit_neighbours(emb, 5)})
    write_table(tmp_path / "tag_audit.csv", table)
    write_table(tmp_path / "audit" / "confusions.csv", confusion_pairs(table))
    suspect_sheet(tmp_path / "audit" / "suspects.png", table, {}, n_items=8)  # unreadable images: grey tiles
    agreement = model_agreement({"m": emb, "other": emb + rng.normal(size=emb.shape)}, k=5)
    write_table(tmp_path / "model_agreement.csv", agreement)
    agreement_heatmap(tmp_path / "audit" / "model_agreement.png", agreement)
    sections = audit_sections(tmp_path, top=7)
    assert [s.title for s in sections] == ["Which tags look wrong?", "Which models see the catalogue alike?"]
    assert sections[0].tables[0].frame.height == 7 and "suggested_value" in sections[0].tables[0].frame.columns
    assert sections[1].tables[0].frame.columns == ["model_a", "model_b", "cka", "mutual_knn", "k"]
    write_report(tmp_path / "report.html", "t", "", sections)
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64") == 2 and "model_a" in page
    assert audit_sections(tmp_path / "nothing") == []


def test_summary_retrieval_columns_join_and_nulls():
    summary = pl.DataFrame({"model": ["a", "b"], "weighting": ["binary", "binary"], "mrr": [None, None], "x": [1, 2]})
    table = pl.DataFrame(
        {
            "metric": ["ndcg", "recall", "recall", "map_at_r", "map_at_r", "mrr"],
            "category": [None, "c1", "c2", "c1", "c2", "c1"],
            "mean": [0.5, 0.2, float("nan"), 0.1, 0.3, 0.4],
            "model": ["a"] * 6,
            "weighting": ["binary"] * 6,
        }
    )
    out = with_retrieval_columns(summary, [table])
    assert out.columns == ["model", "weighting", "mrr", "x", "ndcg_at_10", "recall_at_10", "map_at_r"]
    row = out.row(0, named=True)
    assert row["ndcg_at_10"] == 0.5 and row["recall_at_10"] == 0.2 and abs(row["map_at_r"] - 0.2) < 1e-12
    assert row["mrr"] == 0.4
    assert all(out.row(1, named=True)[c] is None for c in RETRIEVAL_COLUMNS)

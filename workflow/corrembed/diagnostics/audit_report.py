"""The report's sections for the tag audit and the model agreement (files under the diagnostics root).

Reads ``tag_audit.csv``, ``audit/confusions.csv``, ``audit/suspects.png``, ``model_agreement.csv``
and ``audit/model_agreement.png``; a section whose files are missing is left out.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from .report import Figure, Section, Table

AUDIT_SHOWN = ("item_id", "category", "value", "suggested_value", "agreement", "suspicion", "suggested_share")


def audit_sections(root: Path, top: int = 20) -> list[Section]:
    """[tag audit section, model agreement section] for the files present under ``root``."""
    sections = []
    if (root / "tag_audit.csv").exists():
        audit = pl.read_csv(root / "tag_audit.csv", infer_schema_length=None)
        models = audit["models"][0].replace(";", ", ") if audit.height else ""
        sections.append(
            Section(
                "Which tags look wrong?",
                f"Every item's nearest neighbours under the consensus models ({models}: the best model and those "
                "tied with it) vote on its tags. <i>agreement</i> is the share of neighbours sharing the item's "
                "value; <i>suspicion</i> = how far that falls short of chance (rare values seldom match even "
                "random neighbours) + how far the best other value's vote exceeds its chance; the suggested value "
                "is that other value. All rows: <code>results/diagnostics/tag_audit.csv</code>.",
                tables=[
                    Table(
                        audit.head(top).select([c for c in AUDIT_SHOWN if c in audit.columns]),
                        f"The {top} most suspect (item, category) tags.",
                        decimals=3,
                    ),
                    Table(
                        pl.read_csv(root / "audit" / "confusions.csv"),
                        "Per category, the value pairs most often confused (items whose neighbours suggest the other "
                        "value, with a positive suspicion) and their mean suspicion.",
                        decimals=3,
                    ),
                ],
                figures=[
                    Figure(
                        root / "audit" / "suspects.png",
                        "Most suspect tags",
                        "Each tile: an item, the category audited, its tag and the value its neighbours suggest. "
                        "Check these first; a high score with a plausible suggestion is a likely tagging error.",
                    )
                ],
            )
        )
    if (root / "model_agreement.csv").exists():
        agreement = pl.read_csv(root / "model_agreement.csv")
        sections.append(
            Section(
                "Which models see the catalogue alike?",
                "For every pair of models: debiased linear CKA (Kornblith et al. 2019; 1 = the same geometry up to "
                "rotation and scale, about 0 = unrelated) and mutual k-NN (Huh et al. 2024: the mean share of each "
                "query's k nearest items the two models have in common). Two models tied on CorrEmbed but with a "
                "low agreement are complementary, not redundant.",
                tables=[Table(agreement, "Every pair of models (results/diagnostics/model_agreement.csv).", 3)],
                figures=[
                    Figure(
                        root / "audit" / "model_agreement.png",
                        "Model agreement",
                        "Left: CKA; right: mutual k-NN. Bright off-diagonal cells mark models that see the "
                        "catalogue the same way.",
                    )
                ],
            )
        )
    return sections

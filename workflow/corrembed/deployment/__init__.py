"""The deployment study (SPEC section 3, stage 7): what a cheaper vector costs in agreement with
the tags, and the cheapest configuration statistically tied with the best model.

- :mod:`.variants`: PCA-k, truncation, fp16, int8 (FAISS QT_8bit), binary and their combinations;
- :mod:`.study`: scoring one variant (CorrEmbed, interval, nDCG@k) and the paired bootstrap;
- :mod:`.table`: ``results/deployment.csv`` with the tests against the full and the best model
  and the measured costs; :mod:`.recommend`: the recommendation and the summary's columns;
- :mod:`.figures`: quality against bytes per item and against images/s; :mod:`.report`: the
  report's section; :mod:`.stages`: the rules' file handling.

Examples
--------
>>> import numpy as np
>>> from corrembed.deployment import apply_variant, parse_variant
>>> apply_variant(np.array([[3.0, -4.0], [0.0, 2.0]]), parse_variant("fp16")).tolist()
[[0.60009765625, -0.7998046875], [0.0, 1.0]]
"""

from .recommend import SUMMARY_DEPLOYMENT_COLUMNS, Recommendation, recommend, with_deployment_columns
from .study import VariantScores, paired_difference, score_variant
from .table import DEPLOYMENT_COLUMNS, ModelCost, deployment_table
from .variants import (
    PcaBasis,
    Variant,
    apply_variant,
    binary_codes,
    int8_decode,
    int8_encode,
    parse_variant,
    pca_basis,
    variants_for,
)

__all__ = [
    "DEPLOYMENT_COLUMNS",
    "SUMMARY_DEPLOYMENT_COLUMNS",
    "ModelCost",
    "PcaBasis",
    "Recommendation",
    "Variant",
    "VariantScores",
    "apply_variant",
    "binary_codes",
    "deployment_table",
    "int8_decode",
    "int8_encode",
    "paired_difference",
    "parse_variant",
    "pca_basis",
    "recommend",
    "score_variant",
    "variants_for",
    "with_deployment_columns",
]

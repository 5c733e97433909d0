"""The deployment rules' work on files: the PCA basis, one variant's scores, the study's outputs.

Layout (relative to the workflow's ``results/``): ``deployment/{model}/pca_basis.npz``,
``deployment/{model}/{variant}.parquet`` (per-anchor r_a and nDCG, :data:`VARIANT_COLUMNS`) and
``.json`` (:class:`~corrembed.records.DeploymentVariantRecord`), then ``deployment.csv``,
``deployment/recommendation.json`` and the figures. Items and anchors are exactly the score
stage's (:func:`corrembed.diagnostics.inputs.load_model_inputs`, the score's per-anchor file).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from ..diagnostics.inputs import load_model_inputs, score_anchors
from ..errors import ScoringError
from ..records import DeploymentVariantRecord, EmbeddingMeta
from ..score import ScoreOptions
from ..storage import atomic_path, write_json, write_table
from ..summary.table import headline_weighting, weight_source
from ..tags import load_tag_vectors
from .figures import pareto_bytes, pareto_speed
from .recommend import recommend
from .study import VARIANT_COLUMNS, VariantScores, score_variant
from .table import ModelCost, deployment_table
from .variants import PcaBasis, parse_variant, pca_basis


def _inputs(shard, vectors: dict, item_embedding: str):
    """(ModelInputs of the first weighting, weighting -> tag matrix aligned with its items)."""
    names = list(vectors)
    inputs = load_model_inputs(shard, vectors[names[0]], item_embedding)
    matrices = {names[0]: inputs.tags.matrix}
    for w in names[1:]:
        other = load_tag_vectors(vectors[w])
        lookup = {str(i): j for j, i in enumerate(other.item_ids.tolist())}
        missing = [i for i in inputs.item_ids.tolist() if str(i) not in lookup]
        if missing:
            raise ScoringError(f"{vectors[w]}: {len(missing)} item(s) of {vectors[names[0]]} are missing; rerun tags")
        matrices[w] = other.matrix[[lookup[str(i)] for i in inputs.item_ids.tolist()]]
    return inputs, matrices


def write_pca_basis(path, shard, vectors_path, item_embedding: str = "first") -> None:
    """The PCA basis (:func:`~corrembed.deployment.variants.pca_basis`) of a model's scored item
    embeddings, written atomically as .npz (mean, components, variances)."""
    inputs = load_model_inputs(shard, vectors_path, item_embedding)
    basis = pca_basis(inputs.embeddings)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, mean=basis.mean, components=basis.components, variances=basis.variances)


def read_pca_basis(path) -> PcaBasis:
    """The basis :func:`write_pca_basis` wrote."""
    with np.load(Path(path), allow_pickle=False) as z:
        return PcaBasis(mean=z["mean"], components=z["components"], variances=z["variances"])


def run_variant(
    *,
    model: str,
    variant: str,
    shard,
    vectors: dict,
    per_anchor: dict,
    basis=None,
    settings: dict,
    scoring: dict,
    table_path,
    record_path,
) -> VariantScores | None:
    """Score one variant of one model on the score's anchors and write its two files (None, and a
    record marked ``skipped``, for a reduction to at least the model's dimension).

    vectors, per_anchor: weighting -> the tags stage's vectors.npz / the score's per-anchor
    Parquet; basis: the model's pca_basis.npz (pca variants); settings: the ``deployment:``
    section; scoring: the ``scoring:`` section (include_self, memory budget, device).
    """
    spec = parse_variant(variant)
    inputs, matrices = _inputs(shard, vectors, scoring["item_embedding"])
    n, d = inputs.embeddings.shape
    if spec.dims is not None and spec.dims >= d:
        # Not a reduction of this model: recorded as skipped, left out of the study.
        write_table(table_path, pl.DataFrame(schema=dict.fromkeys(VARIANT_COLUMNS, pl.Float64)))
        DeploymentVariantRecord(
            model=model,
            variant=spec.name,
            reduction=spec.reduction,
            dims=d,
            precision=spec.precision,
            bytes_per_item=spec.bytes_per_item(d),
            n_items=n,
            retrieval_k=settings["retrieval_k"],
            skipped=f"{spec.dims} dimensions are not fewer than the model's {d}",
            settings={"deployment": settings, "scoring": scoring},
        ).write(record_path)
        return None
    anchor_lists = {w: score_anchors(per_anchor[w], inputs) for w in per_anchor}
    anchors = next(iter(anchor_lists.values()))
    if any(not np.array_equal(a, anchors) for a in anchor_lists.values()):
        raise ScoringError(f"{model}: the weightings' scores drew different anchors; rerun the score stage")
    full = {w: pl.read_parquet(p)["r_pearson"].to_numpy() for w, p in per_anchor.items()}
    scores = score_variant(
        inputs.embeddings,
        matrices,
        anchors,
        spec,
        options=ScoreOptions.from_config(scoring),
        basis=None if basis is None else read_pca_basis(basis),
        retrieval_k=settings["retrieval_k"],
        full_per_anchor=full,
        model=model,
        item_ids=inputs.item_ids,
    )
    write_table(table_path, scores.to_table(inputs.item_ids).select(VARIANT_COLUMNS))
    DeploymentVariantRecord(
        model=model,
        variant=spec.name,
        reduction=spec.reduction,
        dims=scores.dims,
        precision=spec.precision,
        bytes_per_item=scores.bytes_per_item,
        n_items=int(n),
        retrieval_k=scores.retrieval_k,
        scores={
            w: {
                "corrembed": float(np.nanmean(r)),
                "ndcg": float(np.nanmean(scores.ndcg[w])),
                "n_anchors": int(np.isfinite(r).sum()),
            }
            for w, r in scores.per_anchor.items()
        },
        settings={"deployment": settings, "scoring": scoring},
    ).write(record_path)
    return scores


def read_variant(table_path, record_path) -> tuple[DeploymentVariantRecord, VariantScores]:
    """A variant's record and scores back from its two files."""
    record = DeploymentVariantRecord.read(record_path)
    scores = VariantScores.from_table(
        pl.read_parquet(table_path),
        parse_variant(record.variant),
        record.dims,
        record.bytes_per_item,
        record.retrieval_k,
    )
    return record, scores


def run_study(
    *,
    variant_files: list[tuple[str, str]],
    metas: dict,
    model_specs: dict,
    categories: dict,
    comparison: dict,
    scoring: dict,
    csv_path,
    recommendation_path,
    bytes_figure,
    speed_figure,
) -> pl.DataFrame:
    """Join every scored variant into ``deployment.csv``, the recommendation and the figures.

    variant_files: (table, record) path pairs; metas: model -> meta.json path; model_specs: model ->
    its config entry (parameters and GFLOPs from the source's metadata, never downloaded);
    categories: weighting -> the tags stage's categories.csv (the headline weighting, shown in
    the figures, is the summary's);
    comparison: ``{alpha, correction}`` (the model comparison's); scoring: bootstrap, confidence, seed.
    """
    from ..models import imagenet_metadata, parse_model_spec  # the model sources (torch) only where a study runs

    scores: dict[str, list[VariantScores]] = {}
    n_items: dict[str, int] = {}
    for table_path, record_path in variant_files:
        record, variant_scores = read_variant(table_path, record_path)
        if record.skipped:
            continue
        scores.setdefault(record.model, []).append(variant_scores)
        n_items[record.model] = record.n_items
    metadata = {
        m: imagenet_metadata(parse_model_spec(model_specs[m], model_name=m)) for m in scores if m in model_specs
    }
    costs = {m: ModelCost.of(EmbeddingMeta.read(metas[m]) if m in metas else None, metadata.get(m)) for m in scores}
    table = deployment_table(
        scores,
        costs,
        n_items,
        alpha=comparison["alpha"],
        correction=comparison["correction"],
        resamples=max(int(scoring["bootstrap"]), 1),
        confidence=scoring["confidence"],
        seed=scoring["seed"],
    )
    write_table(csv_path, table)
    headline = headline_weighting({w: weight_source(pl.read_csv(p)) for w, p in categories.items()})
    weightings = list(dict.fromkeys(table["weighting"].to_list()))
    picks = {w: recommend(table, w) for w in weightings}
    write_json(recommendation_path, {"headline": headline, "weightings": {w: r.as_dict() for w, r in picks.items()}})
    shown = headline if headline in picks else weightings[0]
    pareto_bytes(bytes_figure, table, shown, recommended=picks[shown].cheapest)
    pareto_speed(speed_figure, table, shown)
    return table


def deployment_paths(root: str | os.PathLike = "results") -> dict[str, Path]:
    """The study's output files under ``root`` (csv, recommendation, bytes and speed figures)."""
    root = Path(root)
    return {
        "csv": root / "deployment.csv",
        "recommendation": root / "deployment" / "recommendation.json",
        "bytes_figure": root / "deployment" / "quality_vs_bytes.png",
        "speed_figure": root / "deployment" / "quality_vs_speed.png",
    }

"""How much bf16 / fp16 autocast moves CorrEmbed versus fp32, on the real catalogue (CUDA only).

The pretrained MobileNetV2 checkpoint embeds all 3,000 real product photos in fp32 and in
bf16 (and fp16) autocast on the GPU; binary tag vectors (gender, masterCategory, subCategory,
articleType, baseColour, season, usage); CorrEmbed over all anchors. The README promises the
reduced-precision score stays within 0.002 of the fp32 one. Prints the figures (pytest -s).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from corrembed.embed import embed_images
from corrembed.embed.store import read_embeddings
from corrembed.score import corrembed
from corrembed.tags import tag_vectors

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CATEGORIES = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_moves_corrembed_by_less_than_0_002(fashion_dir, mobilenet_checkpoint, tmp_path, precision):
    manifest = pl.read_csv(fashion_dir / "tags.csv", infer_schema_length=0)
    images = pl.DataFrame(
        {"item_id": manifest["id"], "image": [str(fashion_dir / "images" / name) for name in manifest["image"]]}
    )
    long = (
        manifest.unpivot(index="id", on=list(CATEGORIES), variable_name="category", value_name="value")
        .rename({"id": "item_id"})
        .drop_nulls("value")
    )
    tags = tag_vectors(long, images["item_id"].to_list(), {c: 1.0 for c in CATEGORIES}).matrix
    spec = {"arch": "mobilenet_v2", "weights": str(mobilenet_checkpoint), "transforms": {"mean": 0.5, "std": 0.5}}
    scores = {}
    for name in ("fp32", precision):
        embed_images(
            images,
            spec,
            tmp_path / name,
            model_name="mnv2",
            torch_home=None,
            batch_size=128,
            num_workers=4,
            device="cuda",
            precision=name,
            progress=lambda line: None,
        )
        vectors = read_embeddings(tmp_path / name).vectors.astype(np.float64)
        scores[name] = corrembed(vectors, tags, anchors="all").mean
    print(
        f"\nCorrEmbed fp32 {scores['fp32']:.5f}, {precision} {scores[precision]:.5f}, "
        f"difference {scores[precision] - scores['fp32']:+.5f} ({torch.cuda.get_device_name()})"
    )
    assert abs(scores[precision] - scores["fp32"]) < 0.002

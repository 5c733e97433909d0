"""How much the reduced-scale JPEG decoder (``decoder: pil-reduced``) moves CorrEmbed (a script).

The 3,000 real product photos of ``../shared/data/fashion-product-224`` are upscaled to product
size (800 x 1000, JPEG quality 90, into a temporary folder unless ``--work`` names one) and embedded
by a real pretrained checkpoint with ``decoder: pil`` (full decode, then resize) and with
``decoder: pil-reduced`` (libjpeg DCT scaling to the smallest scale keeping the shorter side at least
the resize size, then the same resize). CorrEmbed over all anchors on the binary tag vectors (gender,
masterCategory, subCategory, articleType, baseColour, season, usage) is printed for both, with the
difference and the per-image cosine similarity of the two embeddings. The README quotes the move;
the decision to make ``pil-reduced`` the default rests on it staying within 0.002.

Models: the MobileNetV2 ImageNet checkpoint (``../shared/weights``, mean = std = 0.5), and, where the
installed corrembed has the timm model source and timm is installed, the timm EfficientNet-Lite0/1/2
checkpoints. Usage::

    .venv/bin/python benchmarks/decoder_corrembed.py [--images 3000] [--work DIR] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# The same product-size copies as the embedding benchmark (this folder is on sys.path when run).
from embed_bench import make_upscaled

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FASHION = SHARED / "data" / "fashion-product-224"
WEIGHTS = SHARED / "weights"
CATEGORIES = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage")


def model_specs() -> dict[str, dict]:
    """name -> model spec of the real checkpoints this corrembed can build."""
    specs = {
        "mobilenet_v2": {
            "arch": "mobilenet_v2",
            "weights": str(WEIGHTS / "mobilenet_v2_imagenet_from_coral.pth"),
            "transforms": {"mean": 0.5, "std": 0.5},
        }
    }
    try:
        import timm  # noqa: F401

        from corrembed.models import parse_model_spec

        for k in (0, 1, 2):
            spec = {
                "source": "timm",
                "arch": f"tf_efficientnet_lite{k}",
                "weights": str(WEIGHTS / f"tf_efficientnet_lite{k}_imagenet.safetensors"),
            }
            parse_model_spec(spec, model_name=f"lite{k}")  # raises where the timm source is not there
            specs[f"tf_efficientnet_lite{k}"] = spec
    except Exception as exc:  # noqa: BLE001 -- report and go on with the torchvision checkpoint
        print(f"timm EfficientNet-Lite checkpoints skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--work", type=Path, default=None, help="folder for the upscaled photos (default: temporary)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", default=None, help="comma-separated subset of the model names")
    args = parser.parse_args()

    import numpy as np
    import polars as pl

    from corrembed.embed import embed_images
    from corrembed.embed.store import read_embeddings
    from corrembed.score import corrembed
    from corrembed.tags import tag_vectors

    manifest = pl.read_csv(FASHION / "tags.csv", infer_schema_length=0).head(args.images)
    with tempfile.TemporaryDirectory(prefix="decoder-corrembed-") as tmp:
        work = args.work or Path(tmp)
        started = time.perf_counter()
        files = make_upscaled([FASHION / "images" / name for name in manifest["image"]], work / "800x1000")
        print(f"{len(files)} photos upscaled to 800x1000 in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        images = pl.DataFrame({"item_id": manifest["id"], "image": [str(p) for p in files]})
        long = (
            manifest.unpivot(index="id", on=list(CATEGORIES), variable_name="category", value_name="value")
            .rename({"id": "item_id"})
            .drop_nulls("value")
        )
        tags = tag_vectors(long, images["item_id"].to_list(), {c: 1.0 for c in CATEGORIES}).matrix
        specs = model_specs()
        if args.models:
            specs = {k: v for k, v in specs.items() if k in args.models.split(",")}
        rows = []
        for name, spec in specs.items():
            scores, vectors, speed = {}, {}, {}
            for decoder in ("pil", "pil-reduced"):
                meta = embed_images(
                    images,
                    spec,
                    Path(tmp) / name / decoder,
                    model_name=name,
                    torch_home=None,
                    batch_size=args.batch_size,
                    num_workers=args.workers,
                    device="cpu",
                    decoder=decoder,
                    progress=lambda line: None,
                )
                vectors[decoder] = read_embeddings(Path(tmp) / name / decoder).vectors.astype(np.float64)
                scores[decoder] = corrembed(vectors[decoder], tags, anchors="all").mean
                speed[decoder] = meta["images_per_second"]
            a, b = vectors["pil"], vectors["pil-reduced"]
            cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            row = {
                "model": name,
                "n_images": len(files),
                "corrembed_pil": scores["pil"],
                "corrembed_pil_reduced": scores["pil-reduced"],
                "difference": scores["pil-reduced"] - scores["pil"],
                "cosine_mean": float(cosine.mean()),
                "cosine_min": float(cosine.min()),
                "ips_pil": speed["pil"],
                "ips_pil_reduced": speed["pil-reduced"],
            }
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    print("| model | CorrEmbed pil | CorrEmbed pil-reduced | difference | per-image cosine mean (min) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['corrembed_pil']:.5f} | {r['corrembed_pil_reduced']:.5f} | "
            f"{r['difference']:+.5f} | {r['cosine_mean']:.5f} ({r['cosine_min']:.4f}) |"
        )


if __name__ == "__main__":
    main()

"""What the embed rules run: a rule script reads ``snakemake.*`` and calls one function here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import polars as pl

from ..models import parse_model_spec
from .merge import merge_embedding_shards
from .settings import run_settings
from .shard import embed_shard
from .shards import parse_shard_id


def embed_shard_job(
    images_path: str | os.PathLike,
    shard_path: str | os.PathLike,
    *,
    model_name: str,
    shard: str,
    params: Mapping[str, Any],
    run: Mapping[str, Any],
    threads: int,
    log: logging.Logger,
    hf_home: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """What the embed rule runs: :func:`~corrembed.embed.shard.embed_shard` for shard id ``shard``
    ("00000-of-00002") of ``images_path`` (images.parquet) with the rule's params (spec,
    torch_home, precision, decoder) and the config's run settings (``run``: config ``embed``)."""
    images = pl.read_parquet(images_path)
    images = images.select([c for c in ("item_id", "image", "sha256") if c in images.columns])
    spec = parse_model_spec(params["spec"], model_name=model_name)
    meta = embed_shard(
        images,
        spec,
        shard_path,
        torch_home=params.get("torch_home"),
        hf_home=hf_home,
        cache_dir=run.get("cache", "results/cache/embeddings"),
        shard=parse_shard_id(shard),
        precision=params.get("precision", "fp32"),
        decoder=params.get("decoder", "pil"),
        settings=run_settings(run, threads),
        progress=log,
    )
    log.info(
        "%s shard %s: %d images, %d embedded (%s images/s on %s, %s), %d from the cache",
        model_name,
        shard,
        meta["n_images"],
        meta["n_embedded"],
        meta["images_per_second"],
        meta["device"],
        meta["precision"],
        meta["n_from_cache"],
    )
    return meta


def merge_shards_job(
    images_path: str | os.PathLike, shard_paths: list[str | os.PathLike], out_dir: str | os.PathLike, *, log
) -> dict[str, Any]:
    """What the merge_embeddings rule runs: :func:`~corrembed.embed.merge.merge_embedding_shards`
    of ``shard_paths`` over ``images_path``'s rows into ``out_dir``, logged."""
    meta = merge_embedding_shards(pl.read_parquet(images_path, columns=["item_id", "image"]), shard_paths, out_dir)
    log.info(
        "%s: %d images from %d shard(s): %d embedded, %d from the cache",
        meta["model"],
        meta["n_images"],
        meta["shards"],
        meta["n_embedded"],
        meta["n_from_cache"],
    )
    return meta

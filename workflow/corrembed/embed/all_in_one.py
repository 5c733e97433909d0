"""All-in-one embedding for library use and tests: every shard, one after the other, then the merge."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import CorrEmbedError
from ..models import ModelSpec, parse_model_spec
from .merge import merge_embedding_shards
from .settings import RunSettings
from .shard import embed_shard
from .shards import shard_id
from .skeleton import check_images_table
from .store import META_NAME


def embed_images(
    images: pl.DataFrame,
    spec: Mapping[str, Any] | ModelSpec,
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    torch_home: str | os.PathLike | None,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    decoder: str = "pil",
    channels_last: bool = False,
    compile: bool = False,
    cache_dir: str | os.PathLike | None = None,
    shards: int = 1,
    progress: Callable[[str], Any] | logging.Logger | None = None,
    log_every: int = 20,
    hf_home: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Embed every image of ``images`` into ``out_dir`` (``part-00000.parquet`` + ``meta.json``).

    The shards are embedded one after the other, then merged (:func:`~corrembed.embed.shard.embed_shard`,
    :func:`~corrembed.embed.merge.merge_embedding_shards`). On the CPU in fp32, repeated runs give
    identical embeddings.

    Parameters
    ----------
    images : polars DataFrame
        ``item_id``, ``image`` (and ``sha256``; without it the files are hashed here).
    spec : mapping or ModelSpec
        The model's config entry (``arch``, ``weights``, ``layer``, ...) or its parsed spec.
    out_dir : path
        Where ``part-00000.parquet`` (rows in input order) and ``meta.json`` go.
    model_name : str
        The model's name; ``torch_home``, ``hf_home``: the weights caches (read offline).
    batch_size, num_workers, device, channels_last, compile, log_every
        Run settings (:class:`~corrembed.embed.settings.RunSettings`).
    precision, decoder : str
        As for :func:`~corrembed.embed.shard.embed_shard` (part of the cache identity).
    cache_dir : path, optional
        The embedding cache (None: a temporary cache, nothing reused).
    shards : int
        Shards to embed one after the other (the result does not depend on it).

    Returns
    -------
    dict
        The :class:`~corrembed.records.EmbeddingMeta` written to ``meta.json``, as a dict.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> from corrembed.embed import read_embeddings
    >>> folder = Path(tempfile.mkdtemp())
    >>> for k in range(3):
    ...     Image.new("RGB", (40, 40), (80 * k, 90, 200)).save(folder / f"{k}.png")
    >>> images = pl.DataFrame({"item_id": ["a", "b", "c"], "image": [str(folder / f"{k}.png") for k in range(3)]})
    >>> spec = {"arch": "resnet18", "weights": None, "transforms": {"resize_size": 32, "crop_size": 32}}
    >>> meta = embed_images(images, spec, folder / "out", model_name="r18", torch_home=None,
    ...                     device="cpu", progress=lambda line: None)
    >>> meta["dim"], read_embeddings(folder / "out").vectors.shape
    (512, (3, 512))
    """
    check_images_table(images)
    if images.height == 0:
        raise CorrEmbedError(f"model {model_name!r}: no images to embed (the catalogue is empty)")
    spec = parse_model_spec(spec, model_name=model_name)
    settings = RunSettings(
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        channels_last=channels_last,
        compile=compile,
        log_every=log_every,
    )
    options = dict(torch_home=torch_home, hf_home=hf_home, precision=precision, decoder=decoder, progress=progress)
    return _embed_and_merge(images, spec, Path(out_dir), settings, cache_dir, shards, **options)


def _embed_and_merge(
    images: pl.DataFrame,
    spec: ModelSpec,
    out: Path,
    settings: RunSettings,
    cache_dir: str | os.PathLike | None,
    shards: int,
    **options: Any,
) -> dict[str, Any]:
    """Embed the shards one after the other into a temporary folder in ``out``, then merge them."""
    out.mkdir(parents=True, exist_ok=True)
    (out / META_NAME).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=".embed-", dir=out) as work:
        cache = cache_dir if cache_dir is not None else Path(work) / "cache"
        paths = [Path(work) / f"shard-{shard_id(k, shards)}.parquet" for k in range(shards)]
        for k, path in enumerate(paths):
            embed_shard(
                images,
                spec,
                path,
                cache_dir=cache,
                shard=(k, shards),
                settings=settings,
                **options,
            )
        return merge_embedding_shards(images, paths, out)

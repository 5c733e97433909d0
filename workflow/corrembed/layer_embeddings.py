"""A model's embeddings at every layer of its ``layers:`` list, from one pass over the images.

:func:`embed_layer_sweep` resolves the list (:func:`corrembed.models.layer_sweep.sweep_plan`),
looks every image up in the embedding cache once per layer, and runs ONE forward pass per batch
over the images any layer lacks (:func:`corrembed.models.layer_sweep.build_layer_sweep`), adding
each layer's rows to that layer's cache. A layer is cached under exactly the identity a plain run
with ``layer: <that layer>`` has (its embeddings are equal bit for bit), so a sweep layer that is
also a model's headline layer, or that an earlier sweep embedded, is not embedded again, and a
killed sweep resumes from its committed segments.

The embeddings are read back one layer at a time (:meth:`LayerSweepEmbeddings.embeddings`), so
memory holds one layer's (n, dim) array, not the sweep's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from .embed import (
    RunSettings,
    _check_images_table,
    _device_string,
    _embed_missing,
    _fetch,
    _on_device,
    _progress_function,
    check_precision,
    content_hashes,
    resolve_device,
)
from .embedding_cache import EmbeddingCache, embedding_identity
from .embedding_store import Embeddings
from .errors import CorrEmbedError
from .models import ModelSpec, build_model, preprocessing
from .models.layer_sweep import SweepPlan, build_layer_sweep, sweep_plan


@dataclass
class LayerSweepEmbeddings:
    """The cached embeddings of a sweep's layers for a table of images.

    Attributes
    ----------
    plan : SweepPlan
        The resolved layers, their configured entries and relative depths.
    item_ids, images : (n,) object arrays of str
        The images' rows, in the table's order.
    caches : dict
        Layer -> its :class:`~corrembed.embedding_cache.EmbeddingCache`.
    meta : dict
        What was embedded: counts, seconds, device, identity key per layer, images set aside.
    """

    plan: SweepPlan
    item_ids: np.ndarray
    images: np.ndarray
    shas: list[str]
    caches: dict[str, EmbeddingCache]
    meta: dict[str, Any]

    def embeddings(self, layer: str) -> Embeddings:
        """The (n, dim) float32 embeddings of one layer (NaN rows for images set aside)."""
        vectors = _fetch(self.caches[layer], self.shas, self.meta["images_set_aside"])
        return Embeddings(item_ids=self.item_ids, images=self.images, vectors=vectors)


def embed_layer_sweep(
    images: pl.DataFrame,
    spec: ModelSpec,
    layers: Sequence[str | int],
    *,
    torch_home: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    precision: str = "fp32",
    decoder: str = "pil",
    settings: RunSettings | None = None,
    progress: Callable[[str], Any] | logging.Logger | None = None,
    hf_home: str | os.PathLike | None = None,
) -> LayerSweepEmbeddings:
    """Embed ``images`` at every layer of ``layers`` (one forward pass per batch).

    Parameters
    ----------
    images : polars DataFrame
        ``item_id``, ``image`` (and ``sha256``; without it the files are hashed here).
    spec : ModelSpec
        The parsed model; its own ``layer`` is not part of the sweep.
    layers : sequence of str or int
        The model's ``layers:`` entries (see :mod:`corrembed.models.layer_sweep`).
    torch_home, hf_home, cache_dir, precision, decoder, progress
        As for :func:`corrembed.embed.embed_shard`.
    settings : RunSettings, optional
        As for :func:`corrembed.embed.embed_shard` (default ``RunSettings()``).

    Returns
    -------
    LayerSweepEmbeddings

    Raises
    ------
    ConfigError
        For a layers list the model cannot sweep (see :func:`sweep_plan`).
    CorrEmbedError
        For an empty table, or when no image can be decoded.
    """
    _check_images_table(images)
    check_precision(precision, decoder)
    if images.height == 0:
        raise CorrEmbedError(f"model {spec.name!r}: no images to embed (the catalogue is empty)")
    say = _progress_function(progress)
    settings = settings if settings is not None else RunSettings()
    plan = sweep_plan(spec, list(layers))
    target = resolve_device(settings.device)
    item_ids = images.get_column("item_id").cast(pl.String).to_numpy().astype(object)
    paths = images.get_column("image").cast(pl.String).to_list()
    shas = content_hashes(images)
    resolved = preprocessing(spec, torch_home=torch_home, hf_home=hf_home)
    description = resolved.describe()
    caches = {
        layer: EmbeddingCache(
            cache_dir,
            embedding_identity(
                dataclasses.replace(spec, layer=layer), description, precision=precision, decoder=decoder
            ),
        )
        for layer in plan.layers
    }
    needed = {layer: set(cache.missing(shas)) for layer, cache in caches.items()}
    missing = [sha for sha in dict.fromkeys(shas) if any(sha in lacking for lacking in needed.values())]
    say(
        f"{spec.name}: layer sweep over {len(plan.layers)} layers ({', '.join(plan.layers)}): "
        f"{len(missing)} distinct image(s) to embed for "
        f"{sum(1 for lacking in needed.values() if lacking)} layer(s), the rest cached"
    )
    timings = {"seconds": 0.0, "setup_seconds": 0.0, "set_aside": []}
    if missing:
        first_path: dict[str, str] = {}
        for sha, path in zip(shas, paths):
            first_path.setdefault(sha, path)
        lacking = {layer: needed[layer] for layer in plan.layers if needed[layer]}

        def build_forward():
            """The one-pass extractor of the layers that lack images."""
            model = build_model(spec, torch_home=torch_home, hf_home=hf_home)
            subplan = SweepPlan(
                tuple(e for e, layer in zip(plan.entries, plan.layers) if layer in lacking),
                tuple(lacking),
                tuple(d for d, layer in zip(plan.depth, plan.layers) if layer in lacking),
            )
            return _on_device(build_layer_sweep(spec, model, subplan), target, settings)

        timings = _embed_missing(
            [first_path[sha] for sha in missing],
            missing,
            {layer: caches[layer] for layer in lacking},
            build_forward,
            preprocess=resolved,
            precision=precision,
            decoder=decoder,
            target=target,
            settings=settings,
            say=say,
            label=f"{spec.name} (layer sweep)",
            needed=lacking,
        )
    seconds = timings["seconds"]
    meta = {
        "model": spec.name,
        "layers": list(plan.layers),
        "entries": list(plan.entries),
        "identity_keys": {layer: cache.key for layer, cache in caches.items()},
        "n_images": len(shas),
        "n_embedded": len(missing),
        "layers_embedded": [layer for layer in plan.layers if needed[layer]],
        "precision": precision,
        "decoder": decoder,
        "device": _device_string(target),
        "seconds": round(seconds, 3),
        "setup_seconds": round(timings["setup_seconds"], 3),
        "images_per_second": round(len(missing) / seconds, 3) if missing and seconds > 0 else None,
        "images_set_aside": timings["set_aside"],
    }
    return LayerSweepEmbeddings(plan, item_ids, np.asarray(paths, dtype=object), shas, caches, meta)

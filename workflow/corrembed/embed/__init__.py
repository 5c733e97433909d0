"""The embed stage: images -> embeddings, sharded, resumable and incremental (needs torch).

- :mod:`.settings` run settings, the device, precision and decoder checks, progress lines;
- :mod:`.forward` the forward loop (DataLoader -> device -> caches) and its cache sink;
- :mod:`.skeleton` the embed-job skeleton a shard job and a layer sweep share (:class:`EmbedJob`);
- :mod:`.shard` one shard job (:func:`embed_shard`) and its :class:`~corrembed.records.ShardMeta`;
- :mod:`.merge` the shards -> ``part-00000.parquet`` + ``meta.json``;
- :mod:`.all_in_one` :func:`embed_images`: every shard then the merge, in one call;
- :mod:`.provenance` library versions, device and peak memory for the metas;
- :mod:`.jobs` what the embed rules run (:func:`embed_shard_job`, :func:`merge_shards_job`);
- :mod:`.cache` the content-addressed embedding cache (identity, segments);
- :mod:`.store` the embeddings' file format (Parquet parts + ``meta.json``) and its reader;
- :mod:`.shards` how the catalogue's rows are split into shard jobs;
- :mod:`.layer_sweep` a model's embeddings at several layers from one pass;
- :mod:`.items` image rows -> item rows (one representative image, or the mean).

Names are loaded on first use, so ``corrembed.embed.store`` does not import torch.

Examples
--------
>>> from corrembed.embed import shard_bounds
>>> shard_bounds(1000, 2)
[(0, 500), (500, 1000)]
"""

from importlib import import_module

#: Public name -> the module (in this package) that defines it.
_EXPORTS = {
    **dict.fromkeys(["PRECISIONS", "RunSettings", "progress_line", "resolve_device", "run_settings"], "settings"),
    **dict.fromkeys(["embed_shard", "shard_meta_path"], "shard"),
    "merge_embedding_shards": "merge",
    "embed_images": "all_in_one",
    "EmbedJob": "skeleton",
    **dict.fromkeys(["embed_shard_job", "merge_shards_job"], "jobs"),
    **dict.fromkeys(["EmbeddingCache", "embedding_identity", "identity_key"], "cache"),
    **dict.fromkeys(["Embeddings", "EmbeddingShardWriter", "read_embeddings", "read_meta"], "store"),
    **dict.fromkeys(["parse_shard_id", "shard_bounds", "shard_id"], "shards"),
    **dict.fromkeys(["LayerSweepEmbeddings", "embed_layer_sweep"], "layer_sweep"),
    **dict.fromkeys(["item_embeddings", "usable_item_embeddings"], "items"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Load a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)

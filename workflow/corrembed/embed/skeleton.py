"""The embed-job skeleton shared by a shard job and a layer sweep.

An :class:`EmbedJob` resolves what a job needs once: the rows' content hashes, the model's
preprocessing, one embedding cache per layer (each under exactly the identity a plain run with
that layer has, :func:`corrembed.embed.cache.embedding_identity`) and what each cache lacks;
:meth:`EmbedJob.run` embeds the distinct images any cache lacks in one pass
(:func:`corrembed.embed.forward.embed_missing`) and :meth:`EmbedJob.fetch` reads a layer's rows
back from its cache.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from ..errors import CorrEmbedError
from ..models import ModelSpec, preprocessing
from ..models.preprocess import Preprocessing
from ..storage import file_sha256
from .cache import EmbeddingCache, embedding_identity
from .forward import ForwardTimings, embed_missing
from .settings import RunSettings, check_precision, resolve_device


def check_images_table(images: pl.DataFrame) -> None:
    """CorrEmbedError unless the images table has ``item_id`` and ``image`` columns.

    Examples
    --------
    >>> check_images_table(pl.DataFrame({"item_id": ["a"], "image": ["a.jpg"]}))
    """
    for column in ("item_id", "image"):
        if column not in images.columns:
            raise CorrEmbedError(
                f"images table has no {column!r} column (columns: {images.columns}); "
                "pass the catalogue's images.parquet"
            )


def content_hashes(images: pl.DataFrame) -> list[str]:
    """The ``sha256`` column of the images table, or the files' hashes when it has none.

    Examples
    --------
    >>> content_hashes(pl.DataFrame({"image": ["a.jpg"], "sha256": ["00ff"]}))
    ['00ff']
    """
    if "sha256" in images.columns:
        return images.get_column("sha256").cast(pl.String).to_list()
    hashes = []
    for path in images.get_column("image").cast(pl.String).to_list():
        try:
            hashes.append(file_sha256(path))
        except OSError as exc:
            raise CorrEmbedError(f"cannot read image {path} ({exc.strerror or exc}); re-run the ingest stage") from exc
    return hashes


def fetch_rows(cache: EmbeddingCache, shas: list[str], set_aside: list[dict]) -> np.ndarray:
    """(len(shas), dim) float32 cached embeddings of ``shas``; NaN rows for images set aside (never cached)."""
    failed = {record["sha256"] for record in set_aside}
    if not failed.intersection(shas):
        return cache.fetch(shas)
    if cache.dim is None:
        raise CorrEmbedError(
            f"none of the images could be decoded ({set_aside[0]['image']}: "
            f"{set_aside[0]['reason']}, ...); check the image files and re-run the ingest stage"
        )
    out = np.full((len(shas), cache.dim), np.nan, dtype=np.float32)
    rows = [k for k, sha in enumerate(shas) if sha not in failed]
    out[rows] = cache.fetch([shas[k] for k in rows])
    return out


@dataclass
class EmbedJob:
    """One embed job's inputs, resolved once (see the module docstring).

    Attributes
    ----------
    spec : ModelSpec
        The parsed model.
    item_ids, paths, shas : list of str
        The rows (in table order), their image files and content hashes.
    description : dict
        The preprocessing description (``transforms`` of the meta).
    preprocess : Preprocessing
        What the input pipeline does to each image.
    caches : dict of str to EmbeddingCache
        Layer -> its cache.
    needed : dict of str to set of str
        Layer -> the content hashes its cache lacks.
    missing : list of str
        The distinct hashes any cache lacks, in first-occurrence order.
    target : torch.device
        Where the forward pass runs.
    """

    spec: ModelSpec
    item_ids: list[str]
    paths: list[str]
    shas: list[str]
    description: dict
    preprocess: Preprocessing
    caches: dict[str, EmbeddingCache]
    needed: dict[str, set[str]]
    missing: list[str]
    target: torch.device
    settings: RunSettings
    precision: str
    decoder: str

    @classmethod
    def prepare(
        cls,
        rows: pl.DataFrame,
        spec: ModelSpec,
        layers: Sequence[str],
        *,
        torch_home: str | os.PathLike | None,
        hf_home: str | os.PathLike | None,
        cache_dir: str | os.PathLike,
        precision: str,
        decoder: str,
        settings: RunSettings,
    ) -> EmbedJob:
        """Resolve a job over ``rows`` (``item_id``, ``image``, ``sha256``) for ``layers`` of ``spec``."""
        check_images_table(rows)
        check_precision(precision, decoder)
        target = resolve_device(settings.device)
        shas = content_hashes(rows)
        resolved = preprocessing(spec, torch_home=torch_home, hf_home=hf_home)
        description = resolved.describe()
        caches = {}
        for layer in layers:
            layer_spec = spec if layer == spec.layer else dataclasses.replace(spec, layer=layer)
            identity = embedding_identity(layer_spec, description, precision=precision, decoder=decoder)
            caches[layer] = EmbeddingCache(cache_dir, identity)
        needed = {layer: set(cache.missing(shas)) for layer, cache in caches.items()}
        missing = [sha for sha in dict.fromkeys(shas) if any(sha in lacking for lacking in needed.values())]
        return cls(
            spec=spec,
            item_ids=rows.get_column("item_id").cast(pl.String).to_list(),
            paths=rows.get_column("image").cast(pl.String).to_list(),
            shas=shas,
            description=description,
            preprocess=resolved,
            caches=caches,
            needed=needed,
            missing=missing,
            target=target,
            settings=settings,
            precision=precision,
            decoder=decoder,
        )

    def refreshed(self, skip: set[str] = frozenset()) -> EmbedJob:
        """The same job with what each cache lacks looked up again (after damaged segments were
        quarantined while reading), leaving out the hashes in ``skip`` (images already set aside)."""
        needed = {layer: set(cache.missing(self.shas)) - skip for layer, cache in self.caches.items()}
        missing = [sha for sha in dict.fromkeys(self.shas) if any(sha in lacking for lacking in needed.values())]
        return dataclasses.replace(self, needed=needed, missing=missing)

    def run(
        self, build_forward: Callable[[Mapping[str, set[str]]], torch.nn.Module], *, say, label: str
    ) -> ForwardTimings:
        """Embed :attr:`missing` into the caches that lack them; nothing (not even the model) when none.

        ``build_forward(lacking)`` gives the module for the layers that lack images (layer ->
        hashes): ``(b, 3, H, W) -> (b, dim)`` for one layer, ``-> {layer: (b, dim)}`` for several.
        """
        if not self.missing:
            return ForwardTimings()
        first_path: dict[str, str] = {}
        for sha, path in zip(self.shas, self.paths):
            first_path.setdefault(sha, path)
        lacking = {layer: hashes for layer, hashes in self.needed.items() if hashes}
        return embed_missing(
            [first_path[sha] for sha in self.missing],
            self.missing,
            {layer: self.caches[layer] for layer in lacking},
            lambda: build_forward(lacking),
            preprocess=self.preprocess,
            precision=self.precision,
            decoder=self.decoder,
            target=self.target,
            settings=self.settings,
            say=say,
            label=label,
            needed=lacking,
        )

    def fetch(self, layer: str, set_aside: list[dict], rows: slice = slice(None)) -> np.ndarray:
        """(n, dim) float32 embeddings of ``layer`` for the job's ``rows`` (NaN rows for images set aside)."""
        return fetch_rows(self.caches[layer], self.shas[rows], set_aside)

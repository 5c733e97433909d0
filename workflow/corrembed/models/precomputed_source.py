"""The ``precomputed`` source: embeddings the user already has (no network, no embed step).

Spec keys::

    source: precomputed
    embeddings: /data/prod_embeddings.parquet  # .parquet, .npy (with ids:) or .npz
    ids: /data/prod_ids.txt                    # .npy only: the row ids, one per line (or a .npy of strings)
    key: item                                  # item (catalogue item id, default) or image (image path)
    on_missing: exclude                        # catalogue items without a row: exclude (listed, counted) or fail
    imagenet: {acc1: 80.1}                     # optional, as for checkpoints

The spec is parsed like every other (so the summary and the plot treat the model alike), but the
workflow routes it to the ``precomputed_embeddings`` rule, which reads and checks the file
(:mod:`corrembed.embed.precomputed`) instead of the weights and embed steps. The file's content hash is
its identity (:meth:`PrecomputedSource.weights_identity`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..storage import file_sha256
from .spec import ModelSpec, ResolvedWeights

#: File formats read (by suffix).
FORMATS = (".parquet", ".npy", ".npz")
#: What the file's ids are: catalogue item ids or image paths.
KEYS = ("item", "image")
#: What to do with catalogue items the file has no row for.
ON_MISSING = ("exclude", "fail")
#: The layer name written to meta.json and the summary for precomputed embeddings.
PRECOMPUTED_LAYER = "precomputed"


def _choice(spec: Any, key: str, choices: tuple[str, ...], model_name: str) -> str:
    value = spec.get(key) or choices[0]
    if value not in choices:
        raise ConfigError(f"model {model_name!r}: {key!r} must be one of {', '.join(choices)}, got {value!r}")
    return value


class PrecomputedSource:
    """Precomputed embeddings (see the module docstring)."""

    name = "precomputed"
    package = None
    extra = None
    default_layer = PRECOMPUTED_LAYER
    arch_key = "embeddings"
    weights_required = False
    extra_keys: tuple[str, ...] = ("embeddings", "ids", "key", "on_missing")
    arch_help = "the embeddings file: .parquet (ids, then a list column or one column per dimension), .npy + ids, .npz"
    weights_help = "Precomputed embeddings have no weights."
    layer_help = "precomputed embeddings have no layer"

    def resolve_arch(self, arch: Any, *, model_name: str) -> str:
        """The embeddings path as written, once its suffix is a supported format."""
        if not isinstance(arch, str) or Path(arch).suffix.lower() not in FORMATS:
            raise ConfigError(
                f"model {model_name!r}: 'embeddings' must be a {', '.join(FORMATS)} file path, got {arch!r}"
            )
        return arch

    def resolve_weights(self, arch: str, weights: Any, *, model_name: str, check_files: bool = True) -> ResolvedWeights:
        """Kind ``precomputed``, the file's absolute path; ``weights:`` must be absent."""
        if weights is not None:
            raise ConfigError(f"model {model_name!r}: source precomputed takes no 'weights' (remove the key)")
        path = Path(arch).expanduser().resolve()
        if check_files and not path.is_file():
            raise ConfigError(
                f"model {model_name!r}: embeddings file {path} (embeddings: {arch!r}) does not exist; give its path "
                "relative to the working directory, or absolute."
            )
        return ResolvedWeights("precomputed", None, path=path)

    def resolve_layer(self, layer: str, *, model_name: str) -> str:
        """Only the default: the file's vectors."""
        if layer != PRECOMPUTED_LAYER:
            raise ConfigError(f"model {model_name!r}: source precomputed takes no 'layer' (remove the key)")
        return layer

    def resolve_options(self, spec: Any, *, model_name: str) -> dict[str, Any]:
        """``key``, ``on_missing`` and (for .npy) ``ids``, validated; no ``arch`` or ``transforms``."""
        for key in ("arch", "transforms", "layers", "precision", "decoder"):
            if spec.get(key):  # (the schema fills in an empty transforms: {})
                raise ConfigError(f"model {model_name!r}: source precomputed takes no {key!r} (remove the key)")
        options = {
            "key": _choice(spec, "key", KEYS, model_name),
            "on_missing": _choice(spec, "on_missing", ON_MISSING, model_name),
        }
        suffix = Path(spec["embeddings"]).suffix.lower()
        ids = spec.get("ids")
        if suffix == ".npy" and not isinstance(ids, str):
            raise ConfigError(
                f"model {model_name!r}: a .npy embeddings file needs 'ids': a text file with one id per row of "
                f"{spec['embeddings']} (or a .npy of strings), in the same order"
            )
        if suffix != ".npy" and ids is not None:
            raise ConfigError(f"model {model_name!r}: 'ids' is for .npy files only; {suffix} files hold their ids")
        if ids is not None:
            options["ids"] = str(Path(ids).expanduser().resolve())
        return options

    def _not_embedded(self, spec: ModelSpec) -> ConfigError:
        return ConfigError(
            f"model {spec.name!r}: precomputed embeddings are not computed by a network; the workflow reads "
            f"{spec.weights.path} in its precomputed_embeddings step (corrembed.embed.precomputed)"
        )

    def fetch(
        self,
        spec: ModelSpec,
        *,
        torch_home=None,
        hf_home=None,
        allow_download: bool = True,
        timeout: float = 10,
        check_hash: bool = False,
        progress=None,
    ) -> dict[str, Any]:
        """Nothing to fetch: a precomputed model has no weights and no weights step (its file is
        read by the ``precomputed_embeddings`` rule). Returns ``{}``."""
        return {}

    def build(self, spec: ModelSpec, *, torch_home=None, hf_home=None):
        """Never: there is no network (ConfigError)."""
        raise self._not_embedded(spec)

    def preprocessing(self, spec: ModelSpec, *, torch_home=None, hf_home=None):
        """Never: the images are not read (ConfigError)."""
        raise self._not_embedded(spec)

    def extractor(self, model, spec: ModelSpec):
        """Never (ConfigError)."""
        raise self._not_embedded(spec)

    def weights_identity(self, spec: ModelSpec) -> dict[str, Any]:
        """The file's content hash (and the ids file's), and what its ids are."""
        identity = {"kind": "precomputed", "sha256": file_sha256(spec.weights.path), "key": spec.options["key"]}
        if "ids" in spec.options:
            identity["ids_sha256"] = file_sha256(spec.options["ids"])
        return identity

    def imagenet(self, spec: ModelSpec) -> dict[str, Any]:
        """Nothing known beyond the spec's ``imagenet:``."""
        return {}

    def check(self, spec: ModelSpec) -> None:
        """The file exists (the rest is checked against the catalogue when it is read)."""
        if not spec.weights.path.is_file():
            raise ConfigError(f"model {spec.name!r}: embeddings file {spec.weights.path} does not exist")


SOURCE = PrecomputedSource()

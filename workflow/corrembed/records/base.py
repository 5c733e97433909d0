"""The records' shared JSON behaviour: :class:`Record` (writing, tolerant reading, versions)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ..errors import CorrEmbedError
from ..storage import nan_to_none, write_json

R = TypeVar("R", bound="Record")


class RecordVersionError(CorrEmbedError):
    """A stage record (report.json, meta.json, score JSON) has a schema version this code cannot read."""


class Record:
    """Shared JSON behaviour of the records (a mixin for dataclasses with ``schema_version`` and ``extra``).

    A record is a frozen dataclass deriving from this class, with the class attributes below and
    the fields ``schema_version`` and ``extra`` last; see :mod:`corrembed.records` for the format.
    """

    #: The version this code writes.
    SCHEMA_VERSION: ClassVar[int] = 1
    #: Versions this code reads (files without the field count as version 1).
    READABLE_VERSIONS: ClassVar[frozenset[int]] = frozenset({1})
    #: What the file is, for messages (e.g. "catalogue report").
    WHAT: ClassVar[str] = "record"
    #: The stage that writes it, for messages.
    STAGE: ClassVar[str] = "the stage"
    #: Keys older writers wrote that this record no longer has (dropped on reading).
    RETIRED_KEYS: ClassVar[frozenset[str]] = frozenset()

    # ---------------------------------------------------------------- writing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``schema_version``, the declared fields in order, then ``extra``."""
        out: dict[str, Any] = {"schema_version": self.schema_version}  # type: ignore[attr-defined]
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name in ("schema_version", "extra"):
                continue
            out[f.name] = _plain(getattr(self, f.name))
        for key, value in self.extra.items():  # type: ignore[attr-defined]
            out.setdefault(key, _plain(value))
        return out

    def to_json(self) -> str:
        """The JSON text :meth:`write` writes (indented, NaN as null)."""
        return json.dumps(nan_to_none(self.to_dict()), indent=2) + "\n"

    def write(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` to ``path`` atomically (:func:`corrembed.storage.write_json`)."""
        write_json(path, self.to_dict())

    # ---------------------------------------------------------------- reading

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any], *, source: str | os.PathLike | None = None) -> R:
        """The record of a dict as :meth:`to_dict` (or an older writer) made it.

        source: the file it came from, for error messages. Raises RecordVersionError for an
        unknown ``schema_version`` and CorrEmbedError when a required field is missing.
        """
        where = f"{cls.WHAT} {source}" if source is not None else cls.WHAT
        if not isinstance(data, dict):
            raise CorrEmbedError(f"{where}: expected a JSON object, got {type(data).__name__}; re-run {cls.STAGE}")
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or version not in cls.READABLE_VERSIONS:
            raise RecordVersionError(
                f"{where} has schema_version {version!r}; this CorrEmbed reads version(s) "
                f"{sorted(cls.READABLE_VERSIONS)}. It was written by another (newer?) CorrEmbed: "
                f"re-run {cls.STAGE} with this version, or update CorrEmbed"
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        known: dict[str, Any] = {"schema_version": version}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("schema_version", "extra") or key in cls.RETIRED_KEYS:
                continue
            if key in fields:
                known[key] = _tuple_if(fields[key], value)
            else:
                extra[key] = value
        missing = [
            name
            for name, f in fields.items()
            if name not in known and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        ]
        if missing:
            raise CorrEmbedError(f"{where} lacks field(s) {missing}; the file is incomplete: re-run {cls.STAGE}")
        return cls(**known, extra=extra)  # type: ignore[call-arg]

    @classmethod
    def read(cls: type[R], path: str | os.PathLike) -> R:
        """The record in the JSON file ``path`` (CorrEmbedError naming the file when it cannot be read)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CorrEmbedError(f"{cls.WHAT} {path} does not exist; run {cls.STAGE}") from None
        except (OSError, ValueError) as exc:
            raise CorrEmbedError(f"cannot read {cls.WHAT} {path}: {exc}; re-run {cls.STAGE}") from None
        return cls.from_dict(data, source=path)


def _tuple_if(f: dataclasses.Field, value: Any) -> Any:
    """JSON lists back to tuples for tuple-typed fields (so a record round-trips equal)."""
    if isinstance(value, list) and str(f.type).startswith("tuple"):
        return tuple(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

"""JSON and JSON Lines files: one :class:`~raftkit.types.Document` per record.

Fields are named by dotted paths (``"body"``, ``"data.text"``, ``"items.0.text"``; a number
indexes a list). A record that cannot be used (bad JSON, missing text) is reported by yielding
an :class:`~raftkit.errors.ExtractionError` naming the line or index, and the file goes on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from raftkit.errors import ExtractionError
from raftkit.extract._files import read_bytes
from raftkit.extract.cleanup import Normalization, clean_text
from raftkit.extract.encoding import decode_bytes
from raftkit.types import Document

__all__ = ["JsonExtractor", "JsonlExtractor", "lookup"]

_MISSING = object()
_BATCH_BYTES = 1 << 20


def _is_index(key: str, length: int) -> bool:
    return key.lstrip("-").isdigit() and -length <= int(key) < length


def lookup(record: Any, dotted: str) -> Any:
    """The value at a dotted path in nested dicts and lists; ``KeyError`` if absent."""
    value = record
    for key in dotted.split("."):
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, list) and _is_index(key, len(value)):
            value = value[int(key)]
        else:
            raise KeyError(dotted)
    return value


class _RecordReader:
    """What JSON and JSONL share: turning one record into a Document."""

    def __init__(
        self,
        *,
        text_field: str,
        id_field: str | None,
        title_field: str | None,
        metadata_fields: Sequence[str],
        normalization: Normalization,
        suffixes: Collection[str],
    ) -> None:
        if not text_field:
            raise ValueError("text_field must name a field")
        self.text_field = text_field
        self.id_field = id_field
        self.title_field = title_field
        self.metadata_fields = tuple(metadata_fields)
        self.normalization: Normalization = normalization
        self.suffixes = frozenset(s.lower() for s in suffixes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(text_field={self.text_field!r}, id_field={self.id_field!r})"

    def supports(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes

    def _document(
        self, record: Any, *, path: Path, doc_id: str, where: str, position: int
    ) -> Document | ExtractionError:
        source = str(path)
        try:
            text = lookup(record, self.text_field)
        except KeyError:
            return ExtractionError(source, f"{where}: no field {self.text_field!r}")
        if not isinstance(text, str):
            return ExtractionError(
                source, f"{where}: field {self.text_field!r} is {type(text).__name__}, not text"
            )
        text = clean_text(text, normalization=self.normalization, collapse_spaces=False)
        if not text:
            return ExtractionError(source, f"{where}: field {self.text_field!r} is empty")
        key: object = position
        if self.id_field is not None:
            key = self._scalar(record, self.id_field, default=position)
        metadata = {"format": "json", "record": str(position)}
        if self.title_field is not None:
            title = self._scalar(record, self.title_field, default=None)
            if title is not None:
                metadata["title"] = str(title)
        for field in self.metadata_fields:
            value = self._scalar(record, field, default=None)
            if value is not None:
                metadata[field] = str(value)
        return Document(id=f"{doc_id}#{key}", source=source, text=text, metadata=metadata)

    @staticmethod
    def _scalar(record: Any, field: str, *, default: object) -> object:
        try:
            value = lookup(record, field)
        except KeyError:
            return default
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return value
        return default


class JsonlExtractor(_RecordReader):
    """JSON Lines (``.jsonl``, ``.ndjson``): each non-blank line is a record.

    Document ids are ``"<file id>#<line number>"`` (1-based), or ``"<file id>#<id field>"``
    with ``id_field``. The file is read in batches, so a large file is never held in memory.
    The file must be UTF-8 (a byte-order mark is allowed), as JSON Lines requires.
    """

    def __init__(
        self,
        *,
        text_field: str = "text",
        id_field: str | None = None,
        title_field: str | None = None,
        metadata_fields: Sequence[str] = (),
        normalization: Normalization = "NFC",
        suffixes: Collection[str] = (".jsonl", ".ndjson"),
    ) -> None:
        super().__init__(
            text_field=text_field,
            id_field=id_field,
            title_field=title_field,
            metadata_fields=metadata_fields,
            normalization=normalization,
            suffixes=suffixes,
        )

    async def extract(
        self, path: Path, *, doc_id: str
    ) -> AsyncIterator[Document | ExtractionError]:
        source = str(path)
        try:
            handle = await anyio.open_file(path, "rb")
        except OSError as e:
            raise ExtractionError(source, f"cannot read file: {e.strerror or e}") from e
        line_number = 0
        offset = 0
        found = 0
        async with handle:
            while lines := await anyio.to_thread.run_sync(handle.wrapped.readlines, _BATCH_BYTES):
                for raw in lines:
                    line_number += 1
                    start, offset = offset, offset + len(raw)
                    if line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                        raw, start = raw[3:], start + 3
                    if not raw.strip():
                        continue
                    where = f"line {line_number}"
                    try:
                        record = json.loads(raw.decode("utf-8"))
                    except UnicodeDecodeError as e:
                        yield ExtractionError(
                            source, f"{where}: not valid UTF-8 at byte offset {start + e.start}"
                        )
                        continue
                    except json.JSONDecodeError as e:
                        yield ExtractionError(source, f"{where}: invalid JSON ({e.msg})")
                        continue
                    found += 1
                    yield self._document(
                        record, path=path, doc_id=doc_id, where=where, position=line_number
                    )
        if not found:
            raise ExtractionError(source, "no records (empty file)")


class JsonExtractor(_RecordReader):
    """JSON files (``.json``): a list of records, one record, or a list inside a record.

    ``records_field`` names the list when it is not the top level (``"data.items"``).
    Document ids are ``"<file id>#<index>"`` (0-based), or ``"<file id>#<id field>"``.
    """

    def __init__(
        self,
        *,
        text_field: str = "text",
        id_field: str | None = None,
        title_field: str | None = None,
        metadata_fields: Sequence[str] = (),
        records_field: str | None = None,
        encoding: str | None = None,
        normalization: Normalization = "NFC",
        suffixes: Collection[str] = (".json",),
    ) -> None:
        super().__init__(
            text_field=text_field,
            id_field=id_field,
            title_field=title_field,
            metadata_fields=metadata_fields,
            normalization=normalization,
            suffixes=suffixes,
        )
        self.records_field = records_field
        self.encoding = encoding

    def _load(self, data: bytes, source: str) -> Any:
        try:
            return json.loads(decode_bytes(data, path=source, encoding=self.encoding))
        except json.JSONDecodeError as e:
            raise ExtractionError(
                source, f"invalid JSON at line {e.lineno} column {e.colno} ({e.msg})"
            ) from e

    async def extract(
        self, path: Path, *, doc_id: str
    ) -> AsyncIterator[Document | ExtractionError]:
        source = str(path)
        data = await read_bytes(path)
        if not data.strip():
            raise ExtractionError(source, "empty file")
        loaded = await anyio.to_thread.run_sync(self._load, data, source)
        records: Any = loaded
        if self.records_field is not None:
            try:
                records = lookup(loaded, self.records_field)
            except KeyError as e:
                raise ExtractionError(source, f"no field {self.records_field!r}") from e
        if isinstance(records, Mapping):
            records = [records]
        if not isinstance(records, list):
            kind = type(records).__name__
            raise ExtractionError(source, f"expected a list of records, got {kind}")
        if not records:
            raise ExtractionError(source, "no records")
        for index, record in enumerate(records):
            yield self._document(
                record, path=path, doc_id=doc_id, where=f"record {index}", position=index
            )

"""Reading and writing JSONL files of :class:`~raftkit.types.RaftExample` records.

Reading streams one line at a time, so a file of any size can be walked in constant memory.
Writing is atomic: rows go to a temporary file beside the target, which replaces the target
only once every row is on disk, so a killed export never leaves half a dataset behind.

These functions block on file I/O; async callers run them with ``anyio.to_thread.run_sync``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from raftkit.errors import DatasetError
from raftkit.types import RaftExample

__all__ = [
    "JsonlLine",
    "iter_examples",
    "iter_jsonl_lines",
    "read_examples",
    "write_examples",
    "write_jsonl",
]

_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class JsonlLine:
    """One physical line of a JSONL file, decoded but not parsed."""

    number: int
    """1-based line number."""
    text: str
    """The line without its line ending."""
    complete: bool
    """False only for a last line with no newline: possibly torn by a killed writer."""
    utf8: bool = True
    """False when the line was not valid UTF-8 (only with ``strict=False``; then ``text`` has
    U+FFFD in place of the bad bytes)."""


def iter_jsonl_lines(path: str | os.PathLike[str], *, strict: bool = True) -> Iterator[JsonlLine]:
    """Every line of ``path``, decoded as UTF-8; a BOM at the start of the file is dropped.

    Raises :class:`DatasetError` when the file cannot be opened, and (if ``strict``) naming the
    line when a line is not valid UTF-8; with ``strict=False`` such a line is yielded with
    ``utf8=False`` so a validator can report it and go on.
    """
    name = os.fspath(path)
    try:
        handle = open(name, "rb")  # noqa: SIM115 - closed by the with below; open errors wrapped
    except OSError as e:
        raise DatasetError(f"cannot open: {e.strerror or e}", path=name) from e
    with handle:
        for number, raw in enumerate(handle, start=1):
            complete = raw.endswith(b"\n")
            utf8 = True
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if strict:
                    raise DatasetError(
                        f"not UTF-8 at byte {e.start} of the line", path=name, line=number
                    ) from e
                text = raw.decode("utf-8", errors="replace")
                utf8 = False
            if number == 1 and text.startswith(_BOM):
                text = text[1:]
            yield JsonlLine(number=number, text=text.rstrip("\r\n"), complete=complete, utf8=utf8)


def iter_examples(
    path: str | os.PathLike[str], *, allow_torn_tail: bool = False
) -> Iterator[RaftExample]:
    """Stream the :class:`RaftExample` records of a JSONL file, one per non-blank line.

    Every malformed line raises :class:`DatasetError` with ``path`` and the 1-based ``line``.
    With ``allow_torn_tail=True`` a last line that has no newline and does not parse is
    skipped instead: that is what a writer killed mid-line leaves behind (an append-only
    journal). A file written by :func:`write_examples` is never torn, so the default is strict.
    """
    name = os.fspath(path)
    for line in iter_jsonl_lines(name):
        if not line.text.strip():
            continue
        try:
            yield RaftExample.model_validate_json(line.text)
        except ValidationError as e:
            if allow_torn_tail and not line.complete:
                return
            raise DatasetError(_describe(e), path=name, line=line.number) from e


def read_examples(
    path: str | os.PathLike[str], *, allow_torn_tail: bool = False
) -> list[RaftExample]:
    """All examples of a JSONL file as a list; see :func:`iter_examples`."""
    return list(iter_examples(path, allow_torn_tail=allow_torn_tail))


def write_examples(path: str | os.PathLike[str], examples: Iterable[RaftExample]) -> int:
    """Write ``examples`` as JSONL atomically; returns the number of lines written."""
    return _write_lines(path, (example.model_dump_json() for example in examples))


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write JSON objects one per line, UTF-8 unescaped (CJK stays readable), atomically."""
    return _write_lines(
        path, (json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows)
    )


def _write_lines(path: str | os.PathLike[str], lines: Iterable[str]) -> int:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    count = 0
    try:
        # mkstemp creates the file private (0600); give the dataset ordinary file permissions
        os.chmod(tmp_name, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            for line in lines:
                out.write(line)
                out.write("\n")
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return count


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    more = error.error_count() - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if first["type"] == "json_invalid":
        return f"invalid JSON: {first['msg']}{tail}"
    return f"not a RaftExample: {where or 'record'}: {first['msg']}{tail}"

"""Turning a text file's bytes into ``str`` without guessing.

UTF-8 (with or without a byte-order mark) and UTF-16/UTF-32 with a byte-order mark are
recognised; anything else must be named by the caller. Bytes that are not valid in the chosen
encoding raise :class:`~raftkit.errors.ExtractionError` with the byte offset, instead of being
replaced by U+FFFD and silently ending up in a training set.
"""

from __future__ import annotations

import codecs

from raftkit.errors import ExtractionError

__all__ = ["decode_bytes"]

# longest first: the UTF-32-LE mark starts with the UTF-16-LE mark
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_bytes(data: bytes, *, path: str, encoding: str | None = None) -> str:
    """Decode ``data`` read from ``path``: by its byte-order mark, as UTF-8, or as ``encoding``.

    Raises :class:`ExtractionError` naming ``path`` and the first bad byte's offset.
    """
    offset = 0
    if encoding is None:
        encoding = "utf-8"
        for bom, name in _BOMS:
            if data.startswith(bom):
                encoding, offset = name, len(bom)
                break
    try:
        return data[offset:].decode(encoding)
    except LookupError as e:
        raise ExtractionError(path, f"unknown encoding {encoding!r}") from e
    except UnicodeDecodeError as e:
        raise ExtractionError(
            path,
            f"not valid {encoding} at byte offset {offset + e.start}"
            " (pass encoding=... to read another encoding)",
        ) from e

"""Plain text and Markdown files: one file, one :class:`~raftkit.types.Document`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Collection
from pathlib import Path

from raftkit.errors import ExtractionError
from raftkit.extract._files import read_bytes
from raftkit.extract.cleanup import Normalization, clean_text
from raftkit.extract.encoding import decode_bytes
from raftkit.types import Document

__all__ = ["TextExtractor"]

_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})
_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


class TextExtractor:
    """Reads ``.txt`` and Markdown files.

    ``encoding`` overrides detection (byte-order mark, else strict UTF-8). With ``clean``
    (the default) the text gets the same Unicode and CJK clean-up as PDF text; Markdown keeps
    its structure (headings, lists, code) either way.
    """

    def __init__(
        self,
        *,
        encoding: str | None = None,
        clean: bool = True,
        normalization: Normalization = "NFC",
        suffixes: Collection[str] = (".txt", ".text", *_MARKDOWN_SUFFIXES),
    ) -> None:
        self.encoding = encoding
        self.clean = clean
        self.normalization: Normalization = normalization
        self.suffixes = frozenset(s.lower() for s in suffixes)

    def __repr__(self) -> str:
        return f"TextExtractor(encoding={self.encoding!r}, clean={self.clean})"

    def supports(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes

    async def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document]:
        data = await read_bytes(path)
        text = decode_bytes(data, path=str(path), encoding=self.encoding)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if self.clean:
            text = clean_text(text, normalization=self.normalization, collapse_spaces=False)
        if not text.strip():
            raise ExtractionError(str(path), "no text (empty file)")
        is_markdown = path.suffix.lower() in _MARKDOWN_SUFFIXES
        metadata = {"format": "markdown" if is_markdown else "text", "title": path.stem}
        if is_markdown and (title := _TITLE.search(text)):
            metadata["title"] = title.group(1)
        yield Document(id=doc_id, source=str(path), text=text, metadata=metadata)

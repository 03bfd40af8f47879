"""Floor 3: turning source files into :class:`~raftkit.types.Document` records.

An :class:`Extractor` is a strategy: anything with ``supports(path)`` and an async-generator
``extract(path, *, doc_id)``. ``extract`` is an async iterator because one file may hold many
documents (a JSON Lines file) and because extraction may call a model (the vision extractor);
blocking parsing runs in a worker thread. An extractor *raises*
:class:`~raftkit.errors.ExtractionError` when the whole file is unusable and may *yield* one
for a single bad record before going on with the rest of the file.

A minimal extractor::

    class CsvExtractor:
        def supports(self, path: Path) -> bool:
            return path.suffix == ".csv"

        async def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document]:
            text = await anyio.Path(path).read_text()
            yield Document(id=doc_id, source=str(path), text=text)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from raftkit.errors import ExtractionError
from raftkit.types import Document

__all__ = [
    "VISION_PROMPT",
    "ExtractionReport",
    "Extractor",
    "ExtractorDispatch",
    "FolderExtraction",
    "HtmlExtractor",
    "JsonExtractor",
    "JsonlExtractor",
    "PdfExtractor",
    "TextExtractor",
    "VisionPdfExtractor",
    "clean_text",
    "default_extractors",
    "document_id",
    "extract_folder",
    "iter_documents",
]


@runtime_checkable
class Extractor(Protocol):
    """Reads one kind of file into Documents."""

    def supports(self, path: Path) -> bool:
        """Whether this extractor reads ``path`` (by its name; must not do I/O)."""
        ...

    def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document | ExtractionError]:
        """The documents in ``path``; ``doc_id`` is the file's stable id.

        One-document formats yield one Document with id ``doc_id``; multi-record formats use
        ``"<doc_id>#<record>"``. Raise ExtractionError for an unusable file; yield one for a
        single unusable record.
        """
        ...


# The implementations import the protocol only for type checking, so they come after it.
from raftkit.extract.cleanup import clean_text  # noqa: E402
from raftkit.extract.folder import (  # noqa: E402
    ExtractionReport,
    ExtractorDispatch,
    FolderExtraction,
    default_extractors,
    document_id,
    extract_folder,
    iter_documents,
)
from raftkit.extract.html import HtmlExtractor  # noqa: E402
from raftkit.extract.pdf import PdfExtractor  # noqa: E402
from raftkit.extract.plain import TextExtractor  # noqa: E402
from raftkit.extract.records import JsonExtractor, JsonlExtractor  # noqa: E402
from raftkit.extract.vision import VISION_PROMPT, VisionPdfExtractor  # noqa: E402

"""PDF text extraction with pymupdf.

Reading order: the text layer is read in content-stream order (``page.get_text()``), which for
PDFs printed by browsers and word processors is the reading order. ``sort=True`` sorts blocks
top-to-bottom, left-to-right instead — for PDFs whose content stream is scrambled — but it is
about four times slower on the corpus and interleaves side columns (a Wikipedia infobox) with
the body, so it is off by default. See docs/extraction.md for the measurements.

pymupdf is not thread-safe, so every call into it, from any thread, holds :data:`PDF_LOCK`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from raftkit.errors import ExtractionError
from raftkit.extract.cleanup import Normalization, clean_texts
from raftkit.types import Document, PageSpan

__all__ = [
    "PDF_LOCK",
    "PdfExtractor",
    "assemble_pages",
    "find_tables",
    "open_pdf",
    "page_text",
    "pdf_metadata",
]

#: Held around every use of pymupdf: MuPDF must not be entered by two threads at once.
PDF_LOCK = threading.Lock()

PAGE_SEPARATOR = "\n\n"


def _pymupdf() -> Any:
    """pymupdf, imported when a PDF is first opened: importing it costs ~120 MB of memory and
    seconds, which a corpus without PDFs (and ``import raftkit.extract``) should not pay.
    Typed ``Any``: PyMuPDF's annotations are partial."""
    import pymupdf

    return pymupdf


_METADATA_KEYS = {
    "title": "title",
    "author": "author",
    "subject": "subject",
    "keywords": "keywords",
    "creator": "creator",
    "producer": "producer",
    "creationDate": "created",
    "modDate": "modified",
    "format": "pdf_version",
}


def open_pdf(path: Path, password: str | None = None) -> Any:
    """Open ``path`` as a PDF (caller holds :data:`PDF_LOCK`); problems become ExtractionError.

    The password is never part of an error message.
    """
    name = str(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ExtractionError(name, f"cannot read file: {e.strerror or e}") from e
    if size == 0:
        raise ExtractionError(name, "empty file (0 bytes)")
    try:
        doc = _pymupdf().open(path, filetype="pdf")
    except Exception as e:  # pymupdf raises FileDataError, RuntimeError, ValueError...
        raise ExtractionError(name, f"not a readable PDF ({type(e).__name__}: {e})") from e
    if doc.needs_pass:
        if password is None:
            doc.close()
            raise ExtractionError(name, "encrypted PDF: a password is needed (pass password=...)")
        if not doc.authenticate(password):
            doc.close()
            raise ExtractionError(name, "encrypted PDF: the password given does not open it")
    if doc.page_count == 0:
        doc.close()
        raise ExtractionError(name, "PDF has no pages (damaged?)")
    return doc


def pdf_metadata(doc: Any) -> dict[str, str]:
    """The document's info dictionary (non-empty values) plus ``page_count``."""
    metadata = {"format": "pdf", "page_count": str(doc.page_count)}
    for key, name in _METADATA_KEYS.items():
        value = (doc.metadata or {}).get(key)
        if isinstance(value, str) and value.strip():
            metadata[name] = value.strip()
    return metadata


def find_tables(page: Any, *, layout: bool = True) -> list[Any]:
    """The tables pymupdf finds on ``page`` (caller holds :data:`PDF_LOCK`).

    ``layout`` lets pymupdf use its layout model (when pymupdf-layout is installed), which also
    finds tables without ruling lines (a Wikipedia infobox) but is several times slower than
    the line-based detection alone.
    """
    return [t for t in page.find_tables(use_layout=layout).tables if t.row_count > 0]


def _tables_as_markdown(page: Any, sort: bool, layout: bool) -> str | None:
    """The page's text with each table region replaced by the table in Markdown.

    ``None`` when pymupdf finds no table, so the caller keeps the faster plain text.
    """
    tables = find_tables(page, layout=layout)
    if not tables:
        return None
    boxes: list[tuple[float, float, float, float]] = [tuple(t.bbox) for t in tables]
    markdown = [t.to_markdown(clean=False).strip() for t in tables]
    parts: list[str] = []
    emitted: set[int] = set()
    text_layout = page.get_text("dict", flags=_pymupdf().TEXTFLAGS_TEXT, sort=sort)
    for block in text_layout["blocks"]:
        for line in block.get("lines", ()):
            x0, y0, x1, y1 = line["bbox"]
            x, y = (x0 + x1) / 2, (y0 + y1) / 2
            hit = next(
                (
                    i
                    for i, (bx0, by0, bx1, by1) in enumerate(boxes)
                    if bx0 <= x <= bx1 and by0 <= y <= by1
                ),
                None,
            )
            if hit is None:
                parts.append("".join(span["text"] for span in line["spans"]))
            elif hit not in emitted:
                emitted.add(hit)
                parts.append(f"\n{markdown[hit]}\n")
    # a table whose cells are not in the text layer (drawn as paths) still gets its Markdown
    parts.extend(f"\n{md}\n" for i, md in enumerate(markdown) if i not in emitted)
    return "\n".join(parts)


def page_text(
    page: Any, *, tables: bool = False, table_layout: bool = True, sort: bool = False
) -> str:
    """The raw text of one page (caller holds :data:`PDF_LOCK`)."""
    if tables:
        with_tables = _tables_as_markdown(page, sort, table_layout)
        if with_tables is not None:
            return with_tables
    return str(page.get_text("text", sort=sort))


def assemble_pages(
    pages: Sequence[str],
    *,
    doc_id: str,
    source: str,
    metadata: dict[str, str],
    normalization: Normalization = "NFC",
) -> Document:
    """Clean the pages together, join them and record where each page lies in the text."""
    cleaned = clean_texts(pages, normalization=normalization)
    spans: list[PageSpan] = []
    parts: list[str] = []
    offset = 0
    for number, text in enumerate(cleaned, start=1):
        if offset and text:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        spans.append(PageSpan(page=number, start=offset, end=offset + len(text)))
        parts.append(text)
        offset += len(text)
    full = "".join(parts)
    if not full.strip():
        raise ExtractionError(
            source, "no extractable text (scanned or image-only? try VisionPdfExtractor)"
        )
    return Document(id=doc_id, source=source, text=full, pages=spans, metadata=metadata)


class PdfExtractor:
    """Extracts the text layer of PDFs, page by page, with metadata.

    - ``tables``: find tables and put them in the text as Markdown tables, in place of their
      cells' text. Off by default: ``page.find_tables()`` is 30 to 100 times slower than
      reading the text.
    - ``table_layout``: let pymupdf's layout model find tables (finds tables without ruling
      lines; slower); ``False`` uses line-based detection only.
    - ``sort``: sort text blocks by position instead of content-stream order (see module doc).
    - ``normalization``: Unicode form of the text (see :mod:`raftkit.extract.cleanup`).
    - ``password``: opens encrypted PDFs; never shown in ``repr`` or errors.
    """

    def __init__(
        self,
        *,
        tables: bool = False,
        table_layout: bool = True,
        sort: bool = False,
        normalization: Normalization = "NFC",
        password: str | None = None,
    ) -> None:
        self.tables = tables
        self.table_layout = table_layout
        self.sort = sort
        self.normalization: Normalization = normalization
        self._password = password

    def __repr__(self) -> str:
        return f"PdfExtractor(tables={self.tables}, sort={self.sort})"

    def supports(self, path: Path) -> bool:
        return path.suffix.lower() == ".pdf"

    def _read(self, path: Path) -> tuple[list[str], dict[str, str]]:
        with PDF_LOCK:
            doc = open_pdf(path, self._password)
            try:
                metadata = pdf_metadata(doc)
                pages = [
                    page_text(p, tables=self.tables, table_layout=self.table_layout, sort=self.sort)
                    for p in doc
                ]
            except ExtractionError:
                raise
            except Exception as e:  # a damaged content stream surfaces here, not at open
                raise ExtractionError(str(path), f"damaged PDF ({type(e).__name__}: {e})") from e
            finally:
                doc.close()
        return pages, metadata

    def extract_sync(self, path: Path, *, doc_id: str) -> Document:
        """The blocking work of :meth:`extract`, for callers already off the event loop."""
        pages, metadata = self._read(path)
        return assemble_pages(
            pages,
            doc_id=doc_id,
            source=str(path),
            metadata=metadata,
            normalization=self.normalization,
        )

    async def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document]:
        yield await anyio.to_thread.run_sync(lambda: self.extract_sync(path, doc_id=doc_id))

"""Walking a folder: pick an extractor per file, yield Documents, report bad files, go on."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

import anyio

from raftkit.errors import ExtractionError, UsageError
from raftkit.extract._files import read_head
from raftkit.extract.html import HtmlExtractor
from raftkit.extract.pdf import PdfExtractor
from raftkit.extract.plain import TextExtractor
from raftkit.extract.records import JsonExtractor, JsonlExtractor
from raftkit.resources import AsyncResource
from raftkit.types import Document

if TYPE_CHECKING:
    from raftkit.extract import Extractor

__all__ = [
    "COMMON_SUFFIXES",
    "ExtractionReport",
    "ExtractorDispatch",
    "FolderExtraction",
    "default_extractors",
    "document_id",
    "extract_folder",
    "iter_documents",
]


#: File types :meth:`ExtractorDispatch.supported_suffixes` asks the extractors about.
COMMON_SUFFIXES = (
    ".pdf", ".txt", ".text", ".md", ".markdown", ".mdown", ".mkd", ".rst", ".html", ".htm",
    ".xhtml", ".xml", ".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".doc", ".docx", ".odt",
    ".rtf", ".epub", ".pptx", ".xlsx", ".tex",
)  # fmt: skip


def default_extractors() -> list[Extractor]:
    """One of each built-in extractor with default settings (no vision: it needs a client)."""
    return [PdfExtractor(), TextExtractor(), HtmlExtractor(), JsonExtractor(), JsonlExtractor()]


def _sniffed_suffix(head: bytes) -> str | None:
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"%PDF-" in head[:1024]:
        return ".pdf"
    lowered = head[:256].lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return ".html"
    return None


class ExtractorDispatch:
    """Picks the extractor for a file: the first whose ``supports`` claims its suffix, else
    by magic bytes (``%PDF-``, ``<!doctype html``/``<html``) for files with a missing or
    unknown suffix. It is an :class:`~raftkit.extract.Extractor` itself.
    """

    def __init__(self, extractors: Sequence[Extractor] | None = None) -> None:
        self.extractors: list[Extractor] = (
            list(extractors) if extractors is not None else default_extractors()
        )

    def __repr__(self) -> str:
        return f"ExtractorDispatch({self.extractors!r})"

    def supports(self, path: Path) -> bool:
        return any(e.supports(path) for e in self.extractors)

    def supported_suffixes(self, candidates: Sequence[str] = COMMON_SUFFIXES) -> list[str]:
        """Which of ``candidates`` the extractors read (``supports`` does no I/O, so asking
        it about a made-up name is safe): the list a person is shown when nothing was read."""
        return [s for s in candidates if self.supports(Path(f"document{s}"))]

    async def pick(self, path: Path) -> Extractor | None:
        """The extractor for ``path``, or ``None`` when no extractor handles it."""
        for extractor in self.extractors:
            if extractor.supports(path):
                return extractor
        suffix = _sniffed_suffix(await read_head(path))
        if suffix is None:
            return None
        stand_in = path.with_name(path.name + suffix)
        return next((e for e in self.extractors if e.supports(stand_in)), None)

    async def extract(
        self, path: Path, *, doc_id: str
    ) -> AsyncIterator[Document | ExtractionError]:
        extractor = await self.pick(path)
        if extractor is None:
            raise ExtractionError(str(path), "unsupported file type")
        async for item in extractor.extract(path, doc_id=doc_id):
            yield item


def _visible_files(root: Path) -> list[Path | ExtractionError]:
    """Files under ``root`` in sorted order; unreadable folders below it become errors."""
    if root.is_file():
        return [root]
    found: list[Path | ExtractionError] = []
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path) -> None:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen:  # a symbolic link back up the tree
            return
        seen.add((info.st_dev, info.st_ino))
        # sorted by name at every level, so the order is the same on every machine and run
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                if entry.is_dir():
                    visit(path)
                elif entry.is_file():
                    found.append(path)
            except OSError as e:
                found.append(ExtractionError(str(path), f"cannot read: {e.strerror or e}"))

    visit(root)
    return found


def document_id(path: Path, root: Path) -> str:
    """The stable id of a file: its path relative to the walked root, with ``/``."""
    if path == root:
        return path.name
    return path.relative_to(root).as_posix()


@dataclass
class ExtractionReport:
    """What a folder walk did: files seen, documents yielded, files skipped and errors."""

    root: str
    files: int = 0
    documents: int = 0
    skipped: list[str] = field(default_factory=list)
    errors: list[ExtractionError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        lines = [
            f"{self.root}: {self.documents} documents from {self.files} files, "
            f"{len(self.errors)} errors, {len(self.skipped)} unsupported files skipped"
        ]
        lines.extend(f"  error: {error}" for error in self.errors)
        lines.extend(f"  skipped: {name}" for name in self.skipped)
        return "\n".join(lines)


class FolderExtraction(AsyncResource):
    """The Documents of a folder as an async iterator, with its :class:`ExtractionReport`.

    One pass only. Close it (``async with`` or :meth:`aclose`) when stopping early.
    """

    def __init__(
        self,
        root: Path,
        extractors: ExtractorDispatch,
        on_error: Callable[[ExtractionError], object] | None,
    ) -> None:
        self.root = root
        self.report = ExtractionReport(root=str(root))
        self._dispatch = extractors
        self._on_error = on_error
        self._walk: AsyncIterator[Document] | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Document:
        if self._walk is None:
            self._walk = self._documents()
        return await anext(self._walk)

    async def aclose(self) -> None:
        walk, self._walk = self._walk, _finished()
        if walk is not None:
            await _close(walk)

    def _record(self, error: ExtractionError) -> None:
        self.report.errors.append(error)
        if self._on_error is not None:
            self._on_error(error)

    async def _documents(self) -> AsyncIterator[Document]:
        root = self.root
        try:
            files = await anyio.to_thread.run_sync(_visible_files, root)
        except OSError as e:
            raise UsageError(f"cannot walk {root}: {e.strerror or e}") from e
        for path in files:
            if isinstance(path, ExtractionError):
                self._record(path)
                continue
            self.report.files += 1
            doc_id = document_id(path, root)
            extractor = await self._dispatch.pick(path)
            if extractor is None:
                self.report.skipped.append(doc_id)
                continue
            items = extractor.extract(path, doc_id=doc_id)
            try:
                async for item in items:
                    if isinstance(item, ExtractionError):
                        self._record(item)
                    else:
                        self.report.documents += 1
                        yield item
            except ExtractionError as e:
                self._record(e)
            except OSError as e:  # a file that vanished or is unreadable mid-walk
                self._record(ExtractionError(str(path), f"cannot read file: {e.strerror or e}"))
            finally:
                await _close(items)


async def _finished() -> AsyncIterator[Document]:
    return
    yield  # an async generator that is already exhausted


async def _close(iterator: AsyncIterator[object]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def iter_documents(
    root: str | os.PathLike[str],
    *,
    extractors: ExtractorDispatch | Sequence[Extractor] | None = None,
    on_error: Callable[[ExtractionError], object] | None = None,
) -> FolderExtraction:
    """Walk ``root`` (a folder or one file) and yield its Documents, one file at a time.

    Files are visited in sorted order, hidden files and folders (``.name``) are skipped, and
    document ids are paths relative to ``root`` (``"bats/Bat - Wikipedia.pdf"``). A file that
    cannot be extracted is reported (``on_error`` and ``.report.errors``) and the walk goes
    on; files no extractor handles are listed in ``.report.skipped``. Errors that are not
    about the input (an API failure in the vision extractor, a bug) stop the walk.

    Usage::

        walk = iter_documents("corpus")
        async with walk:
            async for document in walk:
                ...
        print(walk.report.summary())
    """
    dispatch = (
        extractors if isinstance(extractors, ExtractorDispatch) else ExtractorDispatch(extractors)
    )
    return FolderExtraction(Path(root), dispatch, on_error)


async def extract_folder(
    root: str | os.PathLike[str],
    *,
    extractors: ExtractorDispatch | Sequence[Extractor] | None = None,
    on_error: Callable[[ExtractionError], object] | None = None,
) -> tuple[list[Document], ExtractionReport]:
    """All Documents of ``root`` in a list, with the report (for corpora that fit in memory)."""
    walk = iter_documents(root, extractors=extractors, on_error=on_error)
    async with walk:
        documents = [document async for document in walk]
    return documents, walk.report

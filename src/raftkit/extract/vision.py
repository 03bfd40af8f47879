"""PDF pages read by a vision model: each page rendered to PNG and transcribed to Markdown.

The extractor only calls :meth:`LLMClient.chat`, so a journaling client wrapped around it by the
layer above records (and on resume replays) every page's transcription.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Any

import anyio

from raftkit.errors import ExtractionError, UsageError
from raftkit.extract.cleanup import Normalization
from raftkit.extract.pdf import (
    PDF_LOCK,
    assemble_pages,
    find_tables,
    open_pdf,
    page_text,
    pdf_metadata,
)
from raftkit.llm import ChatMessage, LLMClient
from raftkit.llm.caps import CompletionCaps
from raftkit.types import Document

__all__ = ["VISION_PROMPT", "VISION_TOKENS", "VisionPdfExtractor"]

#: The completion cap of a page before any page was transcribed: a dense page of text and a
#: table or two. Later pages get the cap learned from the run's transcriptions.
VISION_TOKENS = 2048

#: What the model is asked to do with each page image.
VISION_PROMPT = (
    "Transcribe this document page into Markdown. Keep the text exactly as printed, in reading "
    "order and in its original language; do not translate, summarise or add commentary. Use "
    "Markdown headings for headings and Markdown tables for tables (one row per line, a header "
    "row and a separator row). Describe a figure in one short sentence in square brackets only "
    "if it carries information that is not in the text. Leave out running headers, footers and "
    "page numbers. Answer with the Markdown only."
)

_FENCE = re.compile(r"\A\s*```(?:markdown|md)?[ \t]*\n(.*?)\n?```\s*\Z", re.DOTALL)


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text


class VisionPdfExtractor:
    """Extracts PDFs by sending page images to a vision model through ``client.chat``.

    - ``pages``: 1-based page numbers to send to the model (default: every page).
    - ``table_pages_only``: send only pages where pymupdf finds a table (the Azure RAFT
      recipe); every other page uses the text layer, as :class:`PdfExtractor` reads it.
      ``table_layout`` is passed to :func:`~raftkit.extract.pdf.find_tables`.
    - ``dpi``: render resolution; 150 keeps small print legible at about one image tile set.
    - ``concurrency``: pages in flight at once (rendered and sent), per document.
    - ``prompt``: replaces :data:`VISION_PROMPT`.
    - ``max_tokens`` pins the cap of each page's reply; otherwise ``caps`` (a run's
      :class:`~raftkit.llm.caps.CompletionCaps`, or one of its own) learns it, starting
      from :data:`VISION_TOKENS`.
    """

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        dpi: int = 150,
        pages: Collection[int] | None = None,
        table_pages_only: bool = False,
        table_layout: bool = True,
        concurrency: int = 4,
        prompt: str = VISION_PROMPT,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        normalization: Normalization = "NFC",
        password: str | None = None,
        caps: CompletionCaps | None = None,
    ) -> None:
        if dpi < 36 or dpi > 600:
            raise UsageError(f"dpi must be between 36 and 600, got {dpi}")
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {concurrency}")
        if pages is not None and any(p < 1 for p in pages):
            raise UsageError("pages are 1-based page numbers")
        self.client = client
        self.model = model
        self.dpi = dpi
        self.pages = frozenset(pages) if pages is not None else None
        self.table_pages_only = table_pages_only
        self.table_layout = table_layout
        self.concurrency = concurrency
        self.prompt = prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.normalization: Normalization = normalization
        self._password = password
        self.caps = caps if caps is not None else CompletionCaps()

    def __repr__(self) -> str:
        return (
            f"VisionPdfExtractor(model={self.model!r}, dpi={self.dpi}, "
            f"table_pages_only={self.table_pages_only})"
        )

    def supports(self, path: Path) -> bool:
        return path.suffix.lower() == ".pdf"

    def _plan(self, path: Path) -> tuple[list[str], list[int], dict[str, str]]:
        """Text-layer pages, the page numbers for the model, and the metadata."""
        with PDF_LOCK:
            doc = open_pdf(path, self._password)
            try:
                metadata = pdf_metadata(doc)
                texts: list[str] = []
                chosen: list[int] = []
                for page in doc:
                    number = page.number + 1
                    wanted = self.pages is None or number in self.pages
                    if wanted and self.table_pages_only:
                        wanted = bool(find_tables(page, layout=self.table_layout))
                    if wanted:
                        chosen.append(number)
                        texts.append("")
                    else:
                        texts.append(page_text(page))
            except ExtractionError:
                raise
            except Exception as e:
                raise ExtractionError(str(path), f"damaged PDF ({type(e).__name__}: {e})") from e
            finally:
                doc.close()
        return texts, chosen, metadata

    def _render(self, path: Path, number: int) -> bytes:
        with PDF_LOCK:
            doc = open_pdf(path, self._password)
            try:
                pixmap = doc[number - 1].get_pixmap(dpi=self.dpi, alpha=False)
                return bytes(pixmap.tobytes("png"))
            except Exception as e:
                raise ExtractionError(
                    str(path), f"page {number} cannot be rendered ({type(e).__name__}: {e})"
                ) from e
            finally:
                doc.close()

    def messages(self, png: bytes) -> list[ChatMessage]:
        """The chat request for one page image."""
        url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        content: list[dict[str, Any]] = [
            {"type": "text", "text": self.prompt},
            {"type": "image_url", "image_url": {"url": url}},
        ]
        return [{"role": "user", "content": content}]

    async def _transcribe(
        self,
        path: Path,
        number: int,
        limiter: anyio.CapacityLimiter,
        texts: list[str],
        failures: list[Exception],
        scope: anyio.CancelScope,
    ) -> None:
        try:
            async with limiter:  # rendering inside the limit bounds the images held in memory
                png = await anyio.to_thread.run_sync(self._render, path, number)
                cap = self.caps.cap(
                    "vision", self.model, initial=VISION_TOKENS, pinned=self.max_tokens
                )
                response = await self.client.chat(
                    self.messages(png),
                    model=self.model,
                    temperature=self.temperature,
                    max_tokens=cap.max_tokens,
                    retry_max_tokens=cap.retry_max_tokens,
                )
                self.caps.observe("vision", self.model, response)
        except Exception as e:
            # the first failure is re-raised as itself, not inside an ExceptionGroup, so the
            # folder walk can tell an unreadable page from an API failure
            failures.append(e)
            scope.cancel()
            return
        texts[number - 1] = _strip_fence(response.text)

    async def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document]:
        texts, chosen, metadata = await anyio.to_thread.run_sync(self._plan, path)
        limiter = anyio.CapacityLimiter(self.concurrency)
        failures: list[Exception] = []
        async with anyio.create_task_group() as tg:
            for number in chosen:
                tg.start_soon(
                    self._transcribe, path, number, limiter, texts, failures, tg.cancel_scope
                )
        if failures:
            raise failures[0]
        metadata["extractor"] = "vision"
        metadata["vision_model"] = self.model
        metadata["vision_pages"] = ",".join(map(str, chosen))
        yield assemble_pages(
            texts,
            doc_id=doc_id,
            source=str(path),
            metadata=metadata,
            normalization=self.normalization,
        )

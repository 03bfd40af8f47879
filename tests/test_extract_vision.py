"""VisionPdfExtractor with a fake LLMClient that records each call and answers in Markdown."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt
import pymupdf as _pymupdf
import pytest

from raftkit.errors import ExtractionError, RateLimitError, UsageError
from raftkit.extract import VISION_PROMPT, VisionPdfExtractor, extract_folder
from raftkit.llm import ChatMessage, ChatResponse, LLMClient, StructuredMode, StructuredResponse
from raftkit.types import Document

# PyMuPDF's annotations are partial: use it as an untyped module
pymupdf: Any = _pymupdf

pytestmark = pytest.mark.anyio


class FakeVisionClient(LLMClient):
    """Answers each page image with a Markdown table holding the image's pixel width."""

    def __init__(self, *, wait_for: int = 1, fail: Exception | None = None) -> None:
        self.calls: list[tuple[list[ChatMessage], dict[str, Any]]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._wait_for = wait_for
        self._enough = anyio.Event()
        self._fail = fail

    async def aclose(self) -> None:
        return None

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        sample: int = 0,
        extra_body: Mapping[str, Any] | None = None,
    ) -> ChatResponse:
        self.calls.append((list(messages), {"model": model, "temperature": temperature}))
        if self._fail is not None:
            raise self._fail
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight >= self._wait_for:
            self._enough.set()
        with anyio.fail_after(10):  # a hang would mean pages are not sent concurrently
            await self._enough.wait()
        self.in_flight -= 1
        content = messages[0]["content"]
        url = content[1]["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        png = base64.b64decode(url.removeprefix("data:image/png;base64,"))
        width = pymupdf.Pixmap(png).width
        table = f"```markdown\n## Page\n\n| width | px |\n|---|---|\n| {width} | yes |\n```"
        return ChatResponse(text=table, model=model)

    async def chat_structured(
        self,
        messages: Sequence[ChatMessage],
        output: type[Any] | Mapping[str, Any],
        *,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        sample: int = 0,
        mode: StructuredMode | None = None,
        max_attempts: int | None = None,
    ) -> StructuredResponse[Any]:
        raise AssertionError("the vision extractor only calls chat")

    async def embed(
        self, texts: Sequence[str], *, model: str, dimensions: int | None = None
    ) -> npt.NDArray[np.float32]:
        raise AssertionError("the vision extractor only calls chat")

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        raise AssertionError("the vision extractor only calls chat")


def pdf_with_widths(path: Path, widths: Sequence[int], table_on: int | None = None) -> Path:
    """A PDF whose pages differ in width, so a page's image tells which page it is."""
    with pymupdf.open() as doc:
        for number, width in enumerate(widths, start=1):
            page = doc.new_page(width=width, height=200)
            page.insert_text((20, 40), f"Text layer of page {number}.")
            if number == table_on:
                for row in range(2):
                    for col in range(2):
                        cell = pymupdf.Rect(
                            20 + 60 * col, 80 + 20 * row, 80 + 60 * col, 100 + 20 * row
                        )
                        page.draw_rect(cell, color=(0, 0, 0), width=0.5)
                        page.insert_text((cell.x0 + 3, cell.y1 - 5), f"c{row}{col}", fontsize=8)
        doc.save(path)
    return path


async def extract_one(extractor: VisionPdfExtractor, path: Path) -> Document:
    items = [d async for d in extractor.extract(path, doc_id="doc.pdf")]
    assert len(items) == 1
    return items[0]


async def test_every_page_is_transcribed_concurrently_and_in_order(tmp_path: Path) -> None:
    path = pdf_with_widths(tmp_path / "doc.pdf", [300, 400, 500, 600])
    client = FakeVisionClient(wait_for=2)
    extractor = VisionPdfExtractor(client, "vision-model", dpi=72, concurrency=2)
    document = await extract_one(extractor, path)
    assert len(client.calls) == 4
    assert client.most_in_flight == 2
    for messages, options in client.calls:
        assert options == {"model": "vision-model", "temperature": 0.0}
        assert messages[0]["role"] == "user"
        assert messages[0]["content"][0] == {"type": "text", "text": VISION_PROMPT}
    assert [span.page for span in document.pages] == [1, 2, 3, 4]
    for span, width in zip(document.pages, [300, 400, 500, 600], strict=True):
        page = document.text[span.start : span.end]
        assert page == f"## Page\n\n| width | px |\n|---|---|\n| {width} | yes |"
    assert document.metadata["extractor"] == "vision"
    assert document.metadata["vision_pages"] == "1,2,3,4"
    assert document.metadata["page_count"] == "4"


async def test_selected_pages_and_custom_prompt(tmp_path: Path) -> None:
    path = pdf_with_widths(tmp_path / "doc.pdf", [300, 400, 500])
    client = FakeVisionClient()
    extractor = VisionPdfExtractor(client, "m", dpi=144, pages=[2], prompt="Transcribe.")
    document = await extract_one(extractor, path)
    assert len(client.calls) == 1
    assert client.calls[0][0][0]["content"][0]["text"] == "Transcribe."
    texts = [document.text[s.start : s.end] for s in document.pages]
    assert texts[0] == "Text layer of page 1."
    assert "| 800 | yes |" in texts[1]  # 400 pt at 144 dpi
    assert texts[2] == "Text layer of page 3."


async def test_only_pages_with_tables_go_to_the_model(tmp_path: Path) -> None:
    path = pdf_with_widths(tmp_path / "doc.pdf", [300, 400, 500], table_on=2)
    client = FakeVisionClient()
    extractor = VisionPdfExtractor(client, "m", dpi=72, table_pages_only=True, table_layout=False)
    document = await extract_one(extractor, path)
    assert len(client.calls) == 1
    assert document.metadata["vision_pages"] == "2"
    texts = [document.text[s.start : s.end] for s in document.pages]
    assert texts[0] == "Text layer of page 1."
    assert "| 400 | yes |" in texts[1]
    assert texts[2] == "Text layer of page 3."


async def test_api_errors_propagate_unwrapped_and_stop_a_folder_walk(tmp_path: Path) -> None:
    pdf_with_widths(tmp_path / "doc.pdf", [300, 400])
    failure = RateLimitError("slow down", status_code=429)
    extractor = VisionPdfExtractor(FakeVisionClient(fail=failure), "m", dpi=72)
    with pytest.raises(RateLimitError):
        await extract_folder(tmp_path, extractors=[extractor])


async def test_unreadable_pdf_is_reported_by_the_walk(tmp_path: Path) -> None:
    (tmp_path / "bad.pdf").write_bytes(b"nope")
    client = FakeVisionClient()
    documents, report = await extract_folder(tmp_path, extractors=[VisionPdfExtractor(client, "m")])
    assert documents == []
    assert [Path(e.path).name for e in report.errors] == ["bad.pdf"]
    assert isinstance(report.errors[0], ExtractionError)
    assert client.calls == []


def test_arguments_are_checked() -> None:
    client = FakeVisionClient()
    with pytest.raises(UsageError):
        VisionPdfExtractor(client, "m", dpi=10)
    with pytest.raises(UsageError):
        VisionPdfExtractor(client, "m", concurrency=0)
    with pytest.raises(UsageError):
        VisionPdfExtractor(client, "m", pages=[0])
    assert "s3cret" not in repr(VisionPdfExtractor(client, "m", password="s3cret"))

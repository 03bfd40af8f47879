"""VisionPdfExtractor with a fake LLMClient that records each call and answers in Markdown."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pymupdf as _pymupdf
import pytest

from raftkit.errors import ExtractionError, RateLimitError, UsageError
from raftkit.extract import VISION_PROMPT, VisionPdfExtractor, extract_folder
from raftkit.testing.scripted import Call, ScriptedClient
from raftkit.types import Document

# PyMuPDF's annotations are partial: use it as an untyped module
pymupdf: Any = _pymupdf

pytestmark = pytest.mark.anyio


def vision_client(*, wait_for: int = 1, fail: Exception | None = None) -> ScriptedClient:
    """Answers each page image with a Markdown table holding the image's pixel width, once
    ``wait_for`` pages are in flight together."""
    enough = anyio.Event()

    async def transcribe(call: Call) -> str:
        assert call.method == "chat", "the vision extractor only calls chat"
        if fail is not None:
            raise fail
        if client.in_flight >= wait_for:
            enough.set()
        with anyio.fail_after(10):  # a hang would mean pages are not sent concurrently
            await enough.wait()
        url = call.messages[0]["content"][1]["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        png = base64.b64decode(url.removeprefix("data:image/png;base64,"))
        width = pymupdf.Pixmap(png).width
        return f"```markdown\n## Page\n\n| width | px |\n|---|---|\n| {width} | yes |\n```"

    client = ScriptedClient(transcribe)
    return client


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
    client = vision_client(wait_for=2)
    extractor = VisionPdfExtractor(client, "vision-model", dpi=72, concurrency=2)
    document = await extract_one(extractor, path)
    assert len(client.calls) == 4
    assert client.max_in_flight == 2
    for call in client.calls:
        assert (call.model, call.kwargs["temperature"]) == ("vision-model", 0.0)
        assert call.messages[0]["role"] == "user"
        assert call.messages[0]["content"][0] == {"type": "text", "text": VISION_PROMPT}
    assert [span.page for span in document.pages] == [1, 2, 3, 4]
    for span, width in zip(document.pages, [300, 400, 500, 600], strict=True):
        page = document.text[span.start : span.end]
        assert page == f"## Page\n\n| width | px |\n|---|---|\n| {width} | yes |"
    assert document.metadata["extractor"] == "vision"
    assert document.metadata["vision_pages"] == "1,2,3,4"
    assert document.metadata["page_count"] == "4"


async def test_selected_pages_and_custom_prompt(tmp_path: Path) -> None:
    path = pdf_with_widths(tmp_path / "doc.pdf", [300, 400, 500])
    client = vision_client()
    extractor = VisionPdfExtractor(client, "m", dpi=144, pages=[2], prompt="Transcribe.")
    document = await extract_one(extractor, path)
    assert len(client.calls) == 1
    assert client.calls[0].messages[0]["content"][0]["text"] == "Transcribe."
    texts = [document.text[s.start : s.end] for s in document.pages]
    assert texts[0] == "Text layer of page 1."
    assert "| 800 | yes |" in texts[1]  # 400 pt at 144 dpi
    assert texts[2] == "Text layer of page 3."


async def test_only_pages_with_tables_go_to_the_model(tmp_path: Path) -> None:
    path = pdf_with_widths(tmp_path / "doc.pdf", [300, 400, 500], table_on=2)
    client = vision_client()
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
    extractor = VisionPdfExtractor(vision_client(fail=failure), "m", dpi=72)
    with pytest.raises(RateLimitError):
        await extract_folder(tmp_path, extractors=[extractor])


async def test_unreadable_pdf_is_reported_by_the_walk(tmp_path: Path) -> None:
    (tmp_path / "bad.pdf").write_bytes(b"nope")
    client = vision_client()
    documents, report = await extract_folder(tmp_path, extractors=[VisionPdfExtractor(client, "m")])
    assert documents == []
    assert [Path(e.path).name for e in report.errors] == ["bad.pdf"]
    assert isinstance(report.errors[0], ExtractionError)
    assert client.calls == []


def test_arguments_are_checked() -> None:
    client = vision_client()
    with pytest.raises(UsageError):
        VisionPdfExtractor(client, "m", dpi=10)
    with pytest.raises(UsageError):
        VisionPdfExtractor(client, "m", concurrency=0)
    with pytest.raises(UsageError):
        VisionPdfExtractor(client, "m", pages=[0])
    assert "s3cret" not in repr(VisionPdfExtractor(client, "m", password="s3cret"))

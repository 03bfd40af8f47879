"""PdfExtractor on real corpus PDFs and on generated ones (Chinese, encrypted, broken)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymupdf as _pymupdf
import pytest

from data_files import DRACULAE
from raftkit.errors import ExtractionError
from raftkit.extract import PdfExtractor
from raftkit.types import Document

# PyMuPDF's annotations are partial: use it as an untyped module
pymupdf: Any = _pymupdf

pytestmark = pytest.mark.anyio


async def extract(path: Path, extractor: PdfExtractor | None = None) -> Document:
    extractor = extractor or PdfExtractor()
    documents = [d async for d in extractor.extract(path, doc_id=path.name)]
    assert len(documents) == 1
    document = documents[0]
    assert isinstance(document, Document)
    return document


def chinese_pdf(path: Path) -> Path:
    doc = pymupdf.open()
    first = doc.new_page(width=300, height=400)
    first.insert_text(
        (36, 60),
        "蝙蝠是唯一能够真正飞行的哺乳动物。它们的前肢\n演化成了翼。",
        fontname="china-s",
        fontsize=11,
    )
    first.insert_text((36, 120), "中 文 字 间 有 空 格 。", fontname="china-s", fontsize=11)
    second = doc.new_page(width=300, height=400)
    second.insert_text((36, 60), "第二页：回声定位", fontname="china-s", fontsize=11)
    for row in range(3):
        for col in range(2):
            cell = pymupdf.Rect(36 + col * 100, 150 + row * 20, 136 + col * 100, 170 + row * 20)
            second.draw_rect(cell, color=(0, 0, 0), width=0.5)
            second.insert_text((cell.x0 + 3, cell.y1 - 5), f"r{row}c{col}", fontsize=9)
    doc.save(path)
    doc.close()
    return path


async def test_corpus_pdf_text_pages_and_metadata() -> None:
    document = await extract(DRACULAE)
    assert document.id == DRACULAE.name
    assert document.source == str(DRACULAE)
    assert "Desmodus draculae is an extinct species of vampire bat" in document.text
    # the ﬁ ligature of the PDF's font is spelt out
    assert "Scientific classification" in document.text
    assert "\ufb01" not in document.text
    assert document.metadata["title"] == "Desmodus draculae - Wikipedia"
    assert document.metadata["page_count"] == "2"
    assert document.metadata["format"] == "pdf"
    assert [span.page for span in document.pages] == [1, 2]
    first, second = document.pages
    assert first.start == 0
    assert first.end < second.start
    assert second.end == len(document.text)
    # each span holds exactly that page's text, as pymupdf reads it
    with pymupdf.open(DRACULAE) as pdf:
        last_words = pdf[1].get_text().split()[-3:]
    assert document.text[second.start : second.end].split()[-3:] == last_words
    assert document.page_of(second.start + 10) == 2


async def test_line_end_hyphen_of_a_compound_word_is_kept() -> None:
    document = await extract(DRACULAE)
    # the PDF breaks "post-\ncranial": "postcranial" appears nowhere, so the hyphen stays
    assert "post-cranial" in document.text


def test_tables_become_markdown_in_place_of_their_text(tmp_path: Path) -> None:
    # pymupdf's layout model is slow: one page, one event loop (extract_sync is the same work)
    path = tmp_path / "draculae-page-1.pdf"
    with pymupdf.open(DRACULAE) as source, pymupdf.open() as single:
        single.insert_pdf(source, from_page=0, to_page=0)
        single.save(path)
    plain = PdfExtractor().extract_sync(path, doc_id="p1")
    tabled = PdfExtractor(tables=True).extract_sync(path, doc_id="p1")
    assert "|Domain:|Eukaryota|" in tabled.text
    assert "|---|---|" in tabled.text
    # the table's cells are not also left as loose lines
    assert "\nDomain:\nEukaryota\n" in plain.text
    assert "\nDomain:\nEukaryota\n" not in tabled.text
    # the body text is still there, after the infobox
    body = "Desmodus draculae is an extinct species"
    assert tabled.text.index("|Domain:|") < tabled.text.index(body)


async def test_chinese_pdf_lines_are_joined_and_spaces_removed(tmp_path: Path) -> None:
    document = await extract(chinese_pdf(tmp_path / "中文.pdf"))
    assert "哺乳动物。它们的前肢演化成了翼。" in document.text
    assert "中文字间有空格。" in document.text
    assert len(document.pages) == 2
    page_two = document.pages[1]
    assert document.text[page_two.start : page_two.end].startswith("第二页：回声定位")
    # NFC keeps the full-width colon of Chinese text
    assert "：" in document.text


async def test_chinese_pdf_table_as_markdown(tmp_path: Path) -> None:
    extractor = PdfExtractor(tables=True, table_layout=False)
    document = await extract(chinese_pdf(tmp_path / "zh.pdf"), extractor)
    assert "|r0c0|r0c1|" in document.text
    assert "|r2c0|r2c1|" in document.text
    assert "\nr1c0\n" not in document.text


async def test_nfkc_normalization_is_an_option(tmp_path: Path) -> None:
    document = await extract(chinese_pdf(tmp_path / "zh.pdf"), PdfExtractor(normalization="NFKC"))
    assert "第二页:回声定位" in document.text


async def test_encrypted_pdf_needs_the_password(tmp_path: Path) -> None:
    path = tmp_path / "secret.pdf"
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Classified bat census.")
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="own3r", user_pw="us3r")
    doc.close()
    with pytest.raises(ExtractionError) as caught:
        await extract(path)
    assert caught.value.path == str(path)
    assert "password" in caught.value.reason
    with pytest.raises(ExtractionError, match="does not open"):
        await extract(path, PdfExtractor(password="wrong-guess"))
    extractor = PdfExtractor(password="us3r")
    assert "us3r" not in repr(extractor)
    document = await extract(path, extractor)
    assert "Classified bat census." in document.text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"this is not a PDF at all", "not a readable PDF"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 8, "PDF"),
    ],
    ids=["zero-byte", "not-pdf", "corrupt"],
)
async def test_broken_pdfs_raise_extraction_error_naming_the_file(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    with pytest.raises(ExtractionError) as caught:
        await extract(path)
    assert caught.value.path == str(path)
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


async def test_truncated_pdf_is_an_error_or_what_survives(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pdf"
    path.write_bytes(DRACULAE.read_bytes()[:2000])
    with pytest.raises(ExtractionError) as caught:
        await extract(path)
    assert caught.value.path == str(path)


async def test_image_only_pdf_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    doc = pymupdf.open()
    page = doc.new_page(width=200, height=200)
    pixmap = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 40, 40), False)
    pixmap.set_rect(pixmap.irect, (200, 30, 30))
    page.insert_image(pymupdf.Rect(20, 20, 180, 180), pixmap=pixmap)
    doc.save(path)
    doc.close()
    with pytest.raises(ExtractionError, match="no extractable text"):
        await extract(path)


async def test_sorted_reading_order_is_an_option() -> None:
    default = await extract(DRACULAE)
    by_position = await extract(DRACULAE, PdfExtractor(sort=True))
    assert default.text != by_position.text
    body = "Desmodus draculae is an extinct species of vampire bat"
    assert body in default.text
    assert body in by_position.text

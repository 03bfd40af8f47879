"""Text, Markdown, HTML, JSON and JSONL extractors, and the text clean-up they share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftkit.errors import ExtractionError
from raftkit.extract import (
    Extractor,
    HtmlExtractor,
    JsonExtractor,
    JsonlExtractor,
    TextExtractor,
    clean_text,
)
from raftkit.extract.cleanup import join_cjk_breaks, normalize_unicode
from raftkit.types import Document

pytestmark = pytest.mark.anyio


async def collect(extractor: Extractor, path: Path) -> list[Document | ExtractionError]:
    return [item async for item in extractor.extract(path, doc_id=path.name)]


async def only_document(extractor: Extractor, path: Path) -> Document:
    items = await collect(extractor, path)
    assert len(items) == 1
    assert isinstance(items[0], Document)
    return items[0]


# ---------------------------------------------------------------- clean-up


def test_clean_text_joins_syllable_hyphens_known_elsewhere_in_the_document() -> None:
    text = "An example of bats.\nThis exam-\nple is split, but well-\nknown stays."
    cleaned = clean_text(text)
    assert "This example is split" in cleaned
    assert "well-known stays" in cleaned


def test_clean_text_removes_breaks_and_spaces_between_cjk_characters() -> None:
    text = "蝙蝠是唯一能够\n真正飞行的 哺乳动物。\n它们 的前肢\u3000演化成了翼。"
    assert clean_text(text) == "蝙蝠是唯一能够真正飞行的哺乳动物。\n它们的前肢演化成了翼。"


def test_clean_text_keeps_korean_word_spaces_and_japanese_joins() -> None:
    assert clean_text("박쥐는 날 수 있는\n포유류이다.") == "박쥐는 날 수 있는 포유류이다."
    assert clean_text("コウモリは\n空を飛ぶ。") == "コウモリは空を飛ぶ。"
    # a line break between Latin and CJK text is not removed
    assert clean_text("RAFT\n训练") == "RAFT\n训练"


def test_normalization_forms() -> None:
    text = "Scienti\ufb01c\u00a0name: e\u0301, ３ｍ²！"
    nfc = normalize_unicode(text, "NFC")
    assert nfc == "Scientific name: \u00e9, ３ｍ²！"
    assert normalize_unicode(text, "NFKC") == "Scientific name: \u00e9, 3m2!"
    assert normalize_unicode("soft\u00adhy\u00ad\nphen\u200b", None) == "softhyphen"


def test_join_cjk_breaks_keeps_paragraph_after_sentence_end() -> None:
    assert join_cjk_breaks("第一句。\n第二句") == "第一句。\n第二句"
    assert join_cjk_breaks("第一\n句") == "第一句"


# ---------------------------------------------------------------- text and Markdown


@pytest.mark.parametrize(
    ("encoded", "label"),
    [
        ("Bats fly. 蝙蝠会飞。".encode(), "utf-8"),
        (b"\xef\xbb\xbf" + "Bats fly. 蝙蝠会飞。".encode(), "utf-8-sig"),
        ("\ufeffBats fly. 蝙蝠会飞。".encode("utf-16-le"), "utf-16-le"),
        ("\ufeffBats fly. 蝙蝠会飞。".encode("utf-16-be"), "utf-16-be"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_text_encodings(tmp_path: Path, encoded: bytes, label: str) -> None:
    path = tmp_path / f"{label}.txt"
    path.write_bytes(encoded)
    document = await only_document(TextExtractor(), path)
    assert document.text == "Bats fly. 蝙蝠会飞。"
    assert document.metadata == {"format": "text", "title": label}
    assert document.pages == []


async def test_non_utf8_text_names_file_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Fledermäuse fliegen".encode("latin-1"))
    with pytest.raises(ExtractionError) as caught:
        await collect(TextExtractor(), path)
    assert caught.value.path == str(path)
    assert "byte offset 7" in caught.value.reason
    document = await only_document(TextExtractor(encoding="latin-1"), path)
    assert document.text == "Fledermäuse fliegen"


async def test_gb18030_with_explicit_encoding(tmp_path: Path) -> None:
    path = tmp_path / "gbk.txt"
    path.write_bytes("蝙蝠会飞。".encode("gb18030"))
    with pytest.raises(ExtractionError, match="byte offset 0"):
        await collect(TextExtractor(), path)
    document = await only_document(TextExtractor(encoding="gb18030"), path)
    assert document.text == "蝙蝠会飞。"


async def test_empty_text_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"  \n\n")
    with pytest.raises(ExtractionError, match="no text"):
        await collect(TextExtractor(), path)


async def test_markdown_title_and_structure(tmp_path: Path) -> None:
    path = tmp_path / "bats.md"
    source = "# Bats\r\n\r\nBats are mammals.\r\n\r\n## Flight\r\n\r\n- wings\r\n"
    source += "\r\n```\r\nspan  =  2.0   # metres\r\n```\r\n"
    path.write_text(source)
    document = await only_document(TextExtractor(), path)
    assert document.metadata == {"format": "markdown", "title": "Bats"}
    expected = "# Bats\n\nBats are mammals.\n\n## Flight\n\n- wings\n\n"
    # aligned code keeps its spaces: only PDF text has runs of spaces collapsed
    assert document.text == expected + "```\nspan  =  2.0   # metres\n```"


# ---------------------------------------------------------------- HTML

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Bat – Wiki</title>
<style>body { color: red }</style><script>var nav = "<p>no</p>";</script></head>
<body>
<header><a href="/">Home</a> Site header</header>
<nav><ul><li>Main page</li><li>Contents</li></ul></nav>
<div role="navigation">Jump to search</div>
<main>
<h1>Bat</h1>
<p>Bats are   mammals of the order <b>Chiroptera</b>.</p>
<h2>Echolocation</h2>
<p>蝙蝠利用回声定位。</p>
<ul><li>Microbats</li><li>Megabats</li></ul>
<div hidden>hidden text</div>
<table><tr><th>Order</th><th>Chiroptera</th></tr></table>
</main>
<aside>Related articles</aside>
<footer>Footer text &copy; 2024</footer>
</body></html>
"""


async def test_html_main_text_without_navigation(tmp_path: Path) -> None:
    path = tmp_path / "bat.html"
    path.write_text(PAGE, encoding="utf-8")
    document = await only_document(HtmlExtractor(), path)
    assert document.metadata == {"format": "html", "title": "Bat – Wiki"}
    text = document.text
    assert text.startswith("# Bat\n\nBats are mammals of the order Chiroptera.")
    assert "## Echolocation\n\n蝙蝠利用回声定位。" in text
    assert "- Microbats\n- Megabats" in text
    assert "Order" in text
    assert "Chiroptera" in text
    for furniture in ("Home", "Main page", "Jump to search", "Related", "Footer", "hidden", "no<"):
        assert furniture not in text
    assert "color" not in text
    assert "var nav" not in text


async def test_html_without_main_keeps_body_and_reads_meta_charset(tmp_path: Path) -> None:
    path = tmp_path / "page.htm"
    html = '<html><head><meta charset="windows-1252"></head><body><nav>menu</nav>'
    html += "<p>Fledermäuse &amp; Flughunde</p></body></html>"
    path.write_bytes(html.encode("windows-1252"))
    document = await only_document(HtmlExtractor(), path)
    assert document.text == "Fledermäuse & Flughunde"
    assert document.metadata["title"] == "page"


async def test_html_with_only_furniture_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nav.html"
    path.write_text("<html><body><nav>menu</nav><script>x()</script></body></html>")
    with pytest.raises(ExtractionError, match="no text"):
        await collect(HtmlExtractor(), path)


# ---------------------------------------------------------------- JSON and JSONL


async def test_jsonl_records_with_dotted_fields_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "articles.jsonl"
    lines = [
        json.dumps({"data": {"text": "Bats fly."}, "meta": {"title": "Bat"}}),
        "",
        "{not json",
        json.dumps({"data": {"text": "蝙蝠会飞。"}, "meta": {"title": "蝙蝠"}}, ensure_ascii=False),
        json.dumps({"data": {}}),
        json.dumps({"data": {"text": 42}}),
    ]
    content = ("\n".join(lines) + "\n").encode()
    content += b'{"data": {"text": "caf\xe9"}}\n'
    path.write_bytes(content)
    extractor = JsonlExtractor(text_field="data.text", title_field="meta.title")
    items = await collect(extractor, path)
    documents = [i for i in items if isinstance(i, Document)]
    errors = [i for i in items if isinstance(i, ExtractionError)]
    assert [d.id for d in documents] == ["articles.jsonl#1", "articles.jsonl#4"]
    assert [d.text for d in documents] == ["Bats fly.", "蝙蝠会飞。"]
    assert documents[1].metadata == {"format": "json", "record": "4", "title": "蝙蝠"}
    assert [e.path for e in errors] == [str(path)] * 4
    reasons = [e.reason for e in errors]
    assert reasons[0].startswith("line 3: invalid JSON")
    assert reasons[1] == "line 5: no field 'data.text'"
    assert reasons[2] == "line 6: field 'data.text' is int, not text"
    bad_offset = content.rindex(b"\xe9")
    assert reasons[3] == f"line 7: not valid UTF-8 at byte offset {bad_offset}"


async def test_jsonl_id_field_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "docs.ndjson"
    rows = [{"id": "a1", "body": "First."}, {"id": 7, "body": "Second.", "lang": "en"}]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(r) for r in rows).encode())
    extractor = JsonlExtractor(text_field="body", id_field="id", metadata_fields=["lang"])
    items = await collect(extractor, path)
    assert [(d.id, d.text) for d in items if isinstance(d, Document)] == [
        ("docs.ndjson#a1", "First."),
        ("docs.ndjson#7", "Second."),
    ]
    second = items[1]
    assert isinstance(second, Document)
    assert second.metadata["lang"] == "en"


async def test_empty_jsonl_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(ExtractionError, match="no records"):
        await collect(JsonlExtractor(), path)


async def test_json_list_nested_records_and_single_object(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"text": "One."}, {"text": ""}, {"text": "Three."}]))
    items = await collect(JsonExtractor(), listed)
    assert [i.id if isinstance(i, Document) else i.reason for i in items] == [
        "list.json#0",
        "record 1: field 'text' is empty",
        "list.json#2",
    ]
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"data": {"items": [{"doc": {"text": "Nested."}}]}}))
    extractor = JsonExtractor(records_field="data.items", text_field="doc.text")
    document = await only_document(extractor, nested)
    assert (document.id, document.text) == ("nested.json#0", "Nested.")
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"paragraphs": ["Zero.", "First paragraph."]}))
    document = await only_document(JsonExtractor(text_field="paragraphs.1"), single)
    assert document.text == "First paragraph."


async def test_broken_json_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[{"text": "a"},\n  {"text": ]')
    with pytest.raises(ExtractionError, match="invalid JSON at line 2") as caught:
        await collect(JsonExtractor(), broken)
    assert caught.value.path == str(broken)
    scalar = tmp_path / "scalar.json"
    scalar.write_text("42")
    with pytest.raises(ExtractionError, match="expected a list of records, got int"):
        await collect(JsonExtractor(), scalar)
    utf16 = tmp_path / "utf16.json"
    utf16.write_bytes(json.dumps([{"text": "蝙蝠"}], ensure_ascii=False).encode("utf-16"))
    document = await only_document(JsonExtractor(), utf16)
    assert document.text == "蝙蝠"

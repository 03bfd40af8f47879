"""HTML pages: the main text, without scripts, styles and page furniture.

Built on the standard library's :class:`html.parser.HTMLParser` (no extra dependency). What is
dropped: ``script``, ``style``, ``template``, ``noscript``, ``svg``, ``nav``, ``header``,
``footer``, ``aside``, ``form``, ``iframe``, elements with the ``hidden`` attribute and elements
with the ARIA roles ``navigation``, ``banner``, ``contentinfo`` and ``complementary``. When the
page has a ``<main>`` element (or, failing that, ``<article>`` elements), only their text is
kept. Headings come out as Markdown headings (``## Title``) and list items as ``- item``, so
:class:`~raftkit.chunking.MarkdownChunker` can split an HTML page by its sections.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Collection
from html.parser import HTMLParser
from pathlib import Path

from raftkit.errors import ExtractionError
from raftkit.extract._files import read_bytes
from raftkit.extract.cleanup import Normalization, clean_text
from raftkit.extract.encoding import decode_bytes
from raftkit.types import Document

__all__ = ["HtmlExtractor", "html_to_text"]

_SKIP = frozenset(
    {
        "script",
        "style",
        "template",
        "noscript",
        "svg",
        "nav",
        "header",
        "footer",
        "aside",
        "form",
        "iframe",
        "button",
        "select",
        "object",
        "canvas",
    }
)
_SKIP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_BLOCK = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "blockquote",
        "pre",
        "table",
        "tr",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "figure",
        "figcaption",
        "address",
        "hr",
        "details",
        "summary",
        "caption",
        "tbody",
        "thead",
        "tfoot",
        "body",
        "html",
        "center",
        "fieldset",
        "legend",
    }
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
        "param",
    }
)
_SPACES = re.compile(r"[ \t\r\n\f]+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([-\w.:]+)""", re.IGNORECASE)


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self._in_title = False
        self._skip_stack: list[str] = []  # open elements whose content is dropped
        self._pre = 0
        # the whole body, and the parts inside <main> and <article>: the narrowest found wins
        self.everything: list[str] = []
        self.main: list[str] = []
        self.article: list[str] = []
        self._depth = {"main": 0, "article": 0}

    def _emit(self, text: str) -> None:
        self.everything.append(text)
        if self._depth["main"]:
            self.main.append(text)
        if self._depth["article"]:
            self.article.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_stack:
            if (tag == self._skip_stack[-1] or tag in _SKIP) and tag not in _VOID:
                self._skip_stack.append(tag)
            return
        names = dict(attrs)
        if tag == "title":
            self._in_title = True
            return
        if (
            tag in _SKIP
            or "hidden" in names
            or names.get("role") in _SKIP_ROLES
            or (names.get("aria-hidden") == "true")
        ):
            if tag not in _VOID:
                self._skip_stack.append(tag)
            return
        if tag in self._depth:
            self._depth[tag] += 1
        if tag in _HEADINGS:
            self._emit("\n\n" + "#" * _HEADINGS[tag] + " ")
        elif tag == "li":
            self._emit("\n- ")
        elif tag == "br":
            self._emit("\n")
        elif tag in ("td", "th"):
            self._emit(" ")
        elif tag == "tr":
            self._emit("\n|")
        elif tag == "pre":
            self._pre += 1
            self._emit("\n\n")
        elif tag in _BLOCK:
            self._emit("\n\n" if tag in ("p", "table", "blockquote") else "\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skip_stack:
            if tag == self._skip_stack[-1]:
                self._skip_stack.pop()
            return
        if tag == "title":
            self._in_title = False
        elif tag in _HEADINGS:
            self._emit("\n\n")
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self._emit("\n\n")
        elif tag in ("td", "th"):
            self._emit(" |")
        elif tag in _BLOCK and tag != "tr":
            self._emit("\n")
        if tag in self._depth:
            self._depth[tag] = max(0, self._depth[tag] - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip_stack:
            self._emit(data if self._pre else _SPACES.sub(" ", data))


def _tidy_lines(text: str) -> str:
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> tuple[str, str]:
    """``(title, main text)`` of an HTML document."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    title = _SPACES.sub(" ", parser.title).strip()
    for part in (parser.main, parser.article, parser.everything):
        text = _tidy_lines("".join(part))
        if text:
            return title, text
    return title, ""


def _charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii").lower() if match else None


class HtmlExtractor:
    """Reads ``.html``/``.htm`` files: the main text, in Markdown-ish form, and the title.

    The encoding comes from ``encoding``, else a byte-order mark, else a ``<meta charset>``,
    else UTF-8 (strict: bad bytes raise :class:`ExtractionError` with their offset).
    """

    def __init__(
        self,
        *,
        encoding: str | None = None,
        normalization: Normalization = "NFC",
        suffixes: Collection[str] = (".html", ".htm", ".xhtml"),
    ) -> None:
        self.encoding = encoding
        self.normalization: Normalization = normalization
        self.suffixes = frozenset(s.lower() for s in suffixes)

    def __repr__(self) -> str:
        return f"HtmlExtractor(encoding={self.encoding!r})"

    def supports(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes

    async def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document]:
        data = await read_bytes(path)
        encoding = self.encoding
        if encoding is None and not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
            encoding = _charset(data)
        html = decode_bytes(data, path=str(path), encoding=encoding)
        title, text = html_to_text(html)
        text = clean_text(text, normalization=self.normalization, collapse_spaces=False)
        if not text:
            raise ExtractionError(str(path), "no text in the page's main content")
        metadata = {"format": "html", "title": title or path.stem}
        yield Document(id=doc_id, source=str(path), text=text, metadata=metadata)

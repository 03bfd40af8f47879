"""Heading-aware chunks for Markdown (and for HTML, which the extractor turns into Markdown)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from raftkit.chunking._build import make_chunks
from raftkit.chunking.token import _check, token_windows
from raftkit.llm.tokens import TokenCounter, estimate_tokens
from raftkit.types import Chunk, Document

__all__ = ["HEADING_SEPARATOR", "MarkdownChunker", "Section", "markdown_sections"]

#: Joins the headings of a chunk's path in ``Chunk.metadata["headings"]``.
HEADING_SEPARATOR = " > "

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```+|~~~+)")


@dataclass(frozen=True)
class Section:
    """``text[start:end]`` is one section; ``path`` holds its heading and its parents'."""

    start: int
    end: int
    path: tuple[str, ...]


def markdown_sections(text: str) -> list[Section]:
    """The sections of a Markdown text, split at ATX headings (``#`` … ``######``).

    Headings inside fenced code blocks do not count. A heading with no text under it before
    the next heading is joined to the section that follows (``# A`` directly over ``## B``
    becomes one section with path ``(A, B)``). Text before the first heading has path ``()``.
    """
    cuts: list[tuple[int, int, str]] = []  # (offset, level, title)
    fence: str | None = None
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if match := _FENCE.match(stripped):
            marker = match.group(1)[0] * 3
            if fence is None:
                fence = marker
            elif marker == fence:
                fence = None
        elif fence is None and (match := _HEADING.match(stripped)):
            cuts.append((offset, len(match.group(1)), (match.group(2) or "").strip()))
        offset += len(line)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    bounds = [(0, 0, "")] if not cuts or cuts[0][0] > 0 else []
    bounds += cuts
    pending_start: int | None = None
    for n, (start, level, title) in enumerate(bounds):
        end = bounds[n + 1][0] if n + 1 < len(bounds) else len(text)
        if level:
            stack = [(lv, t) for lv, t in stack if lv < level]
            stack.append((level, title))
        body = text[start:end]
        if level:
            body = body.split("\n", 1)[1] if "\n" in body else ""
        if level and not body.strip() and n + 1 < len(bounds):
            pending_start = start if pending_start is None else pending_start
            continue
        if not text[start:end].strip():
            continue
        first = start if pending_start is None else pending_start
        sections.append(Section(first, end, tuple(t for _, t in stack)))
        pending_start = None
    return sections


class MarkdownChunker:
    """One chunk per Markdown section, token windows for sections over ``size`` tokens.

    Each chunk's metadata has ``headings`` (the heading path joined by
    :data:`HEADING_SEPARATOR`) and ``heading`` (the innermost heading), both empty before
    the first heading. Non-Markdown text comes out as plain token windows.
    """

    def __init__(
        self, size: int = 512, overlap: int = 64, counter: TokenCounter = estimate_tokens
    ) -> None:
        _check(size, overlap)
        self.size = size
        self.overlap = overlap
        self.counter = counter

    def __repr__(self) -> str:
        return f"MarkdownChunker(size={self.size}, overlap={self.overlap})"

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        spans: list[tuple[int, int]] = []
        metadata: list[dict[str, str]] = []
        for section in markdown_sections(text):
            windows = token_windows(
                text,
                section.start,
                section.end,
                size=self.size,
                overlap=self.overlap,
                counter=self.counter,
            )
            headings = HEADING_SEPARATOR.join(section.path)
            heading = section.path[-1] if section.path else ""
            for window in windows:
                spans.append(window)
                metadata.append({"chunker": "markdown", "headings": headings, "heading": heading})
        return make_chunks(document, spans, metadata)

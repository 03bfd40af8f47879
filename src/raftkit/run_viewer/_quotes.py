"""Where a verified quote lies in its oracle's own text, so the page can highlight it.

Verification (:mod:`raftkit.synth.verify`) answers yes or no after normalising both sides
(NFKC width, unified quote marks and dashes, no invisible characters, no whitespace next to CJK
characters, other whitespace collapsed): a quote matches even when the PDF text breaks a line in
its middle or scatters spaces between Chinese characters. To highlight it, the page needs the
span in the original text, so this module normalises the oracle the same way while remembering
which original character each normalised one came from. It is display-only: a quote it cannot
place is listed as verified but not highlighted, never treated as an error.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["locate_quotes", "merge_spans"]

# Han, kana, Hangul and CJK punctuation: the characters next to which whitespace is layout.
_CJK = re.compile(
    "[\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3200-\u33ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)
_INVISIBLE = frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff")
_QUOTE_MARKS = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212", "-"),
    }
)
# After NFKC an ellipsis "…" is "...": a quote may elide text between pieces.
_ELLIPSIS = re.compile(r"\.{3,}")
# Quotation marks a model wraps around a quote, inside the quote markers.
_WRAPPING = {'"': '"', "'": "'", "「": "」", "『": "』", "《": "》"}


def _normalise(text: str) -> tuple[str, list[int]]:
    """``text`` in matching form, and for each of its characters the index it came from."""
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch in _INVISIBLE:
            continue
        for c in unicodedata.normalize("NFKC", ch).translate(_QUOTE_MARKS):
            chars.append(c)
            origin.append(i)
    out: list[str] = []
    where: list[int] = []
    i, n = 0, len(chars)
    while i < n:
        if not chars[i].isspace():
            out.append(chars[i])
            where.append(origin[i])
            i += 1
            continue
        j = i
        while j < n and chars[j].isspace():
            j += 1
        # a run of whitespace: dropped at either end or next to CJK, else one space
        if out and j < n and not _CJK.match(out[-1]) and not _CJK.match(chars[j]):
            out.append(" ")
            where.append(origin[i])
        i = j
    return "".join(out), where


def _unwrap(quote: str) -> str:
    while len(quote) >= 2 and _WRAPPING.get(quote[0]) == quote[-1]:
        quote = quote[1:-1].strip()
    return quote


def _find(quote: str, text: str) -> list[tuple[int, int]]:
    """Spans of ``quote`` in ``text`` (both normalised): whole, or its elided pieces in order."""
    if not quote:
        return []
    at = text.find(quote)
    if at >= 0:
        return [(at, at + len(quote))]
    pieces = [p.strip() for p in _ELLIPSIS.split(quote)]
    pieces = [p for p in pieces if p]
    if len(pieces) < 2:
        return []
    spans: list[tuple[int, int]] = []
    at = 0
    for piece in pieces:
        found = text.find(piece, at)
        if found < 0:
            return []
        spans.append((found, found + len(piece)))
        at = found + len(piece)
    return spans


def locate_quotes(quotes: list[str], text: str) -> tuple[list[tuple[int, int]], int]:
    """Spans of ``text`` (``text[start:end]``) that the quotes cover, and how many were found."""
    norm, where = _normalise(text)
    spans: list[tuple[int, int]] = []
    found = 0
    for quote in quotes:
        pieces = _find(_unwrap(_normalise(quote)[0]), norm)
        if pieces:
            found += 1
            spans.extend((where[a], where[b - 1] + 1) for a, b in pieces)
    return merge_spans(spans), found


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping spans covering the same characters."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged

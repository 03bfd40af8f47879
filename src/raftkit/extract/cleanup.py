"""Clean-up of extracted text that does not assume English.

PDF text layers carry artefacts of typesetting rather than of writing: ligature glyphs (``ﬁ``),
hyphens that only split a word across two lines, and — in Chinese and Japanese — line breaks
and stray spaces between characters that were never separated in the source. These functions
undo them without touching what the author wrote.

Unicode normalisation defaults to NFC, not NFKC: NFKC would also turn full-width CJK
punctuation (``，！？``) into ASCII, superscripts (``m²``) into digits and fractions into
slashes, which changes the text a quote must later be found in. The few compatibility
characters that only typesetting introduces (Latin ligatures, no-break and thin spaces, soft
hyphens, zero-width characters) are replaced explicitly instead. Pass ``"NFKC"`` for the full
folding when width differences are not wanted at all.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

__all__ = [
    "Normalization",
    "clean_text",
    "clean_texts",
    "join_cjk_breaks",
    "normalize_unicode",
]

#: Unicode normalisation form applied to extracted text; ``None`` keeps the text as it came.
Normalization = Literal["NFC", "NFKC"] | None

# Chinese/Japanese characters and their punctuation: written without spaces between them.
# Hangul is left out on purpose: Korean separates words with spaces.
_CJ = (
    "\u2e80-\u2fdf\u3001-\u303f\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff01-\uff60"
)
_SENTENCE_END_CJ = "。！？；」』）】"

_TYPESET = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
    # typographic spaces become plain spaces; the ideographic space (U+3000) is kept
    "\u00a0": " ",
    "\u2007": " ",
    "\u2009": " ",
    "\u200a": " ",
    "\u202f": " ",
    "\u205f": " ",
    "\u2002": " ",
    "\u2003": " ",
    "\u2004": " ",
    "\u2005": " ",
    "\u2006": " ",
    "\u2008": " ",
    # invisible characters that split words for search
    "\u200b": "",
    "\u2060": "",
    "\ufeff": "",
    "\r": "",
    "\x0c": "\n",
    "\x0b": "\n",
    "\x00": "",
}
# one C-level scan finds the (rare) characters to replace; str.translate with a dict is slower
_TYPESET_CHARS = re.compile("[" + "".join(_TYPESET) + "]")

# A soft hyphen marks a possible break: at a line end it joins the word, elsewhere it vanishes.
_SOFT_HYPHEN_BREAK = re.compile("\u00ad[ \\t]*\\n[ \\t]*")
_CONTROL = re.compile("[\u0001-\u0008\u000e-\u001f\u007f\u00ad]")
_MANY_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_INNER_SPACES = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")

# whitespace (at most one line break) between two Chinese/Japanese characters; the pattern
# starts with the character rather than a look-behind, which is several times faster
_CJ_GAP = re.compile(rf"([{_CJ}])(?:[ \t\u3000]+\n?[ \t\u3000]*|\n[ \t\u3000]*)(?=[{_CJ}])")
# a Hangul line end followed by more Hangul: the break stood where a space was
_HANGUL_BREAK = re.compile(r"([\uac00-\ud7af])[ \t]*\n[ \t]*(?=[\uac00-\ud7af])")

# a hyphen at a line end before a lower-case letter: "exam-\nple"; the pattern starts with the
# hyphen (no look-behind), so the scan is about as fast as a search for "-"
_HYPHEN_BREAK = re.compile(r"-[ \t]*\n[ \t]*(?=[^\W\d_A-Z])")
_WORD = re.compile(r"[^\W\d_]+")
_WORD_TAIL = re.compile(r"[^\W\d_]+\Z")


def normalize_unicode(text: str, form: Normalization = "NFC") -> str:
    """Normalise ``text`` and replace typesetting-only characters (ligatures, odd spaces)."""
    if form is not None:
        text = unicodedata.normalize(form, text)
    text = _TYPESET_CHARS.sub(lambda m: _TYPESET[m.group()], text)
    text = _SOFT_HYPHEN_BREAK.sub("", text)
    return _CONTROL.sub("", text)


def join_cjk_breaks(text: str) -> str:
    """Remove line breaks and spaces between Chinese/Japanese characters.

    A line break right after a sentence end (``。！？``) is kept, so paragraphs stay apart.
    """

    def gap(match: re.Match[str]) -> str:
        char = match.group(1)
        if char in _SENTENCE_END_CJ and "\n" in match.group():
            return char + "\n"
        return char

    return _HANGUL_BREAK.sub(r"\1 ", _CJ_GAP.sub(gap, text))


def _hyphen_breaks(text: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, left word, right word)`` of each hyphenated line break in ``text``."""
    found: list[tuple[int, int, str, str]] = []
    for match in _HYPHEN_BREAK.finditer(text):
        if not match.start() or not text[match.start() - 1].isalpha():
            continue
        left = _WORD_TAIL.search(text, max(0, match.start() - 64), match.start())
        right = _WORD.match(text, match.end())
        if left is not None and right is not None:
            found.append((match.start(), match.end(), left.group(), right.group()))
    return found


def _words_present(candidates: set[str], lowered: str) -> set[str]:
    """The candidates that occur in ``lowered`` as whole words."""
    if len(candidates) > 64:  # many breaks (a typeset book): one pass over all words
        return candidates & set(_WORD.findall(lowered))
    # few breaks: a substring test per candidate is much cheaper than listing every word
    return {
        word
        for word in candidates
        if word in lowered
        and re.search(rf"(?<![^\W\d_]){re.escape(word)}(?![^\W\d_])", lowered) is not None
    }


def _join_hyphens(text: str, breaks: list[tuple[int, int, str, str]], words: set[str]) -> str:
    # A line-end hyphen is either a syllable break ("exam-ple") or a real compound
    # ("post-cranial"). Without a dictionary, the document itself decides: the hyphen goes
    # only if the joined word occurs elsewhere in it; otherwise the hyphen stays and only the
    # line break goes.
    parts: list[str] = []
    position = 0
    for start, end, left, right in breaks:
        parts.append(text[position:start])
        parts.append("" if (left + right).lower() in words else "-")
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _tidy(text: str, collapse_spaces: bool) -> str:
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    if collapse_spaces and ("  " in text or "\t" in text):
        text = _INNER_SPACES.sub(" ", text)
    return _MANY_BLANK_LINES.sub("\n\n", text).strip()


def clean_texts(
    texts: Sequence[str], *, normalization: Normalization = "NFC", collapse_spaces: bool = True
) -> list[str]:
    """Clean the pages (or parts) of one document together.

    Hyphenated line breaks are resolved against the words of all parts, so pass every page
    of a document in one call. ``collapse_spaces`` turns runs of spaces inside a line into
    one (right for PDF text layers; wrong for code and aligned text in Markdown).
    """
    normalized = [join_cjk_breaks(normalize_unicode(t, normalization)) for t in texts]
    breaks = [_hyphen_breaks(t) for t in normalized]
    if any(breaks):
        joined = {(left + right).lower() for found in breaks for _, _, left, right in found}
        words = _words_present(joined, "\n".join(normalized).lower())
        normalized = [
            _join_hyphens(t, found, words) if found else t
            for t, found in zip(normalized, breaks, strict=True)
        ]
    return [_tidy(t, collapse_spaces) for t in normalized]


def clean_text(
    text: str, *, normalization: Normalization = "NFC", collapse_spaces: bool = True
) -> str:
    """Clean one text: normalise Unicode, join broken words and CJK lines, tidy whitespace."""
    return clean_texts([text], normalization=normalization, collapse_spaces=collapse_spaces)[0]

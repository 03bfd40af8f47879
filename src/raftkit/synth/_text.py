"""Text normalisation shared by question dedup, BM25 and quote verification.

Three different notions of "the same text" live here, each for one purpose:

- :func:`match_form` — for checking that a quote occurs in the oracle. Case is kept (a quote is
  verbatim), but width, quote marks and the whitespace that PDF extraction scatters are not.
- :func:`dedup_key` — for telling two questions apart. Case, whitespace and punctuation (ASCII
  and CJK) are all dropped, so "什么是蝙蝠？" and "什么是蝙蝠?" are one question.
- :func:`bm25_tokens` — words for Latin-like scripts, character bigrams for CJK runs, which have
  no spaces to split on.

:func:`sentences` cuts a chunk into sentences for question critique and duplicate detection.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = [
    "bm25_tokens",
    "dedup_key",
    "match_form",
    "sentences",
    "stable_int",
    "tidy_spaces",
]

# Han, kana, Hangul and CJK punctuation (the punctuation that survives NFKC, such as 。、「」).
_CJK = (
    "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3200-\u33ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
)
# Letters only (no punctuation): the runs BM25 cuts into bigrams.
_CJK_LETTERS = (
    "\u2e80-\u2fff\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
)

# PDF text puts spaces and line breaks between CJK characters; they are layout, not content.
_SPACE_NEAR_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
# Zero-width characters and the soft hyphen are invisible in a PDF and never typed by a model.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)
_QUOTE_MARKS = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
    }
)
# A sentence ends at .!? (then closing quotes, brackets and citation marks like "[4]") before
# whitespace, right after 。！？； and their closing quotes, or at a blank line.
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?:\[\w{1,4}\])*\s+|[。！？；][」』”’）]*\s*|\n\s*\n")
_BM25_PIECE = re.compile(rf"[{_CJK_LETTERS}]+|[^\W_{_CJK_LETTERS}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"[{_CJK_LETTERS}]+")


def match_form(text: str) -> str:
    """``text`` as quote matching compares it: NFKC, unified quote marks and dashes, no
    invisible characters, no whitespace next to CJK characters, other whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_QUOTE_MARKS)
    text = _SPACE_NEAR_CJK.sub("", text)
    return _SPACES.sub(" ", text).strip()


def tidy_spaces(text: str) -> str:
    """``text`` with whitespace next to CJK characters removed and other runs made one space."""
    return _SPACES.sub(" ", _SPACE_NEAR_CJK.sub("", text)).strip()


def dedup_key(text: str) -> str:
    """A key equal for questions that differ only in width, case, whitespace or punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        ch
        for ch in text
        if not ch.isspace() and not unicodedata.category(ch).startswith(("P", "C"))
    )


def bm25_tokens(text: str) -> list[str]:
    """Lower-cased words, and overlapping character bigrams for each CJK run."""
    text = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for piece in _BM25_PIECE.findall(text):
        if _CJK_RUN.fullmatch(piece):
            if len(piece) == 1:
                tokens.append(piece)
            else:
                tokens.extend(piece[i : i + 2] for i in range(len(piece) - 1))
        else:
            tokens.append(piece)
    return tokens


def stable_int(text: str) -> int:
    """A 64-bit integer from ``text`` that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped, in order (abbreviations may cut one in two)."""
    found: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[start : match.end()].strip()
        if piece:
            found.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        found.append(tail)
    return found

"""Text helpers of the simulator: token estimate, sentences, word features (CJK aware).

Deliberately independent of ``raftkit.llm.tokens``: the simulator must not share code with the
client it checks.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

__all__ = [
    "content_words",
    "estimate_tokens",
    "is_cjk",
    "is_stopword",
    "normalise",
    "overlap",
    "pieces",
    "split_sentences",
    "stable_hash",
    "truncate_to_tokens",
    "word_set",
]

_CJK_RANGES = (
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x2FA1F),  # CJK extensions B-F
)

# one CJK character, or a run of other word characters, or one other visible character
_PIECE = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]"
    r"|[^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"
    r"|[^\w\s]"
)
# A sentence ends at .!? (then closing quotes or brackets and citation marks like "[4]") before
# whitespace, or right after 。！？ and their closing quotes.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?:\[\d+\])*\s+|[。！？][」』”’）]*\s*")
# words whose full stop does not end a sentence: initials and common abbreviations
_ABBREVIATION = re.compile(
    r"(?<![\w.])(?:[A-Z]|e\.g|i\.e|Mr|Mrs|Ms|Dr|St|Prof|vs|No|Fig|approx|ca)\.$"
)

_STOPWORD_TEXT = """
a an and are as at be been by for from has have in is it its of on or that the this to was were
which who what when where why how with does did do document documents text according question
answer
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def is_stopword(word: str) -> bool:
    return word.lower() in _STOPWORDS


def is_cjk(char: str) -> bool:
    code = ord(char)
    if code < 0x3040:  # most text: answered by one comparison
        return False
    return any(low <= code <= high for low, high in _CJK_RANGES)


@lru_cache(maxsize=8192)
def word_set(text: str) -> frozenset[str]:
    """The set of :func:`content_words` of ``text`` (cached: documents recur across requests)."""
    return frozenset(content_words(text))


def normalise(text: str) -> str:
    """Width-fold (NFKC), lower-case and collapse whitespace."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def estimate_tokens(text: str) -> int:
    """About one token per CJK character and per four characters of other words."""
    total = 0
    for piece in _PIECE.findall(text):
        total += 1 if len(piece) == 1 else math.ceil(len(piece) / 4)
    return total


def pieces(text: str) -> list[str]:
    """The pieces the estimate counts: CJK characters, word runs, other visible characters."""
    return list(_PIECE.findall(text))


def truncate_to_tokens(text: str, budget: int) -> str:
    """The longest prefix of ``text`` whose estimate fits ``budget`` tokens."""
    used = 0
    end = 0
    for match in _PIECE.finditer(text):
        piece = match.group()
        cost = 1 if len(piece) == 1 else math.ceil(len(piece) / 4)
        if used + cost > budget:
            break
        used += cost
        end = match.end()
    return text[:end]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, each a verbatim (stripped) substring of it."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        word_start = max(text.rfind(" ", 0, match.start()), text.rfind("\n", 0, match.start())) + 1
        if _ABBREVIATION.search(text[word_start : match.start() + 1]):
            continue
        piece = text[start : match.end()].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def content_words(text: str) -> list[str]:
    """Normalised features for overlap: words (minus stop words), CJK characters and bigrams."""
    features: list[str] = []
    previous_cjk = ""
    for piece in _PIECE.findall(normalise(text)):
        if len(piece) == 1 and is_cjk(piece):
            features.append(piece)
            if previous_cjk:
                features.append(previous_cjk + piece)
            previous_cjk = piece
            continue
        previous_cjk = ""
        if piece[0].isalnum() and piece not in _STOPWORDS:
            features.append(piece)
    return features


def stable_hash(*parts: object) -> int:
    """A hash that is the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def overlap(left: Iterable[str], right: Iterable[str]) -> int:
    return len(set(left) & set(right))

"""Which language a text is in, as far as question critique and refusals need to know.

No model and no dictionary: the script decides first (Hangul is Korean; kana is Japanese;
other Han is Chinese), then, for Latin script, counts of a few very common words of each
language raftkit writes refusal templates for. A text with none of them is English. This is
enough to write a refusal in the document's language and to catch a question in another
script than its chunk; telling French from Italian in a one-line question is left to the judge.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

__all__ = ["LANGUAGES", "Language", "Script", "cjk_share", "language_of", "script_of"]

Language = Literal["en", "zh", "ja", "ko", "de", "fr", "es", "pt", "it"]
#: The languages raftkit tells apart (and has refusal templates and text-reference patterns for).
LANGUAGES: tuple[Language, ...] = ("en", "zh", "ja", "ko", "de", "fr", "es", "pt", "it")
Script = Literal["cjk", "other", "none"]

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile("[\u3040-\u30ff]")
_HANGUL = re.compile("[\uac00-\ud7af\u1100-\u11ff]")
_WORD = re.compile(r"[^\W\d_]+")

# A few of each language's most frequent words, chosen to tell the languages apart.
_COMMON_TEXT = """
en: the and is are of to that was with for this which from by have has
de: der die das und ist nicht mit von den dem ein eine sich auch auf für
fr: le les et est des du une dans pour qui pas sur au aux sont avec ce
es: el los las y es del que en una por con para se son su como está
pt: os as é do da dos das em um uma para com não são no na ao
it: il lo gli è di del della che un una per con non sono nel alla
"""
_COMMON: dict[str, frozenset[str]] = {
    line.split(":")[0]: frozenset(line.split(":")[1].split())
    for line in _COMMON_TEXT.strip().splitlines()
}


def cjk_share(text: str) -> float:
    """The share of Han, kana and Hangul among the letters of ``text``."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    cjk = sum(1 for c in letters if _HAN.match(c) or _KANA.match(c) or _HANGUL.match(c))
    return cjk / len(letters)


def script_of(text: str) -> Script:
    """``cjk`` when at least 30 % of the letters are Han, kana or Hangul; ``none`` without
    letters; else ``other``."""
    if not any(c.isalpha() for c in text):
        return "none"
    return "cjk" if cjk_share(text) >= 0.3 else "other"


def language_of(text: str) -> Language:
    """The language of ``text`` among :data:`LANGUAGES` (English when nothing tells)."""
    if script_of(text) == "cjk":
        if _HANGUL.search(text):
            return "ko"
        if len(_KANA.findall(text)) >= max(1, len(_HAN.findall(text)) // 20):
            return "ja"
        return "zh"
    words = [w.casefold() for w in _WORD.findall(unicodedata.normalize("NFKC", text))]
    best: Language = "en"
    best_count = 0
    for language in ("en", "de", "fr", "es", "pt", "it"):
        count = sum(1 for w in words if w in _COMMON[language])
        if count > best_count:
            best, best_count = language, count
    return best

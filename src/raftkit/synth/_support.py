"""Substance of a quote and support of a final answer: the checks that stop lazy answers.

A one-word quote (``than``, ``and``, ``的``) occurs in every oracle and so "verifies" any
answer; a final answer can name a number or an entity that no quote backs. These checks are
plain word and character counts — no model, no language detection:

- *words* are runs of letters and digits in scripts written with spaces; *CJK letters* are
  Han, kana and Hangul characters, each counted alone;
- *content* is what is left without function words: a short English list, and for CJK a short
  list of particles and function characters (的, 是, の, は …). Other languages have no list,
  so all their words count as content;
- *numbers* are digit runs (``1,000`` = ``1000``, ``2.50`` = ``2.5``, ``30 %`` = ``30``) and
  the English number words zero to twenty and the tens; the oracle's Chinese numerals
  (``一千四百``) count for it too, so an answer may write them in digits.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from raftkit.synth._quotes import CITATION_MARKER

__all__ = [
    "AnswerSupport",
    "OracleVocabulary",
    "QuoteSubstance",
    "answer_support",
    "is_function_word",
    "oracle_vocabulary",
    "quote_substance",
]

_CJK_LETTERS = (
    "\u2e80-\u2fff\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
)
_WORDS = re.compile(rf"[^\W_{_CJK_LETTERS}]+")
_LETTER_WORDS = re.compile(rf"[^\W\d_{_CJK_LETTERS}]+")
_HYPHENATED = re.compile(rf"[^\W\d_{_CJK_LETTERS}]+(?:-[^\W\d_{_CJK_LETTERS}]+)+")
_CJK_RUN = re.compile(rf"[{_CJK_LETTERS}]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_CITATION = re.compile(CITATION_MARKER)
_CHINESE_NUMERAL = re.compile("[零〇一二两三四五六七八九十百千万亿]+")
# The text before a word that starts a sentence: nothing, or a stop after a word longer than
# one letter (an initial, as in "Omar J. Linares", ends no sentence), or a line break.
_SENTENCE_START = re.compile(r"(?:^|(?:\w\w|\W)[.!?:;]\s+|[。！？]|\n)\W*$")

_STOPWORD_TEXT = """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each either else ever every few
for from further had has have having he her here hers him his how however i if in into is it its
itself just may me might more most much must my neither no nor not of off on once only or other
our ours out over own same she should so some such than that the their theirs them then there
these they this those through thus to too under until up upon very was we were what when where
whether which while who whom whose why will with within without would yet you your yours
yes true false
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_NUMBER_WORD_TEXT = """
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen twenty
"""
_TENS_TEXT = "thirty forty fifty sixty seventy eighty ninety"
_NUMBER_WORDS = {word: str(value) for value, word in enumerate(_NUMBER_WORD_TEXT.split())}
_NUMBER_WORDS |= {word: str(30 + 10 * i) for i, word in enumerate(_TENS_TEXT.split())}
# Particles and function characters of Chinese and Japanese: a quote of these alone says nothing.
_CJK_FUNCTION = frozenset(
    "的了是在和与及或也都而之其这那个着把被从对为以于就并但所等"
    "のはがをにでとももやへかなたするいうれ"
)
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4}
_CN_DIGITS |= {"五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_BIG = {"万": 10**4, "亿": 10**8}


@lru_cache(maxsize=4096)
def _fold_word(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _key(word: str) -> str:
    """A crude stem: ``nocturnal``/``nocturnally``, ``bat``/``bats`` and ``Mexico``/``Mexican``
    share one. Loose on purpose — this check is after invented facts, not paraphrase."""
    if len(word) > 5:
        return word[:5]
    if len(word) > 3 and word.endswith("s"):
        return word[:-1]
    return word


def _canonical_number(text: str) -> str:
    if "," in text:
        text = text.replace(",", "") if _THOUSANDS.fullmatch(text) else text.replace(",", ".")
    whole, _, fraction = text.partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.replace(".", "").rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def _chinese_value(numeral: str) -> int:
    total = section = digit = 0
    for ch in numeral:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            section += (digit or 1) * _CN_UNITS[ch]
            digit = 0
        else:
            total += (section + digit) * _CN_BIG[ch]
            section = digit = 0
    return total + section + digit


def _numbers(text: str) -> set[str]:
    found = {_canonical_number(n) for n in _NUMBER.findall(text)}
    found |= {
        _NUMBER_WORDS[w] for w in map(_fold_word, _LETTER_WORDS.findall(text)) if w in _NUMBER_WORDS
    }
    return found


def is_function_word(word: str) -> bool:
    """Whether ``word`` (a word, or a CJK character or pair) says nothing on its own: an
    English function word, or CJK particles and function characters only."""
    if _CJK_RUN.fullmatch(word):
        return all(ch in _CJK_FUNCTION for ch in word)
    return _fold_word(word) in _STOPWORDS


@dataclass(frozen=True)
class QuoteSubstance:
    """How much a quote says: its words, letters and digits, CJK letters, and content."""

    words: int
    characters: int
    cjk_letters: int
    has_content: bool


def quote_substance(quote: str) -> QuoteSubstance:
    """Count ``quote`` (already in match form, ellipses and citation markers included)."""
    words = _WORDS.findall(quote)
    cjk = "".join(_CJK_RUN.findall(quote))
    content = any(
        (w.isdigit() or len(w) > 1) and _fold_word(w) not in _STOPWORDS for w in words
    ) or any(ch not in _CJK_FUNCTION for ch in cjk)
    return QuoteSubstance(
        words=len(words),
        characters=sum(len(w) for w in words),
        cjk_letters=len(cjk),
        has_content=content,
    )


class OracleVocabulary:
    """The oracle's stems and numbers, for checking a final answer.

    ``oracle`` is in match form, so that CJK pairs are found across the PDF's line breaks.
    """

    def __init__(self, oracle: str) -> None:
        self.text = oracle
        oracle = _CITATION.sub(" ", oracle)  # "Mexico,[1][2]" states no number 1 or 2
        words = {_fold_word(w) for w in _LETTER_WORDS.findall(oracle)}
        words |= {_fold_word(w.replace("-", "")) for w in _HYPHENATED.findall(oracle)}
        self.keys = {_key(w) for w in words}
        self.numbers = _numbers(oracle) | {
            str(_chinese_value(n)) for n in _CHINESE_NUMERAL.findall(oracle)
        }
        self.numbers |= {v for w, v in _NUMBER_WORDS.items() if w in words}


@lru_cache(maxsize=32)
def oracle_vocabulary(oracle: str) -> OracleVocabulary:
    """The vocabulary of ``oracle``, shared by the questions of one chunk and by re-asks."""
    return OracleVocabulary(oracle)


@dataclass(frozen=True)
class AnswerSupport:
    """What of a final answer the oracle does not back."""

    missing_numbers: tuple[str, ...]
    missing_entities: tuple[str, ...]
    unsupported: tuple[str, ...]
    content_units: int
    supported_share: float


def _entities(answer: str) -> list[str]:
    """Capitalised words not at the start of a sentence: names the oracle must contain."""
    found: list[str] = []
    for match in _LETTER_WORDS.finditer(answer):
        word = match.group()
        if word[0].isupper() and not _SENTENCE_START.search(answer[: match.start()]):
            found.append(word)
    return found


def answer_support(answer: str, oracle: OracleVocabulary) -> AnswerSupport:
    """Which numbers, named entities and content words of ``answer`` the oracle lacks."""
    missing_numbers = tuple(sorted(_numbers(answer) - oracle.numbers))
    words = _LETTER_WORDS.findall(answer)
    content = [
        w for w in words if _fold_word(w) not in _STOPWORDS and _fold_word(w) not in _NUMBER_WORDS
    ]
    unsupported = [w for w in content if _key(_fold_word(w)) not in oracle.keys]
    entities = [w for w in _entities(answer) if w in unsupported]
    units = len(content)
    for run in _CJK_RUN.findall(answer):
        pieces = [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]
        units += len(pieces)
        unsupported.extend(p for p in pieces if p not in oracle.text)
    share = 1.0 if units == 0 else (units - len(unsupported)) / units
    return AnswerSupport(
        missing_numbers=missing_numbers,
        missing_entities=tuple(dict.fromkeys(entities)),
        unsupported=tuple(dict.fromkeys(unsupported)),
        content_units=units,
        supported_share=share,
    )

"""Built-in answer metrics: pure functions of text, no model and no extra dependency.

Every metric returns a float in ``[0, 1]`` (answer length excepted, which counts tokens) or
``nan`` when the metric does not apply to the sample ("not measured"). A ``nan`` is never a
zero: the report counts and shows it and leaves it out of the means.

Text is not assumed to be English. Normalisation works on any script; CJK text (Han, kana,
Hangul) is compared character by character, because Chinese and Japanese do not separate words
with spaces and PDF extraction sprinkles stray spaces between the characters.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from raftkit.llm.tokens import estimate_tokens
from raftkit.types import DEFAULT_REFUSAL_ANSWER

__all__ = [
    "BUILTIN_METRICS",
    "FunctionMetric",
    "Sample",
    "Score",
    "answer_length",
    "exact_match",
    "extract_final_answer",
    "extract_quotes",
    "format_adherence",
    "has_answer_marker",
    "is_latin_script",
    "is_refusal",
    "normalize_answer",
    "normalize_for_matching",
    "quote_grounding",
    "token_f1",
]

# Han (incl. extensions and compatibility ideographs), kana, Hangul: one token per character.
_CJK_CHARS = (
    "\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c"
    "\u3040-\u309f\u30a0-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31bf\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
_CJK = re.compile(f"[{_CJK_CHARS}]")
_TOKEN = re.compile(f"[{_CJK_CHARS}]|[^\\s{_CJK_CHARS}]+")
# Full-width and ideographic punctuation that sits between CJK characters without spaces.
_CJK_PUNCT = "\u3000-\u303f\uff00-\uffef\u2018-\u201f\u2026\u00b7"
_SPACE_NEAR_CJK = re.compile(
    f"(?<=[{_CJK_CHARS}{_CJK_PUNCT}])\\s+|\\s+(?=[{_CJK_CHARS}{_CJK_PUNCT}])"
)
_WHITESPACE = re.compile(r"\s+")
_ARTICLES = frozenset({"a", "an", "the"})

# "<ANSWER>:" as RAFT's chain-of-thought format ends; NFKC turns a full-width colon into ":".
_ANSWER_MARKER = re.compile(r"<ANSWER>\s*[:：]", re.IGNORECASE)
_QUOTE = re.compile(r"##begin_quote##(.*?)##end_quote##", re.DOTALL)


# ---------------------------------------------------------------- extraction


def extract_final_answer(text: str) -> str:
    """The final answer: the text after the last ``<ANSWER>:`` marker, stripped.

    Without a marker the whole response is the answer (stripped), so a model that ignores the
    format is still scored on what it said; :func:`format_adherence` records the lapse.
    """
    markers = list(_ANSWER_MARKER.finditer(text))
    if not markers:
        return text.strip()
    return text[markers[-1].end() :].strip()


def has_answer_marker(text: str) -> bool:
    """Whether ``text`` contains an ``<ANSWER>:`` marker (either colon width, any case)."""
    return _ANSWER_MARKER.search(text) is not None


def extract_quotes(text: str) -> list[str]:
    """The spans quoted as ``##begin_quote##…##end_quote##``, in order, stripped; empty ones
    are dropped because they quote nothing."""
    return [q.strip() for q in _QUOTE.findall(text) if q.strip()]


# ---------------------------------------------------------------- normalisation


@lru_cache(maxsize=4096)
def _is_latin_letter(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN")


def is_latin_script(text: str) -> bool:
    """Whether every letter in ``text`` is a Latin-script letter (digits and marks aside).

    Text without letters counts as Latin script. English articles are dropped only from such
    text: in mixed or non-Latin text an ``a`` may be a unit, a variable or part of a name.
    """
    return all(_is_latin_letter(ch) for ch in text if ch.isalpha())


def _strip_punctuation(text: str) -> str:
    # Unicode punctuation (P*) covers ASCII marks and CJK ones alike: 。，、！？「」『』《》【】…
    # ASCII symbols such as $ + < = > ^ ` | ~ are dropped too, as SQuAD's evaluation does.
    return "".join(
        ch for ch in text if not unicodedata.category(ch).startswith("P") and ch not in "$+<=>^`|~"
    )


def normalize_answer(text: str) -> str:
    """The answer form EM and F1 compare.

    In order: NFKC (full-width letters, digits and spaces become their ordinary forms),
    case-fold, drop punctuation (every Unicode punctuation character, CJK included), drop the
    English articles *a*, *an*, *the* if the text is Latin-script (:func:`is_latin_script`),
    collapse whitespace, and remove whitespace next to CJK characters (PDF extraction puts
    stray spaces between them; the language never does).
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _strip_punctuation(text)
    words = text.split()
    if is_latin_script(text):
        words = [w for w in words if w not in _ARTICLES]
    return _SPACE_NEAR_CJK.sub("", " ".join(words))


def normalize_for_matching(text: str) -> str:
    """The form quotes and documents are compared in: case and punctuation are kept (a quote
    must be verbatim), but width, whitespace runs and spaces next to CJK characters are not."""
    text = unicodedata.normalize("NFKC", text)
    text = _WHITESPACE.sub(" ", text).strip()
    return _SPACE_NEAR_CJK.sub("", text)


def _tokens(normalized: str) -> list[str]:
    # Each CJK character is a token; any other run of non-space characters is a word.
    return _TOKEN.findall(normalized)


# ---------------------------------------------------------------- metrics


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference, else 0.0.

    Both empty after normalisation: 1.0; exactly one empty: 0.0. The token sequences are
    compared, so spaces that only separate CJK characters do not matter.
    """
    pred = _tokens(normalize_answer(prediction))
    return 1.0 if pred == _tokens(normalize_answer(reference)) else 0.0


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall between the normalised texts.

    Tokens are words for Latin-script (and other space-separated) text and single characters
    for CJK; mixed text yields both (``"iPhone 15是苹果"`` → ``iphone 15 是 苹 果``). Both empty
    after normalisation: 1.0; exactly one empty: 0.0.
    """
    pred = _tokens(normalize_answer(prediction))
    gold = _tokens(normalize_answer(reference))
    if not pred or not gold:
        return 1.0 if not pred and not gold else 0.0
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred)
    recall = common / len(gold)
    return 2 * precision * recall / (precision + recall)


def quote_grounding(answer: str, documents: Sequence[str]) -> float:
    """Share of the answer's quoted spans that occur verbatim in at least one document.

    Quotes and documents are compared after :func:`normalize_for_matching`. An answer without
    quotes has no share to measure: ``nan`` (counted as "not measured", never as 0 or 1).
    """
    quotes = [normalize_for_matching(q) for q in extract_quotes(answer)]
    quotes = [q for q in quotes if q]
    if not quotes:
        return math.nan
    haystacks = [normalize_for_matching(d) for d in documents]
    grounded = sum(1 for q in quotes if any(q in h for h in haystacks))
    return grounded / len(quotes)


def format_adherence(answer: str) -> float:
    """1.0 when the response has an ``<ANSWER>:`` marker followed by a non-empty answer."""
    return 1.0 if has_answer_marker(answer) and extract_final_answer(answer) else 0.0


def is_refusal(answer: str, refusal: str = DEFAULT_REFUSAL_ANSWER) -> bool:
    """Whether the final answer ``answer`` abstains: the normalised ``refusal`` phrase occurs
    in it as a whole token sequence (so "I cannot answer this from the given documents; they
    discuss surfing." is a refusal, and case, punctuation and width do not matter)."""
    wanted = _tokens(normalize_answer(refusal))
    if not wanted:
        return False
    said = _tokens(normalize_answer(answer))
    width = len(wanted)
    return any(said[i : i + width] == wanted for i in range(len(said) - width + 1))


def answer_length(text: str) -> float:
    """Length of ``text`` in tokens (:func:`raftkit.llm.tokens.estimate_tokens`, script-aware)."""
    return float(estimate_tokens(text))


# ---------------------------------------------------------------- as metric objects


@dataclass(frozen=True)
class Sample:
    """What a metric sees of one answered question.

    ``response`` is the model's whole reply; ``reference`` the gold final answer and
    ``reference_cot`` the teacher's full chain-of-thought answer; ``contexts`` the texts of the
    documents shown to the model, in prompt order. ``oracle_shown`` says whether the oracle
    was among them (``None``: unknown, then it is looked up in ``contexts``);
    ``reference_kind`` is ``"refusal"`` when the gold answer is an abstention.
    """

    question: str
    response: str
    reference: str
    contexts: tuple[str, ...] = ()
    reference_cot: str = ""
    oracle: str | None = None
    id: str = ""
    oracle_shown: bool | None = None
    reference_kind: Literal["answer", "refusal"] = "answer"
    question_type: str | None = None

    @property
    def final_answer(self) -> str:
        return extract_final_answer(self.response)

    @property
    def has_oracle(self) -> bool:
        """Whether the documents shown hold the answer (the oracle was among them)."""
        if self.oracle_shown is not None:
            return self.oracle_shown
        return self.oracle is not None and self.oracle in self.contexts


@dataclass(frozen=True)
class Score:
    """A metric value with a short note, e.g. a judge's rationale. ``value`` may be ``nan``."""

    value: float
    note: str = ""


@dataclass(frozen=True)
class FunctionMetric:
    """A :class:`~raftkit.evaluate.Metric` made from a plain ``Sample -> float`` function.

    ``higher_is_better`` is ``None`` for descriptive metrics (length) that have no direction.
    """

    name: str
    function: Callable[[Sample], float] = field(repr=False)
    higher_is_better: bool | None = True
    description: str = ""

    async def score(self, sample: Sample) -> float:
        return self.function(sample)


#: The built-in metrics, in report order.
BUILTIN_METRICS: tuple[FunctionMetric, ...] = (
    FunctionMetric(
        "exact_match",
        lambda s: exact_match(s.final_answer, s.reference),
        description="normalised final answer equals the gold answer",
    ),
    FunctionMetric(
        "token_f1",
        lambda s: token_f1(s.final_answer, s.reference),
        description="token F1 of final vs gold answer (characters for CJK)",
    ),
    FunctionMetric(
        "quote_grounding",
        lambda s: quote_grounding(s.response, s.contexts),
        description="share of ##begin_quote## spans found in the documents shown",
    ),
    FunctionMetric(
        "format_adherence",
        lambda s: format_adherence(s.response),
        description="an <ANSWER>: marker with a non-empty answer is present",
    ),
    FunctionMetric(
        "answer_length",
        lambda s: answer_length(s.response),
        higher_is_better=None,
        description="length of the whole response in estimated tokens",
    ),
)

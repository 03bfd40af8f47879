"""Checking a teacher's chain-of-thought answer before it becomes training data.

RAFT's answers quote the oracle between ``##begin_quote##`` and ``##end_quote##`` and end with
``<ANSWER>: ...``. A student trained on invented quotes learns to invent them, and one trained
on answers that a one-word quote "backs" learns to invent answers, so :func:`verify_answer`
checks, in order:

1. the form: non-empty text, quote markers that pair up, an ``<ANSWER>:`` line with text;
2. every quote occurs in the oracle **on word boundaries** (character boundaries for CJK), after
   normalising both sides (:mod:`raftkit.synth._quotes` lists the normalisations; those a match
   needed are recorded, the quote itself is kept as written);
3. every quote has substance — at least ``min_quote_words`` words, or ``min_quote_chars``
   letters and digits, or ``min_quote_cjk_chars`` CJK characters — and at least one quote says
   more than function words;
4. the final answer is supported: its numbers occur in the oracle, and so do its named entities
   and most of its content words (:mod:`raftkit.synth._support`).

A multi-hop answer has several oracles: each quote is looked for in each of them (in order) and
attributed to the first it occurs in (:attr:`QuoteCheck.oracle`), every oracle must be quoted,
and the final answer may draw on all of them.

Every rejection carries a stable reason code (:data:`REJECTION_REASONS`) and a detail fit to
show the teacher. A quote may elide text with ``...`` or ``…``; the pieces must occur in order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from raftkit.synth._quotes import (
    NORMALISATIONS,
    Normalisation,
    OracleForms,
    find_quote,
    oracle_forms,
)
from raftkit.synth._support import answer_support, oracle_vocabulary, quote_substance
from raftkit.synth._text import match_form

__all__ = [
    "NORMALISATIONS",
    "REJECTION_REASONS",
    "Normalisation",
    "QuoteCheck",
    "RejectionReason",
    "Verification",
    "VerifyRules",
    "extract_final_answer",
    "extract_quotes",
    "quote_in_text",
    "verify_answer",
]

#: Why an answer was rejected. The pipeline counts these per run.
RejectionReason = Literal[
    "invalid_response",
    "unbalanced_quote_markers",
    "no_answer_line",
    "empty_answer",
    "no_quotes",
    "quote_not_in_oracle",
    "quote_splits_word",
    "quote_too_short",
    "no_substantive_quote",
    "answer_number_not_in_oracle",
    "answer_not_supported",
    "oracle_not_quoted",
]
REJECTION_REASONS: tuple[RejectionReason, ...] = (
    "invalid_response",
    "unbalanced_quote_markers",
    "no_answer_line",
    "empty_answer",
    "no_quotes",
    "quote_not_in_oracle",
    "quote_splits_word",
    "quote_too_short",
    "no_substantive_quote",
    "answer_number_not_in_oracle",
    "answer_not_supported",
    "oracle_not_quoted",
)

# Tolerated spellings: "## begin_quote ##", "##BEGIN QUOTE##", "##begin-quote##".
_MARKER = re.compile(r"##\s*(begin|end)[\s_\-]*quote\s*##", re.IGNORECASE)
# "<ANSWER>:" with a half-width or full-width colon, any case, stray spaces.
_ANSWER = re.compile(r"<\s*answer\s*>\s*[:：]", re.IGNORECASE)
_WRAPPING = {'"': '"', "'": "'", "「": "」", "『": "』", "“": "”", "‘": "’", "《": "》"}


class VerifyRules(BaseModel):
    """The thresholds of :func:`verify_answer`. They decide which answers become data, so a
    run records them and refuses to resume with others. ``0`` turns a minimum off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_quote_words: int = Field(3, ge=0, description="a quote passes with this many words")
    min_quote_chars: int = Field(12, ge=0, description="... or this many letters and digits")
    min_quote_cjk_chars: int = Field(6, ge=0, description="... or this many CJK characters")
    min_answer_support: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of the final answer's content words (CJK: character pairs) that "
        "must occur in the oracle",
    )
    check_answer_numbers: bool = Field(
        True, description="every number of the final answer must occur in the oracle"
    )


class QuoteCheck(BaseModel):
    """What :func:`verify_answer` found out about one quote."""

    model_config = ConfigDict(frozen=True)

    quote: str = Field(description="as written in the answer (wrapping quotation marks removed)")
    found: Literal["found", "splits_word", "missing"]
    normalisations: list[Normalisation] = Field(default_factory=list)
    too_short: bool = False
    has_content: bool = True
    oracle: int | None = Field(
        None, description="the index of the oracle the quote was found in; None if not found"
    )


class Verification(BaseModel):
    """The outcome of :func:`verify_answer`."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    reason: RejectionReason | None = None
    detail: str = Field(default="", description="what is wrong, fit to show the teacher")
    final_answer: str = ""
    quotes: list[str] = Field(default_factory=list)
    missing_quotes: list[str] = Field(
        default_factory=list, description="quotes not found in the oracle"
    )
    normalisations: list[Normalisation] = Field(
        default_factory=list, description="what the quotes' matches needed, over all quotes"
    )
    quote_checks: list[QuoteCheck] = Field(default_factory=list)


def extract_quotes(text: str) -> list[str] | None:
    """The quoted passages in ``text``, stripped; ``None`` if the markers do not pair up."""
    quotes: list[str] = []
    start: int | None = None
    for marker in _MARKER.finditer(text):
        if marker.group(1).lower() == "begin":
            if start is not None:
                return None
            start = marker.end()
        else:
            if start is None:
                return None
            quotes.append(text[start : marker.start()].strip())
            start = None
    if start is not None:
        return None
    return quotes


def extract_final_answer(text: str) -> str | None:
    """What follows the last ``<ANSWER>:`` tag, stripped; ``None`` if there is no tag."""
    tags = list(_ANSWER.finditer(text))
    if not tags:
        return None
    answer = text[tags[-1].end() :]
    answer = _MARKER.sub("", answer)
    return answer.strip()


def _unwrap(quote: str) -> str:
    # Models often put quotation marks inside the markers: ##begin_quote## "…" ##end_quote##.
    while len(quote) >= 2 and _WRAPPING.get(quote[0]) == quote[-1]:
        quote = quote[1:-1].strip()
    return quote


def quote_in_text(quote: str, text: str, *, allow_ellipsis: bool = True) -> bool:
    """Whether ``quote`` occurs in ``text`` on word boundaries, after the normalisations."""
    found, _ = find_quote(_unwrap(quote), OracleForms(text), allow_ellipsis=allow_ellipsis)
    return found == "found"


def _find_in_oracles(
    quote: str, oracles: Sequence[OracleForms], allow_ellipsis: bool
) -> tuple[Literal["found", "splits_word", "missing"], tuple[Normalisation, ...], int | None]:
    """The first oracle ``quote`` occurs in; else whether it occurs anywhere cutting a word."""
    status: Literal["found", "splits_word", "missing"] = "missing"
    for index, forms in enumerate(oracles):
        found, needed = find_quote(quote, forms, allow_ellipsis=allow_ellipsis)
        if found == "found":
            return found, needed, index
        if found == "splits_word":
            status = found
    return status, (), None


def _check_quote(
    quote: str, oracles: Sequence[OracleForms], rules: VerifyRules, allow_ellipsis: bool
) -> QuoteCheck:
    found, needed, where = _find_in_oracles(quote, oracles, allow_ellipsis)
    size = quote_substance(match_form(quote))
    long_enough = (
        size.words >= rules.min_quote_words
        or size.characters >= rules.min_quote_chars
        or size.cjk_letters >= rules.min_quote_cjk_chars
    )
    return QuoteCheck(
        quote=quote,
        found=found,
        normalisations=list(needed),
        too_short=not long_enough,
        has_content=size.has_content,
        oracle=where,
    )


def _shown(quotes: list[str]) -> str:
    return "; ".join(repr(q[:200]) for q in quotes)


def _quote_problem(
    checks: list[QuoteCheck], rules: VerifyRules
) -> tuple[RejectionReason, str] | None:
    missing = [c.quote for c in checks if c.found == "missing"]
    if missing:
        return "quote_not_in_oracle", (
            f"these quotes are not copied exactly from the documents: {_shown(missing)}"
        )
    split = [c.quote for c in checks if c.found == "splits_word"]
    if split:
        return "quote_splits_word", (
            "these quotes start or end in the middle of a word of the documents; quote whole "
            f"words: {_shown(split)}"
        )
    short = [c.quote for c in checks if c.too_short]
    if short:
        return "quote_too_short", (
            "these quotes are too short to show where the answer comes from (quote at least "
            f"{rules.min_quote_words} words, {rules.min_quote_chars} letters, or "
            f"{rules.min_quote_cjk_chars} Chinese or Japanese characters): {_shown(short)}"
        )
    if checks and not any(c.has_content for c in checks):
        return "no_substantive_quote", (
            "the quotes hold only function words; quote the sentence that gives the answer"
        )
    return None


def _unquoted_oracles(checks: list[QuoteCheck], oracles: int) -> tuple[RejectionReason, str] | None:
    if oracles < 2:
        return None
    quoted = {c.oracle for c in checks if c.has_content}
    missing = [str(i + 1) for i in range(oracles) if i not in quoted]
    if not missing:
        return None
    return "oracle_not_quoted", (
        "the question needs every document, but the reasoning quotes nothing from document(s) "
        f"{', '.join(missing)}; quote the sentence of each document that the answer uses"
    )


def _answer_problem(
    final: str, oracle: str, rules: VerifyRules
) -> tuple[RejectionReason, str] | None:
    support = answer_support(match_form(final), oracle_vocabulary(oracle))
    if rules.check_answer_numbers and support.missing_numbers:
        numbers = ", ".join(support.missing_numbers)
        return "answer_number_not_in_oracle", (
            f"the final answer has numbers the documents do not state: {numbers}; give the "
            "numbers as the documents write them"
        )
    weak = support.supported_share < rules.min_answer_support
    if support.missing_entities or (support.content_units and weak):
        words = ", ".join(support.missing_entities or support.unsupported)
        return "answer_not_supported", (
            f"the final answer is not backed by the documents ({words} not found in them); "
            "answer with what the quoted text says"
        )
    return None


def verify_answer(
    cot_answer: str,
    oracle_text: str | Sequence[str],
    *,
    rules: VerifyRules | None = None,
    require_quotes: bool = True,
    allow_ellipsis: bool = True,
) -> Verification:
    """Check a chain-of-thought answer against the oracle it should quote. Never raises.

    The checks and their order are in the module docstring; the first that fails names the
    :attr:`Verification.reason`. ``require_quotes=False`` accepts an answer without quotes (the
    quotes it has are still checked). ``oracle_text`` may be several oracles (a multi-hop
    question): each must then be quoted (``oracle_not_quoted``), and each quote's
    :attr:`QuoteCheck.oracle` says which one it was found in.
    """
    rules = rules if rules is not None else VerifyRules()
    texts = [oracle_text] if isinstance(oracle_text, str) else list(oracle_text)
    if not cot_answer.strip():
        return Verification(ok=False, reason="invalid_response", detail="the response is empty")
    quotes = extract_quotes(cot_answer)
    if quotes is None:
        return Verification(
            ok=False,
            reason="unbalanced_quote_markers",
            detail="every ##begin_quote## must be closed by ##end_quote## before the next opens",
        )
    final = extract_final_answer(cot_answer)
    if final is None:
        return Verification(
            ok=False,
            reason="no_answer_line",
            detail="the response does not end with a line starting <ANSWER>:",
            quotes=quotes,
        )
    if not final:
        return Verification(
            ok=False, reason="empty_answer", detail="nothing follows <ANSWER>:", quotes=quotes
        )
    quotes = [q for q in (_unwrap(q) for q in quotes) if match_form(q)]
    if not quotes and require_quotes:
        return Verification(
            ok=False,
            reason="no_quotes",
            detail="the reasoning quotes nothing between ##begin_quote## and ##end_quote##",
            final_answer=final,
        )
    forms = [oracle_forms(text) for text in texts or [""]]
    checks = [_check_quote(q, forms, rules, allow_ellipsis) for q in quotes]
    needed = {name for c in checks for name in c.normalisations}
    common = {
        "final_answer": final,
        "quotes": quotes,
        "missing_quotes": [c.quote for c in checks if c.found == "missing"],
        "normalisations": [name for name in NORMALISATIONS if name in needed],
        "quote_checks": checks,
    }
    problem = (
        _quote_problem(checks, rules)
        or _unquoted_oracles(checks, len(forms))
        or _answer_problem(final, "\n".join(f.base for f in forms), rules)
    )
    if problem is not None:
        reason, detail = problem
        return Verification(ok=False, reason=reason, detail=detail, **common)
    return Verification(ok=True, **common)

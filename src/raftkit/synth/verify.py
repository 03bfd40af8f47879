"""Checking a teacher's chain-of-thought answer before it becomes training data.

RAFT's answers quote the oracle between ``##begin_quote##`` and ``##end_quote##`` and end with
``<ANSWER>: ...``. A student trained on invented quotes learns to invent them, so every quote
must really occur in the oracle. "Occur" is judged after normalising both sides the same way
(:func:`raftkit.synth._text.match_form`): NFKC (full-width letters, digits and punctuation
become half-width), curly quotes and dashes unified, invisible characters removed, whitespace
collapsed and whitespace next to CJK characters removed — PDF text breaks lines and scatters
spaces between Chinese characters that the model will not reproduce. Case is kept: a quote is
verbatim.

A quote may elide text with ``...`` or ``…``; then each piece must occur in the oracle, in order.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from raftkit.synth._text import match_form

__all__ = [
    "REJECTION_REASONS",
    "RejectionReason",
    "Verification",
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
]
REJECTION_REASONS: tuple[RejectionReason, ...] = (
    "invalid_response",
    "unbalanced_quote_markers",
    "no_answer_line",
    "empty_answer",
    "no_quotes",
    "quote_not_in_oracle",
)

# Tolerated spellings: "## begin_quote ##", "##BEGIN QUOTE##", "##begin-quote##".
_MARKER = re.compile(r"##\s*(begin|end)[\s_\-]*quote\s*##", re.IGNORECASE)
# "<ANSWER>:" with a half-width or full-width colon, any case, stray spaces.
_ANSWER = re.compile(r"<\s*answer\s*>\s*[:：]", re.IGNORECASE)
_ELLIPSIS = re.compile(r"\.{3,}|…+")
_WRAPPING = {'"': '"', "'": "'", "「": "」", "『": "』", "“": "”", "‘": "’", "《": "》"}


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
    """Whether ``quote`` occurs in ``text`` after normalising both (see the module docstring)."""
    return _found(match_form(_unwrap(quote)), match_form(text), allow_ellipsis)


def _found(quote: str, text: str, allow_ellipsis: bool) -> bool:
    if not quote:
        return False
    if quote in text:
        return True
    if not allow_ellipsis:
        return False
    pieces = [p.strip() for p in _ELLIPSIS.split(quote)]
    pieces = [p for p in pieces if p]
    if len(pieces) < 2:
        return False
    at = 0
    for piece in pieces:
        found = text.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def verify_answer(
    cot_answer: str,
    oracle_text: str,
    *,
    require_quotes: bool = True,
    allow_ellipsis: bool = True,
) -> Verification:
    """Check a chain-of-thought answer against the oracle it should quote. Never raises.

    Checks, in order: the response is non-empty text; quote markers pair up; an ``<ANSWER>:``
    tag exists and has text after it; at least one non-empty quote (unless ``require_quotes``
    is false); every quote occurs in ``oracle_text``.
    """
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
    oracle = match_form(oracle_text)
    missing = [q for q in quotes if not _found(match_form(q), oracle, allow_ellipsis)]
    if missing:
        shown = "; ".join(repr(q[:200]) for q in missing)
        return Verification(
            ok=False,
            reason="quote_not_in_oracle",
            detail=f"these quotes are not copied exactly from the documents: {shown}",
            final_answer=final,
            quotes=quotes,
            missing_quotes=missing,
        )
    return Verification(ok=True, final_answer=final, quotes=quotes)

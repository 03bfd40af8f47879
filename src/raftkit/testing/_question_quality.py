"""How the simulated teacher answers the requests around question quality.

- **Ratings.** A structured request whose schema has a ``ratings`` array rates the numbered
  questions of the prompt (``1. …``) against the ``<DOCUMENT>`` text: per question, its
  ratings 1–5 for self_contained, answerable, specific and language, as one string of four
  digits (``"5525"``), or as four integers when the schema's items are arrays. A question
  that refers to "the text" is not self-contained; one sharing no content word with the
  documents is not answerable; one with fewer than two content words besides generic ones
  ("What is known about X?", "What is the main point?") is not specific; one in another
  script than the documents is in the wrong language. ``notes`` name the problems,
  ``"N: problem; …"`` (one note per question when the schema asks for an array).
- **A question from two documents.** A structured request for questions whose prompt asks for
  one needing "both documents", with two ``<DOCUMENT>`` blocks, gets one question joining a
  question about each: "What is A, and what is B?".
- **Typed lists.** A prompt listing ``- N type: description`` lines gives the ``type`` fields
  of a question array those types, in that order (:func:`requested_types`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from raftkit.testing._schema_fill import question_from_sentence
from raftkit.testing._text import is_cjk, split_sentences, word_set

__all__ = ["combined_question", "rating_answer", "requested_types"]

_NUMBERED = re.compile(r"^\s*(\d{1,3})[.)]\s+(.+?)\s*$", re.MULTILINE)
_TYPE_LINE = re.compile(r"^\s*-\s*(\d{1,3})\s+([a-z][a-z0-9_-]*)\s*:", re.MULTILINE)
_TEXT_REFERENCE = re.compile(
    r"\b(?:the|this)\s+(?:text|passage|chunk|document|excerpt|article)\b|文中|本文|这段|文章中",
    re.IGNORECASE,
)
_GENERIC_TEXT = """
known about main point say says said mentioned information specific thing things something
described describe tell me
"""
_GENERIC = frozenset(_GENERIC_TEXT.split())
_GENERIC_CJK = frozenset("关于知道些什么主要内容信息具体哪有的是")
_BOTH = re.compile(r"\bboth documents\b", re.IGNORECASE)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _cjk(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(map(is_cjk, letters)) / len(letters) >= 0.3


def _rate(question: str, documents: str) -> tuple[list[int], str]:
    asked = word_set(question)
    chinese = _cjk(question)
    if chinese:
        letters = [c for c in question if is_cjk(c)]
        specific_units = len([c for c in letters if c not in _GENERIC_CJK])
        pairs = [f for f in asked if len(f) == 2]
        known = word_set(documents)
        answerable = bool(pairs) and sum(p in known for p in pairs) / len(pairs) >= 0.3
        specific = specific_units >= 3
    else:
        content = {w for w in asked if w not in _GENERIC and len(w) > 1}
        answerable = bool(content & word_set(documents))
        specific = len(content) >= 2
    self_contained = _TEXT_REFERENCE.search(question) is None
    same_language = chinese == _cjk(documents)
    row = [
        5 if self_contained else 1,
        5 if answerable else 1,
        5 if specific else 2,
        5 if same_language else 1,
    ]
    problems = [
        note
        for ok, note in (
            (self_contained, "refers to the text"),
            (answerable, "not in the excerpts"),
            (specific, "vague"),
            (same_language, "wrong language"),
        )
        if not ok
    ]
    return row, ", ".join(problems)


def rating_answer(
    messages: Sequence[dict[str, Any]], schema: dict[str, Any] | None, documents: list[str]
) -> dict[str, Any] | None:
    """The ratings of the prompt's numbered questions, or ``None`` if this is no such request."""
    properties = (schema or {}).get("properties")
    if not isinstance(properties, dict) or "ratings" not in properties:
        return None
    user = "\n".join(_text(m) for m in messages if m.get("role") == "user")
    listed = user.split("Questions:", 1)[-1]
    questions = [m.group(2) for m in _NUMBERED.finditer(listed)]
    source = "\n".join(documents)
    rows, notes = [], []
    for question in questions:
        row, note = _rate(question, source)
        rows.append(row)
        notes.append(note)
    items = properties["ratings"].get("items") if isinstance(properties["ratings"], dict) else {}
    as_lists = isinstance(items, dict) and items.get("type") == "array"
    answer: dict[str, Any] = {
        "ratings": rows if as_lists else ["".join(map(str, row)) for row in rows]
    }
    wanted = properties.get("notes")
    if isinstance(wanted, dict) and wanted.get("type") == "array":
        answer["notes"] = notes
    elif wanted is not None:
        answer["notes"] = "; ".join(f"{i}: {n}" for i, n in enumerate(notes, start=1) if n)
    return answer


def combined_question(
    messages: Sequence[dict[str, Any]], schema: dict[str, Any] | None, documents: list[str]
) -> dict[str, Any] | None:
    """One question about two documents, or ``None`` if this is no such request."""
    properties = (schema or {}).get("properties")
    if not isinstance(properties, dict) or "questions" not in properties or len(documents) < 2:
        return None
    if not any(_BOTH.search(_text(m)) for m in messages):
        return None
    parts = []
    for document in documents[:2]:
        sentences = [s for s in split_sentences(document) if len(s.split()) >= 4 or _cjk(s)]
        parts.append(question_from_sentence((sentences or [document])[0]))
    first, second = parts
    if _cjk(first):
        joined = f"{first.rstrip('？?')}，以及{second}"
    else:
        joined = f"{first.rstrip('?')}, and {second[0].lower()}{second[1:]}"
    return {"questions": [joined]}


def requested_types(messages: Sequence[dict[str, Any]]) -> list[str]:
    """The types the last message listing ``- N type:`` lines asks for, in order, each as many
    times as asked."""
    for message in reversed(messages):
        found = _TYPE_LINE.findall(_text(message))
        if found:
            return [name for count, name in found for _ in range(int(count))]
    return []

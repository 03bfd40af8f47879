"""Answers shaped by a model's :class:`~raftkit.testing._behaviour.ModelBehaviour`.

The teacher (:mod:`raftkit.testing._teacher`) writes the RAFT answer; this module decides, per
request and per model, whether the model declines, reads a distractor, uses the RAFT format at
all (a base model asked nothing about it answers in plain prose), and slips in the format.
Only prompts with ``<DOCUMENT>`` blocks are RAFT questions; any other prompt gets the teacher's
answer as it always did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from raftkit.testing._behaviour import ModelBehaviour, decide
from raftkit.testing._teacher import (
    Passage,
    Teaching,
    documents_in,
    message_text,
    pick_passage,
    raft_answer,
)
from raftkit.testing._text import is_cjk, stable_hash
from raftkit.types import DEFAULT_REFUSAL_ANSWER

__all__ = ["format_requested", "model_answer", "model_answers"]

# "Question 2: ..." — how a prompt asking for several answers numbers its questions
_NUMBERED = re.compile(r"^\s*Question\s*(\d+)\s*[:：]\s*(.+?)\s*$", re.MULTILINE)
_DOCUMENT_BLOCK = re.compile(r"<DOCUMENT>.*?</DOCUMENT>", re.DOTALL | re.IGNORECASE)

_FORMAT_MARKERS = ("<ANSWER>", "##begin_quote##")
_MIN_EVIDENCE = 2
_REFUSAL = {
    "en": DEFAULT_REFUSAL_ANSWER,
    "zh": "无法根据文档回答这个问题。",
}
_REFUSAL_REASONING = {
    "en": "None of the documents addresses the question, so I do not answer from memory.",
    "zh": "文档中没有与这个问题相关的内容，因此我不凭记忆作答。",
}


def format_requested(messages: Sequence[dict[str, Any]]) -> bool:
    """Whether the prompt asks for RAFT's format (mentions ``<ANSWER>`` or the quote marker)."""
    return any(marker in message_text(m) for m in messages for marker in _FORMAT_MARKERS)


def _chinese(text: str) -> bool:
    letters = [c for c in text if not c.isspace()]
    return bool(letters) and sum(map(is_cjk, letters)) / len(letters) > 0.3


def _refusal(passage: Passage, behaviour: ModelBehaviour, *, raft_format: bool) -> str:
    # the language of the question's first line or of the documents
    question = passage.question.strip().splitlines()[0] if passage.question.strip() else ""
    chinese = passage.chinese or _chinese(question) or _chinese(passage.sentence)
    language = "zh" if chinese else "en"
    final = behaviour.refusal_text or _REFUSAL[language]
    if not raft_format:
        return final
    return f"{_REFUSAL_REASONING[language]}\n<ANSWER>: {final}"


def _plain(passage: Passage) -> str:
    # a base model that was never taught the format answers with the sentence it found
    return passage.sentence


def model_answer(
    messages: Sequence[dict[str, Any]],
    *,
    model: str,
    behaviour: ModelBehaviour,
    variation: int,
    explore: bool,
    teaching: Teaching,
) -> str:
    """The answer ``model`` gives to a RAFT-style prompt (see the module docstring)."""
    if not documents_in(messages):
        return raft_answer(messages, variation=variation, explore=explore, teaching=teaching)
    best = pick_passage(messages, variation=variation, explore=explore)
    key = (model, best.question, variation)
    declines = decide(behaviour.refusals, "refusal", *key) or (
        behaviour.refuses_without_evidence and best.evidence < _MIN_EVIDENCE
    )
    raft_format = format_requested(messages) or decide(behaviour.learned_format, "format", *key)
    if declines:
        return _refusal(best, behaviour, raft_format=raft_format)
    rank = 0
    if len(best.documents) > 1 and decide(behaviour.wrong_document, "document", *key):
        rank = 1
    passage = (
        best
        if rank == 0
        else pick_passage(messages, variation=variation, explore=explore, document_rank=rank)
    )
    if not raft_format:
        return _plain(passage)
    if decide(behaviour.format_mistakes, "mistake", *key):
        # alternate the two ways a format slips
        if decide(0.5, "mistake-kind", *key):
            teaching = replace(teaching, missing_answer=True)
        else:
            teaching = replace(teaching, invented_quote=True)
    return raft_answer(
        messages, variation=variation, explore=explore, teaching=teaching, passage=passage
    )


def _answers_array(schema: Any) -> dict[str, Any] | None:
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties")
    field = properties.get("answers") if isinstance(properties, dict) else None
    if not isinstance(field, dict) or field.get("type") != "array":
        return None
    items = field.get("items")
    return field if isinstance(items, dict) and items.get("type") == "string" else None


def model_answers(
    messages: Sequence[dict[str, Any]],
    schema: Any,
    *,
    model: str,
    behaviour: ModelBehaviour,
    variation: int,
    explore: bool,
) -> list[str] | None:
    """RAFT answers to each numbered question of a prompt asking for several at once.

    Applies when the prompt has ``<DOCUMENT>`` blocks, asks for the RAFT format, numbers its
    questions ("Question 1: ...") and wants ``{"answers": [string, ...]}``; each question is
    answered as :func:`model_answer` would answer it alone, with the model's slips drawn per
    question. ``None`` when the request is not of that shape.
    """
    field = _answers_array(schema)
    documents = documents_in(messages)
    if field is None or not documents or not format_requested(messages):
        return None
    users = [message_text(m) for m in messages if m.get("role") == "user"]
    asked = _NUMBERED.findall(_DOCUMENT_BLOCK.sub(" ", users[-1] if users else ""))
    if not asked:
        return None
    system = [dict(m) for m in messages if m.get("role") == "system"]
    context = "\n".join(f"<DOCUMENT>{document}</DOCUMENT>" for document in documents)
    answers = []
    for number, question in sorted(asked, key=lambda item: int(item[0])):
        alone = [*system, {"role": "user", "content": f"{context}\nQuestion: {question}"}]
        answers.append(
            model_answer(
                alone,
                model=model,
                behaviour=behaviour,
                variation=stable_hash(variation, number),
                explore=explore,
                teaching=Teaching(),
            )
        )
    most = field.get("maxItems")
    if isinstance(most, int):
        answers = answers[:most]
    least = field.get("minItems")
    while isinstance(least, int) and answers and len(answers) < least:
        answers.append(answers[-1])
    return answers


def render_answers(answers: list[str]) -> str:
    """The JSON reply carrying ``answers``."""
    return json.dumps({"answers": answers}, ensure_ascii=False)

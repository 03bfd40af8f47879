"""The prompt a model under evaluation sees: RAFT's training format, so train and test match.

A fine-tuned student learned to read ``<DOCUMENT>`` blocks followed by the question; asking it
in any other shape would measure the prompt change, not the fine-tuning. The user prompt is
built exactly as gorilla's ``raft.py`` (and raftkit's exporters) build it. How long an answer
may grow is decided here too (:func:`default_max_tokens`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from raftkit.llm import ChatMessage
from raftkit.llm.tokens import estimate_tokens
from raftkit.types import ContextDocument, RaftExample

__all__ = [
    "MIN_ANSWER_TOKENS",
    "build_messages",
    "default_max_tokens",
    "render_user_prompt",
]

#: The smallest answer cap :func:`default_max_tokens` derives.
MIN_ANSWER_TOKENS = 256


def default_max_tokens(examples: Iterable[RaftExample], *, factor: float = 2.0) -> int:
    """An answer cap from the reference answers: ``factor`` times the longest reference
    chain-of-thought answer (estimated tokens), at least :data:`MIN_ANSWER_TOKENS`, rounded up
    to a multiple of 64.

    Room enough for a model that reasons at more length than the teacher did, yet a model that
    never stops is cut off after a few hundred tokens instead of filling its context window.
    The estimate is the script-aware one of :func:`~raftkit.llm.tokens.estimate_tokens`; the
    factor covers a student tokenizer that splits more finely.
    """
    longest = max((estimate_tokens(e.cot_answer) for e in examples), default=0)
    wanted = max(MIN_ANSWER_TOKENS, math.ceil(longest * factor))
    return -(-wanted // 64) * 64


def render_user_prompt(
    question: str,
    documents: Sequence[ContextDocument],
    *,
    instruction: str | None = None,
) -> str:
    """The user message: each document's text in ``<DOCUMENT>`` tags on its own line, in
    position order, then the question, then ``instruction`` if given (e.g. how to format the
    answer, for a base model that was never taught the ``<ANSWER>:`` format).
    """
    parts = [
        f"<DOCUMENT>{d.text}</DOCUMENT>\n" for d in sorted(documents, key=lambda d: d.position)
    ]
    parts.append(question)
    if instruction:
        parts.append(f"\n{instruction}")
    return "".join(parts)


def build_messages(
    question: str,
    documents: Sequence[ContextDocument],
    *,
    system_prompt: str | None = None,
    instruction: str | None = None,
) -> list[ChatMessage]:
    """The chat messages for one question: the system prompt (if any) and the user prompt.

    Use the system prompt the fine-tuning rows carried (the exporter's ``system_prompt``).
    """
    messages: list[ChatMessage] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    user = render_user_prompt(question, documents, instruction=instruction)
    messages.append({"role": "user", "content": user})
    return messages

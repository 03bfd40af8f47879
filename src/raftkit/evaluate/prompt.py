"""The prompt a model under evaluation sees: RAFT's training format, so train and test match.

A fine-tuned student learned to read ``<DOCUMENT>`` blocks followed by the question; asking it
in any other shape would measure the prompt change, not the fine-tuning. The user prompt is
built exactly as gorilla's ``raft.py`` (and raftkit's exporters) build it.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftkit.llm import ChatMessage
from raftkit.types import ContextDocument

__all__ = [
    "build_messages",
    "render_user_prompt",
]


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

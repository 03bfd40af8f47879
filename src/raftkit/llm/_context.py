"""Requests that do not fit a model's context window: recognised, trimmed or refused.

A server refuses a chat request whose prompt plus ``max_tokens`` exceeds the model's context
(OpenAI and vLLM: 400 ``context_length_exceeded``, "This model's maximum context length is
4096 tokens. However, you requested 4166 tokens (66 in the messages, 4100 in the
completion)"; llama-cpp-python: "Requested tokens (5000) exceed context window of 4096").
The client learns the window from that message, trims the cap so the request fits, and
sends it once more; a prompt that alone fills the window is refused with
:class:`~raftkit.errors.ContextLengthExceededError` (nothing to trim), which callers record
as the reason the work was skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from raftkit.errors import BadRequestError, ContextLengthExceededError

__all__ = ["ContextOverflow", "context_overflow", "fit_cap", "too_long"]

_WINDOW = (
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),
    re.compile(r"context window of (\d+)", re.IGNORECASE),
    re.compile(r"context length of (\d+)", re.IGNORECASE),
)
_PROMPT = re.compile(r"\((\d+) in the messages", re.IGNORECASE)
#: Tokens left free between the prompt and the window when trimming, for the few tokens by
#: which a server's count of the prompt may differ from ours.
_SLACK = 8
#: The smallest cap worth sending; below it the request is refused instead of trimmed.
MIN_USEFUL_CAP = 16


@dataclass(frozen=True)
class ContextOverflow:
    """What a context-length refusal says: the window and, if given, the prompt's size."""

    window: int
    prompt_tokens: int | None


def context_overflow(error: BadRequestError) -> ContextOverflow | None:
    """The window a 400 names when it is a context-length refusal, else ``None``."""
    message = error.message or ""
    if error.code != "context_length_exceeded" and not any(p.search(message) for p in _WINDOW):
        return None
    for pattern in _WINDOW:
        found = pattern.search(message)
        if found:
            prompt = _PROMPT.search(message)
            return ContextOverflow(int(found.group(1)), int(prompt.group(1)) if prompt else None)
    return None


def fit_cap(window: int, prompt_tokens: int, cap: int | None) -> int | None:
    """``cap`` trimmed so that prompt + cap fits ``window``; ``None`` if nothing useful fits."""
    room = window - prompt_tokens - _SLACK
    if room < MIN_USEFUL_CAP:
        return None
    return room if cap is None else min(cap, room)


def too_long(model: str, window: int, prompt_tokens: int) -> ContextLengthExceededError:
    """The error for a prompt that leaves no room for a reply in ``model``'s window."""
    return ContextLengthExceededError(
        f"the prompt of about {prompt_tokens} tokens leaves no room for a reply in the "
        f"{window}-token context window of {model}: the request was not sent",
        status_code=400,
        code="context_length_exceeded",
        context_window=window,
        prompt_tokens=prompt_tokens,
    )

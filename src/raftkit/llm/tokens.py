"""Token counts: an offline estimate always, exact counts where a vocabulary is available.

The estimate is script-aware: CJK ideographs, kana and Hangul cost about one token each in
OpenAI's vocabularies, while Latin-script words cost about one token per four characters.
A flat "4 characters per token" rule would undercount Chinese text roughly fourfold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

__all__ = [
    "TokenCounter",
    "count_message_tokens",
    "count_tokens",
    "estimate_tokens",
    "exact_counter",
]

# Ideographs, kana, Hangul and full-width forms: each about one token.
_WIDE = (
    "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3200-\u33ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
)
_PIECE = re.compile(rf"[{_WIDE}]|[^\s{_WIDE}\w]|[^\W{_WIDE}]+", re.UNICODE)

# Per-message framing the chat format adds (role markers and separators).
_MESSAGE_OVERHEAD = 4
_REPLY_PRIMING = 3


class TokenCounter(Protocol):
    def __call__(self, text: str) -> int: ...


def estimate_tokens(text: str) -> int:
    """An offline estimate of the tokens ``text`` costs in OpenAI's vocabularies."""
    total = 0
    for piece in _PIECE.findall(text):
        n = len(piece)
        if n == 1:
            total += 1
        else:
            # words: about 4 characters a token, never fewer than one token
            total += max(1, (n + 3) // 4)
    return total


@lru_cache(maxsize=8)
def exact_counter(model: str) -> TokenCounter | None:
    """An exact counter for ``model`` when tiktoken and its vocabulary are available offline."""
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        encoding = tiktoken.encoding_for_model(model)
    except KeyError:
        try:
            encoding = tiktoken.get_encoding("o200k_base")
        except Exception:
            return None
    except Exception:  # vocabulary download failed: we are offline
        return None

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count


def count_tokens(text: str, model: str | None = None) -> int:
    """Exact count where a vocabulary for ``model`` is available, otherwise the estimate."""
    if model is not None:
        counter = exact_counter(model)
        if counter is not None:
            return counter(text)
    return estimate_tokens(text)


def count_message_tokens(messages: Sequence[Mapping[str, Any]], model: str | None = None) -> int:
    """Tokens a list of chat messages costs as a prompt, including the chat framing."""
    total = _REPLY_PRIMING
    for message in messages:
        total += _MESSAGE_OVERHEAD
        content = message.get("content")
        if isinstance(content, str):
            total += count_tokens(content, model)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    total += count_tokens(part["text"], model)
                elif isinstance(part, Mapping) and part.get("type") == "image_url":
                    total += 765  # a high-detail 1024x1024 image tile set, OpenAI's pricing rule
        name = message.get("name")
        if isinstance(name, str):
            total += count_tokens(name, model)
    return total

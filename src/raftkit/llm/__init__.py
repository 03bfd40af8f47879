"""Floor 2: the one request path to OpenAI-shaped REST APIs.

Every call to every endpoint goes through one private request path: budget check, rate-limit
admission, send, classify, retry or raise, reconcile tokens, record usage and cost.

The clients and the limiter/ledger classes are imported on first use, so ``import raftkit``
does not pay for httpx, anyio, tenacity and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from raftkit.llm._base import (
    ChatMessage,
    ChatResponse,
    LLMClient,
    StructuredMode,
    StructuredResponse,
)
from raftkit.llm.tokens import count_message_tokens, count_tokens, estimate_tokens

if TYPE_CHECKING:
    from raftkit.llm._retry import RetryPolicy
    from raftkit.llm._secrets import Secret
    from raftkit.llm._store import Deferred, ResponseStore, request_key
    from raftkit.llm.azure import AzureOpenAIClient, TokenProvider
    from raftkit.llm.limiter import LimiterRegistry, RateLimiter, RateLimits
    from raftkit.llm.openai import OpenAIClient
    from raftkit.llm.usage import ModelPrice, PriceTable, UsageLedger, UsageReport

__all__ = [
    "AzureOpenAIClient",
    "ChatMessage",
    "ChatResponse",
    "Deferred",
    "LLMClient",
    "LimiterRegistry",
    "ModelPrice",
    "OpenAIClient",
    "PriceTable",
    "RateLimiter",
    "RateLimits",
    "ResponseStore",
    "RetryPolicy",
    "Secret",
    "StructuredMode",
    "StructuredResponse",
    "TokenProvider",
    "UsageLedger",
    "UsageReport",
    "count_message_tokens",
    "count_tokens",
    "estimate_tokens",
    "request_key",
]

_LAZY = {
    "AzureOpenAIClient": "raftkit.llm.azure",
    "TokenProvider": "raftkit.llm.azure",
    "OpenAIClient": "raftkit.llm.openai",
    "RetryPolicy": "raftkit.llm._retry",
    "Secret": "raftkit.llm._secrets",
    "Deferred": "raftkit.llm._store",
    "ResponseStore": "raftkit.llm._store",
    "request_key": "raftkit.llm._store",
    "LimiterRegistry": "raftkit.llm.limiter",
    "RateLimiter": "raftkit.llm.limiter",
    "RateLimits": "raftkit.llm.limiter",
    "ModelPrice": "raftkit.llm.usage",
    "PriceTable": "raftkit.llm.usage",
    "UsageLedger": "raftkit.llm.usage",
    "UsageReport": "raftkit.llm.usage",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'raftkit.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

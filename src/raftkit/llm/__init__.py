"""Floor 2: the one request path to OpenAI-shaped REST APIs.

Every call to every endpoint goes through one private request path: budget check, rate-limit
admission, send, classify, retry or raise, reconcile tokens, record usage and cost. Around it:
the clients (OpenAI, Azure OpenAI, Azure's management plane), the journal hook
(:class:`ResponseStore`, :class:`DeferringStore`), the Files API (:mod:`raftkit.llm.files`)
and waiting for long-running work (:mod:`raftkit.llm.polling`).

The clients and the limiter/ledger classes are imported on first use, so ``import raftkit``
does not pay for httpx, anyio, tenacity and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from raftkit.llm._base import (
    ChatMessage,
    ChatParams,
    ChatRequest,
    ChatResponse,
    EndpointIdentity,
    LLMClient,
    RequestActivity,
    RequestOptions,
    StructuredMode,
    StructuredParams,
    StructuredResponse,
    WaitReason,
)
from raftkit.llm.tokens import count_message_tokens, count_tokens, estimate_tokens

if TYPE_CHECKING:
    from raftkit.llm._api_errors import json_of
    from raftkit.llm._retry import RetryPolicy
    from raftkit.llm._secrets import RedactingFilter, Secret, install_log_redaction
    from raftkit.llm._store import (
        Deferred,
        DeferringStore,
        ResponseStore,
        request_key,
        truncation_retry_sample,
    )
    from raftkit.llm._structured import OutputSpec, ask_until_valid, reply_excerpt
    from raftkit.llm._transport import usage_from_body
    from raftkit.llm.azure import AzureOpenAIClient, TokenProvider
    from raftkit.llm.azure_management import AzureAccount, AzureManagementClient
    from raftkit.llm.caps import Cap, CompletionCaps
    from raftkit.llm.files import FileOps, UploadedFile
    from raftkit.llm.limiter import LimiterRegistry, RateLimiter, RateLimits
    from raftkit.llm.openai import OpenAIClient
    from raftkit.llm.polling import PollPolicy, poll_until
    from raftkit.llm.usage import ModelPrice, PriceTable, UsageLedger, UsageReport

__all__ = [
    "AzureAccount",
    "AzureManagementClient",
    "AzureOpenAIClient",
    "Cap",
    "ChatMessage",
    "ChatParams",
    "ChatRequest",
    "ChatResponse",
    "CompletionCaps",
    "Deferred",
    "DeferringStore",
    "EndpointIdentity",
    "FileOps",
    "LLMClient",
    "LimiterRegistry",
    "ModelPrice",
    "OpenAIClient",
    "OutputSpec",
    "PollPolicy",
    "PriceTable",
    "RateLimiter",
    "RateLimits",
    "RedactingFilter",
    "RequestActivity",
    "RequestOptions",
    "ResponseStore",
    "RetryPolicy",
    "Secret",
    "StructuredMode",
    "StructuredParams",
    "StructuredResponse",
    "TokenProvider",
    "UploadedFile",
    "UsageLedger",
    "UsageReport",
    "WaitReason",
    "ask_until_valid",
    "count_message_tokens",
    "count_tokens",
    "estimate_tokens",
    "install_log_redaction",
    "json_of",
    "poll_until",
    "reply_excerpt",
    "request_key",
    "truncation_retry_sample",
    "usage_from_body",
]

_LAZY = {
    "OutputSpec": "raftkit.llm._structured",
    "ask_until_valid": "raftkit.llm._structured",
    "reply_excerpt": "raftkit.llm._structured",
    "Cap": "raftkit.llm.caps",
    "CompletionCaps": "raftkit.llm.caps",
    "json_of": "raftkit.llm._api_errors",
    "usage_from_body": "raftkit.llm._transport",
    "AzureAccount": "raftkit.llm.azure_management",
    "AzureManagementClient": "raftkit.llm.azure_management",
    "FileOps": "raftkit.llm.files",
    "UploadedFile": "raftkit.llm.files",
    "PollPolicy": "raftkit.llm.polling",
    "poll_until": "raftkit.llm.polling",
    "AzureOpenAIClient": "raftkit.llm.azure",
    "TokenProvider": "raftkit.llm.azure",
    "OpenAIClient": "raftkit.llm.openai",
    "RetryPolicy": "raftkit.llm._retry",
    "Secret": "raftkit.llm._secrets",
    "RedactingFilter": "raftkit.llm._secrets",
    "install_log_redaction": "raftkit.llm._secrets",
    "truncation_retry_sample": "raftkit.llm._store",
    "Deferred": "raftkit.llm._store",
    "DeferringStore": "raftkit.llm._store",
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

"""Floor 2: the one request path to OpenAI-shaped REST APIs.

Every call to every endpoint goes through one private request path: budget check, rate-limit
admission, send, classify, retry or raise, reconcile tokens, record usage and cost.
"""

from raftkit.llm._base import (
    ChatMessage,
    ChatResponse,
    LLMClient,
    StructuredMode,
    StructuredResponse,
)
from raftkit.llm.tokens import count_message_tokens, count_tokens, estimate_tokens

__all__ = [
    "ChatMessage",
    "ChatResponse",
    "LLMClient",
    "StructuredMode",
    "StructuredResponse",
    "count_message_tokens",
    "count_tokens",
    "estimate_tokens",
]

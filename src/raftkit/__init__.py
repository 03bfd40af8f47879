"""raftkit: Retrieval-Augmented Fine-Tuning, typed and async-first."""

from raftkit.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    BudgetExceededError,
    ExtractionError,
    InputError,
    QuotaExceededError,
    RaftkitError,
    RateLimitError,
    UsageError,
)
from raftkit.llm import ChatResponse, LLMClient, StructuredResponse
from raftkit.types import Chunk, ContextDocument, Document, PageSpan, Question, RaftExample, Usage

__version__ = "0.1.0.dev0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "BudgetExceededError",
    "ChatResponse",
    "Chunk",
    "ContextDocument",
    "Document",
    "ExtractionError",
    "InputError",
    "LLMClient",
    "PageSpan",
    "Question",
    "QuotaExceededError",
    "RaftExample",
    "RaftkitError",
    "RateLimitError",
    "StructuredResponse",
    "Usage",
    "UsageError",
    "__version__",
]

"""When to retry a failed request and how long to wait: pure functions, no I/O.

The policy follows openai-python's ``_base_client``: the server's ``x-should-retry`` header
wins over the status table; ``retry-after-ms`` then ``retry-after`` (seconds or an HTTP date)
set the wait when it is positive and at most :attr:`RetryPolicy.max_retry_after`; otherwise
the wait is exponential (0.5 s, 1 s, 2 s, ... capped at 8 s) minus up to 25 % jitter.

Some failures are never retried whatever the headers say, because waiting cannot fix them:
``insufficient_quota`` (the account is out of credit), a 429 for a request larger than the
rate limit itself ("Request too large ... Limit 10000, Requested 15000"), and an error whose
body says the server does not support the shape of the request: a field it was sent, or
structured output it cannot do (llama.cpp answers ``json_schema`` with a 500 saying the type
"must be one of 'text' or 'json_object'"; :func:`unsupported_feature`).

How long one attempt may wait for its answer is policy too: :func:`attempt_timeout` sizes the
read timeout by the completion the request asks for.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import httpx

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_READ_TIMEOUT",
    "STRUCTURED_OUTPUT",
    "RetryDecision",
    "RetryPolicy",
    "attempt_timeout",
    "backoff_wait",
    "classify_exception",
    "classify_status",
    "compute_wait",
    "is_request_too_large",
    "parse_retry_after",
    "unsupported_feature",
]

_RETRY_STATUSES = frozenset({408, 409, 429})
_NEVER_CODES = frozenset({"insufficient_quota"})
_LIMIT_REQUESTED = re.compile(r"limit:?\s*(\d+)\s*,\s*requested:?\s*(\d+)", re.IGNORECASE)

#: What :func:`unsupported_feature` returns when the server refuses structured output.
STRUCTURED_OUTPUT = "response_format"
# Words naming structured output in servers' refusals (llama.cpp, llama-cpp-python, vLLM,
# TGI, LM Studio, Groq, Ollama all name one of these).
_STRUCTURED_TERMS = re.compile(
    r"response_format|json_schema|json_object|guided_json|structured output", re.IGNORECASE
)
# How servers say no to a field or value: FastAPI/pydantic ("Input should be 'text' or
# 'json_object'", "Extra inputs are not permitted"), serde ("unknown variant"), and prose.
_REFUSAL = re.compile(
    r"not supported|unsupported|not support|must be|should be|unknown variant|unknown field|"
    r"invalid|not allowed|not permitted|unrecogni[sz]ed|not implemented|cannot be used|"
    r"expected",
    re.IGNORECASE,
)
# Fields too common in other messages to say anything about the request's shape.
_GENERIC_FIELDS = frozenset({"model", "messages", "input", "stream", "n"})
# Statuses that mean something else whatever the body says.
_NOT_SHAPE_STATUSES = frozenset({401, 403, 404, 408, 409, 429})

#: Seconds to open a connection.
CONNECT_TIMEOUT = 10.0
#: The longest an attempt waits for its answer unless told otherwise (a request without
#: ``max_tokens``, which may generate until the model's context is full).
MAX_READ_TIMEOUT = 600.0
# The proportionate read timeout: a floor for the server to start (model swapped in, a
# queue ahead of us), plus the prompt read at a slow prefill rate, plus the completion at
# a slow decoding rate (a CPU server with a 7B model makes about 5 tokens/s).
_READ_FLOOR = 60.0
_SLOW_PREFILL_PER_S = 500.0
_SLOW_DECODE_PER_S = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """How persistently one request is retried.

    ``max_attempts`` counts every call, the first included (``1`` disables retries).
    ``deadline`` bounds one request end to end in seconds: rate-limit admission, every
    attempt and every wait; ``None`` leaves only the per-attempt timeout.
    """

    max_attempts: int = 6
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    deadline: float | None = 1800.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be positive or None")


@dataclass(frozen=True)
class RetryDecision:
    """The classification of one failed attempt."""

    retry: bool
    reason: str
    server_wait: float | None = None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, else ``retry-after`` (number or date).

    ``headers`` must be case-insensitive (``httpx.Headers``) or use lower-case names.
    Negative values (a date in the past) are returned as they are; callers ignore them.
    """
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if math.isnan(value):
            continue
        return value / divisor
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        when = email.utils.mktime_tz(parsed)
    except (TypeError, ValueError, OverflowError):
        return None
    return float(when) - (time.time() if now is None else now)


def is_request_too_large(message: str | None) -> bool:
    """Whether a 429 message says the request can never fit the limit, so waiting is useless."""
    if not message:
        return False
    if "request too large" in message.lower():
        return True
    match = _LIMIT_REQUESTED.search(message)
    return bool(match and int(match.group(2)) > int(match.group(1)))


def unsupported_feature(
    status_code: int, message: str | None, sent_fields: Collection[str] = ()
) -> str | None:
    """The part of the request an error response says the server does not support, if any.

    :data:`STRUCTURED_OUTPUT` when the message refuses structured output (it names
    ``response_format``, ``json_schema``, ``json_object`` or ``guided_json``), else the first
    of ``sent_fields`` (the request body's top-level fields) it refuses, else ``None``. A
    refusal names the feature *and* says no ("not supported", "must be", "should be",
    "unknown variant", "invalid", ...), so a 5xx that merely mentions a word is still
    retried. Statuses with their own meaning (401, 403, 404, 408, 409, 429) never count.
    """
    if not message or status_code < 400 or status_code in _NOT_SHAPE_STATUSES:
        return None
    if not _REFUSAL.search(message):
        return None
    if _STRUCTURED_TERMS.search(message):
        return STRUCTURED_OUTPUT
    for field in sent_fields:
        if field in _GENERIC_FIELDS or not field:
            continue
        if re.search(rf"(?<![\w-]){re.escape(field)}(?![\w-])", message, re.IGNORECASE):
            return field
    return None


def classify_status(
    status_code: int,
    headers: Mapping[str, str],
    *,
    policy: RetryPolicy,
    error_code: str | None = None,
    error_type: str | None = None,
    message: str | None = None,
    sent_fields: Collection[str] = (),
    now: float | None = None,
) -> RetryDecision:
    """Whether an error response is worth another attempt, and the wait the server asked for.

    ``sent_fields`` are the top-level fields of the request body, for recognising a refusal
    of one of them (:func:`unsupported_feature`).
    """
    server_wait = parse_retry_after(headers, now=now)
    if error_code in _NEVER_CODES or error_type in _NEVER_CODES:
        return RetryDecision(False, "insufficient_quota: the account is out of credit", server_wait)
    if status_code == 429 and is_request_too_large(message):
        return RetryDecision(False, "the request is larger than the rate limit", server_wait)
    feature = unsupported_feature(status_code, message, sent_fields)
    if feature is not None:
        return RetryDecision(
            False, f"the server does not support this request's {feature}", server_wait
        )
    if server_wait is not None and server_wait > policy.max_retry_after:
        return RetryDecision(
            False,
            f"the server asks to wait {server_wait:.0f} s, more than max_retry_after",
            server_wait,
        )
    should = (headers.get("x-should-retry") or "").strip().lower()
    if should == "true":
        return RetryDecision(True, "x-should-retry: true", server_wait)
    if should == "false":
        return RetryDecision(False, "x-should-retry: false", server_wait)
    if status_code in _RETRY_STATUSES or status_code >= 500:
        return RetryDecision(True, f"status {status_code}", server_wait)
    return RetryDecision(False, f"status {status_code}", server_wait)


def classify_exception(exc: BaseException) -> RetryDecision:
    """Whether a transport failure (no response) is worth another attempt."""
    if isinstance(exc, httpx.TimeoutException):
        return RetryDecision(True, "timeout")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        return RetryDecision(True, "connection error")
    return RetryDecision(False, type(exc).__name__)


def backoff_wait(policy: RetryPolicy, attempt: int, random: Callable[[], float]) -> float:
    """Exponential backoff after failed attempt number ``attempt`` (1-based), minus jitter."""
    exponent = min(max(attempt - 1, 0), 1000)  # keeps pow() finite
    base = min(policy.initial_delay * math.pow(2.0, exponent), policy.max_delay)
    return max(0.0, base * (1.0 - policy.jitter * random()))


def compute_wait(
    policy: RetryPolicy,
    *,
    attempt: int,
    server_wait: float | None,
    random: Callable[[], float],
) -> float:
    """Seconds to wait after failed attempt ``attempt``: the server's wait, else backoff."""
    if server_wait is not None and 0 < server_wait <= policy.max_retry_after:
        return server_wait
    return backoff_wait(policy, attempt, random)


def attempt_timeout(max_tokens: int | None, prompt_tokens: int = 0) -> httpx.Timeout:
    """The default timeout of one chat attempt, proportionate to what it asks for.

    The read timeout (the longest wait for the answer, which a non-streamed completion sends
    all at once) is a floor of 60 s, plus the prompt at 500 tokens/s, plus ``max_tokens`` at
    5 tokens/s: what a slow CPU server needs, and far less than the fixed 600 s a server
    that accepts a request and never answers used to cost. Without ``max_tokens`` the
    completion is unbounded, and so is the wait, up to :data:`MAX_READ_TIMEOUT`; it never
    exceeds that either way. Time queued in raftkit's own rate limiter does not count: the
    timeout starts when the request is sent.
    """
    if max_tokens is None:
        read = MAX_READ_TIMEOUT
    else:
        read = (
            _READ_FLOOR
            + max(0, prompt_tokens) / _SLOW_PREFILL_PER_S
            + max(0, max_tokens) / _SLOW_DECODE_PER_S
        )
        read = min(MAX_READ_TIMEOUT, read)
    return httpx.Timeout(read, connect=CONNECT_TIMEOUT)

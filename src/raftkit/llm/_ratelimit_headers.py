"""Reading the rate-limit headers OpenAI and Azure OpenAI put on every response.

OpenAI sends ``x-ratelimit-limit-requests``/``-tokens`` (the budget per minute),
``x-ratelimit-remaining-*`` (what is left now) and ``x-ratelimit-reset-*`` (how long until the
bucket is full again, as a Go-style duration such as ``6m0s``, ``1m7.5s`` or ``20ms``). Azure
sends the ``remaining`` pair and sometimes only ``retry-after``/``retry-after-ms`` on a 429.
Anything unparsable is ignored: a malformed header must never fail a paid call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RateLimitHeaders", "parse_duration", "parse_rate_limit_headers", "parse_retry_after"]

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_COMPONENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")


def parse_duration(value: str) -> float | None:
    """Seconds in a duration header: ``6m0s``, ``1m7.5s``, ``20ms``, ``1s``, ``2h``, ``0.5``.

    Returns ``None`` for anything else (negative, empty, garbage).
    """
    text = value.strip().lower()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    pos = 0
    total = 0.0
    for match in _COMPONENT.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        return None
    return total


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # a plain dict is not case-insensitive the way httpx.Headers is
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait in seconds: ``retry-after-ms`` first, then ``retry-after``.

    An HTTP-date ``retry-after`` is not supported (OpenAI and Azure send seconds) and yields
    ``None``.
    """
    ms = _number(_get(headers, "retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    return _number(_get(headers, "retry-after"))


@dataclass(frozen=True)
class RateLimitHeaders:
    """What a response's headers say about the account's budget; ``None`` where absent."""

    limit_requests: float | None = None
    limit_tokens: float | None = None
    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None
    retry_after: float | None = None

    @property
    def empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.limit_requests,
                self.limit_tokens,
                self.remaining_requests,
                self.remaining_tokens,
                self.reset_requests,
                self.reset_tokens,
                self.retry_after,
            )
        )


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitHeaders:
    """Parse the ``x-ratelimit-*`` and ``retry-after*`` headers of one response."""

    def duration(name: str) -> float | None:
        raw = _get(headers, name)
        return None if raw is None else parse_duration(raw)

    return RateLimitHeaders(
        limit_requests=_number(_get(headers, "x-ratelimit-limit-requests")),
        limit_tokens=_number(_get(headers, "x-ratelimit-limit-tokens")),
        remaining_requests=_number(_get(headers, "x-ratelimit-remaining-requests")),
        remaining_tokens=_number(_get(headers, "x-ratelimit-remaining-tokens")),
        reset_requests=duration("x-ratelimit-reset-requests"),
        reset_tokens=duration("x-ratelimit-reset-tokens"),
        retry_after=parse_retry_after(headers),
    )

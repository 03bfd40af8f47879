"""Parsing the rate-limit headers of OpenAI and Azure OpenAI responses (table-driven)."""

from __future__ import annotations

import httpx
import pytest

from raftkit.llm._ratelimit_headers import (
    RateLimitHeaders,
    parse_duration,
    parse_rate_limit_headers,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1m7.5s", 67.5),
        ("20ms", 0.02),
        ("1s", 1.0),
        ("0s", 0.0),
        ("2h", 7200.0),
        ("1h2m3s", 3723.0),
        ("1.5s", 1.5),
        ("250us", 0.00025),
        ("17", 17.0),
        ("0.25", 0.25),
        (" 3s ", 3.0),
        ("", None),
        ("soon", None),
        ("-1s", None),
        ("-5", None),
        ("5x", None),
        ("s", None),
        ("1m 2s", None),
        ("nan", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    result = parse_duration(text)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after-ms": "junk", "retry-after": "3"}, 3.0),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers) == seconds


def test_openai_headers() -> None:
    headers = httpx.Headers(
        {
            "X-RateLimit-Limit-Requests": "10000",
            "X-RateLimit-Limit-Tokens": "2000000",
            "X-RateLimit-Remaining-Requests": "9999",
            "X-RateLimit-Remaining-Tokens": "1999000",
            "X-RateLimit-Reset-Requests": "6ms",
            "X-RateLimit-Reset-Tokens": "1m7.5s",
        }
    )
    assert parse_rate_limit_headers(headers) == RateLimitHeaders(
        limit_requests=10000,
        limit_tokens=2000000,
        remaining_requests=9999,
        remaining_tokens=1999000,
        reset_requests=0.006,
        reset_tokens=67.5,
    )


def test_azure_headers_carry_only_what_remains() -> None:
    parsed = parse_rate_limit_headers(
        {"x-ratelimit-remaining-requests": "59", "x-ratelimit-remaining-tokens": "59000"}
    )
    assert parsed.limit_requests is None
    assert parsed.remaining_tokens == 59000
    assert not parsed.empty


def test_garbage_is_ignored() -> None:
    parsed = parse_rate_limit_headers(
        {"x-ratelimit-limit-requests": "lots", "x-ratelimit-reset-tokens": "later"}
    )
    assert parsed.empty
    assert parse_rate_limit_headers({}).empty

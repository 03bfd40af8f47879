"""The retry policy as pure functions: classification and the wait, table-driven."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from raftkit.llm._retry import (
    MAX_READ_TIMEOUT,
    STRUCTURED_OUTPUT,
    RetryPolicy,
    attempt_timeout,
    backoff_wait,
    classify_exception,
    classify_status,
    compute_wait,
    is_request_too_large,
    parse_retry_after,
    unsupported_feature,
)

POLICY = RetryPolicy()
NOW = 1_700_000_000.0
HTTP_DATE_IN_30S = email.utils.formatdate(NOW + 30, usegmt=True)
HTTP_DATE_IN_PAST = email.utils.formatdate(NOW - 30, usegmt=True)

# status, headers, error code, message, attempt -> None (no retry) or (min wait, max wait)
Case = tuple[str, int, dict[str, str], str | None, str | None, int, tuple[float, float] | None]
CASES: list[Case] = [
    ("408 backoff 1st", 408, {}, None, None, 1, (0.375, 0.5)),
    ("409 backoff 2nd", 409, {}, None, None, 2, (0.75, 1.0)),
    ("429 rate limit backoff 3rd", 429, {}, "rate_limit_exceeded", None, 3, (1.5, 2.0)),
    ("500 backoff 4th", 500, {}, None, None, 4, (3.0, 4.0)),
    ("502 backoff capped", 502, {}, None, None, 5, (6.0, 8.0)),
    ("503 backoff stays capped", 503, {}, None, None, 30, (6.0, 8.0)),
    ("504 huge attempt no overflow", 504, {}, None, None, 5000, (6.0, 8.0)),
    (
        "429 retry-after-ms",
        429,
        {"retry-after-ms": "250"},
        "rate_limit_exceeded",
        None,
        1,
        (0.25, 0.25),
    ),
    (
        "retry-after-ms wins over retry-after",
        429,
        {"retry-after-ms": "1500", "retry-after": "9"},
        None,
        None,
        1,
        (1.5, 1.5),
    ),
    ("429 retry-after seconds", 429, {"retry-after": "7"}, None, None, 1, (7.0, 7.0)),
    ("retry-after fractional", 503, {"retry-after": "2.5"}, None, None, 1, (2.5, 2.5)),
    ("retry-after http date", 503, {"retry-after": HTTP_DATE_IN_30S}, None, None, 1, (29.0, 31.0)),
    (
        "retry-after date in past -> backoff",
        503,
        {"retry-after": HTTP_DATE_IN_PAST},
        None,
        None,
        1,
        (0.375, 0.5),
    ),
    ("retry-after zero -> backoff", 429, {"retry-after": "0"}, None, None, 2, (0.75, 1.0)),
    ("retry-after garbage -> backoff", 500, {"retry-after": "soon"}, None, None, 1, (0.375, 0.5)),
    ("retry-after at the cap", 429, {"retry-after": "60"}, None, None, 1, (60.0, 60.0)),
    ("retry-after beyond the cap", 429, {"retry-after": "3600"}, None, None, 1, None),
    ("x-should-retry true on 400", 400, {"x-should-retry": "true"}, None, None, 1, (0.375, 0.5)),
    ("x-should-retry false on 500", 500, {"x-should-retry": "false"}, None, None, 1, None),
    ("x-should-retry false on 429", 429, {"x-should-retry": "false"}, None, None, 1, None),
    ("400 never", 400, {}, None, None, 1, None),
    ("401 never", 401, {}, None, None, 1, None),
    ("403 never", 403, {}, None, None, 1, None),
    ("404 never", 404, {}, None, None, 1, None),
    ("422 never", 422, {}, None, None, 1, None),
    ("insufficient_quota never", 429, {}, "insufficient_quota", None, 1, None),
    (
        "insufficient_quota beats x-should-retry",
        429,
        {"x-should-retry": "true"},
        "insufficient_quota",
        None,
        1,
        None,
    ),
    (
        "request too large never",
        429,
        {"retry-after": "1"},
        "rate_limit_exceeded",
        "Request too large for gpt-4o in organization org-x on tokens per min (TPM): "
        "Limit 30000, Requested 45000.",
        1,
        None,
    ),
    (
        "requested above limit never",
        429,
        {},
        "rate_limit_exceeded",
        "Rate limit reached on tokens per min (TPM): Limit 1000, Requested 1200.",
        1,
        None,
    ),
    (
        "requested within limit retried",
        429,
        {"retry-after-ms": "20"},
        "rate_limit_exceeded",
        "Rate limit reached on tokens per min (TPM): Limit 1000, Used 990, Requested 50.",
        1,
        (0.02, 0.02),
    ),
]


@pytest.mark.parametrize(
    ("status", "headers", "code", "message", "attempt", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_wait_table(
    status: int,
    headers: dict[str, str],
    code: str | None,
    message: str | None,
    attempt: int,
    expected: tuple[float, float] | None,
    draw: float,
) -> None:
    verdict = classify_status(
        status, httpx.Headers(headers), policy=POLICY, error_code=code, message=message, now=NOW
    )
    if expected is None:
        assert not verdict.retry, verdict.reason
        return
    assert verdict.retry, verdict.reason
    wait = compute_wait(
        POLICY, attempt=attempt, server_wait=verdict.server_wait, random=lambda: draw
    )
    low, high = expected
    assert low - 1e-9 <= wait <= high + 1e-9


def test_jitter_takes_up_to_a_quarter_off() -> None:
    assert backoff_wait(POLICY, 3, lambda: 0.0) == pytest.approx(2.0)
    assert backoff_wait(POLICY, 3, lambda: 1.0) == pytest.approx(1.5)


def test_custom_policy_shapes_the_backoff() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=3.0, jitter=0.0, max_retry_after=5.0)
    assert [backoff_wait(policy, n, lambda: 0.7) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]
    assert not classify_status(429, {"retry-after": "6"}, policy=policy).retry
    assert classify_status(429, {"retry-after": "5"}, policy=policy).server_wait == 5.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after-ms": "1200"}, 1.2),
        ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),  # a date, checked below
        ({"retry-after": ""}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    value = parse_retry_after(httpx.Headers(headers), now=NOW)
    if "Wed" in headers.get("retry-after", ""):
        assert value is not None
        assert value < 0  # long past
    else:
        assert value == expected


@pytest.mark.parametrize(
    ("message", "too_large"),
    [
        (None, False),
        ("Rate limit reached for requests", False),
        ("REQUEST TOO LARGE for model", True),
        ("Limit: 100, Requested: 101", True),
        ("Limit 100, Requested 100", False),
    ],
)
def test_request_too_large(message: str | None, too_large: bool) -> None:
    assert is_request_too_large(message) is too_large


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.ConnectTimeout("slow"), True),
        (httpx.ReadError("reset"), True),
        (httpx.RemoteProtocolError("closed"), True),
        (httpx.UnsupportedProtocol("ftp"), False),
        (httpx.LocalProtocolError("bad header"), False),
    ],
)
def test_classify_exception(exc: Exception, retry: bool) -> None:
    assert classify_exception(exc).retry is retry


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"jitter": 1.5}, {"initial_delay": -1}, {"deadline": 0}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# What servers answer when they cannot do what was asked: (status, message) -> feature.
LLAMA_CPP = 'response_format type must be one of "text" or "json_object", but got: json_schema'
LLAMA_CPP_PYTHON = (
    "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}]"
)
REFUSALS: list[tuple[str, int, str, str | None]] = [
    ("llama.cpp server 500", 500, LLAMA_CPP, STRUCTURED_OUTPUT),
    ("llama-cpp-python 500", 500, LLAMA_CPP_PYTHON, STRUCTURED_OUTPUT),
    (
        "vLLM 400 (pydantic)",
        400,
        "1 validation error: response_format.type Input should be 'text' or 'json_object'",
        STRUCTURED_OUTPUT,
    ),
    (
        "TGI 422 (serde)",
        422,
        "Failed to deserialize the JSON body into the target type: response_format: unknown "
        "variant `json_schema`, expected `json` or `regex`",
        STRUCTURED_OUTPUT,
    ),
    (
        "LM Studio 400",
        400,
        "'response_format.type' must be 'json_schema' or 'text'",
        "response_format",
    ),
    (
        "Groq 400",
        400,
        "response_format` json_schema is not supported with this model",
        "response_format",
    ),
    ("a 501", 501, "guided_json is not implemented", STRUCTURED_OUTPUT),
    ("plain 500", 500, "Internal server error", None),
    ("overloaded 503", 503, "The engine is overloaded, try again", None),
    ("500 naming but not refusing", 500, "error while generating json_object output", None),
    ("llama.cpp grammar failure", 500, "output does not match the expected peg format", None),
    ("429 never a shape refusal", 429, "response_format is not supported", None),
    ("401 never a shape refusal", 401, "invalid api key for response_format", None),
    ("2xx is no refusal", 200, "response_format must be", None),
    ("no message", 500, "", None),
]


@pytest.mark.parametrize(
    ("status", "message", "feature"), [pytest.param(*c[1:], id=c[0]) for c in REFUSALS]
)
def test_unsupported_feature_is_recognised(status: int, message: str, feature: str | None) -> None:
    assert unsupported_feature(status, message) == feature
    verdict = classify_status(status, {}, policy=POLICY, message=message)
    if feature is not None:
        assert not verdict.retry  # never retried, not even a 5xx
        assert feature in verdict.reason
    elif status >= 500:
        assert verdict.retry


def test_a_refused_field_of_the_request_is_named() -> None:
    fields = ["model", "messages", "seed", "stop", "max_completion_tokens"]
    assert unsupported_feature(500, "Unsupported parameter: 'seed'", fields) == "seed"
    assert unsupported_feature(500, "seed is not supported by this backend", fields) == "seed"
    # words that merely contain a field name, and the generic fields, do not count
    assert unsupported_feature(500, "invalid state: the seedling stopped", fields) is None
    assert unsupported_feature(500, "invalid model weights file", fields) is None
    assert unsupported_feature(500, "seed is not supported", ["model"]) is None
    verdict = classify_status(
        500, {"x-should-retry": "true"}, policy=POLICY, message="'stop' is not supported",
        sent_fields=fields,
    )  # fmt: skip
    assert not verdict.retry
    assert "stop" in verdict.reason


@pytest.mark.parametrize(
    ("max_tokens", "prompt", "read"),
    [
        (None, 0, MAX_READ_TIMEOUT),  # unbounded completion: the longest wait
        (None, 50_000, MAX_READ_TIMEOUT),
        (0, 0, 60.0),  # the floor
        (400, 2_000, 60.0 + 4.0 + 80.0),
        (1024, 0, 60.0 + 204.8),
        (100_000, 0, MAX_READ_TIMEOUT),  # never more than the old fixed timeout
    ],
)
def test_attempt_timeout_is_proportionate(max_tokens: int | None, prompt: int, read: float) -> None:
    timeout = attempt_timeout(max_tokens, prompt)
    assert timeout.read == pytest.approx(read)
    assert timeout.connect == 10.0
    assert timeout.write is not None

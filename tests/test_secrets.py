"""The API key never shows: not in logs, exception messages, reprs, args or error bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from raftkit.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    InternalServerError,
    RaftkitError,
    RateLimitError,
    StructuredOutputError,
)
from raftkit.llm import AzureOpenAIClient, OpenAIClient, RetryPolicy, Secret
from raftkit.llm._secrets import redact, redact_url
from raftkit.testing import Fault, Simulator

pytestmark = pytest.mark.anyio

CANARY = "sk-raftkit-SECRET-CANARY-0123456789"
AZURE_CANARY = "0123456789abcdefSECRETCANARYazure"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002, deadline=30)
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "raftkit", "raftkit.llm", "uvicorn", ""):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    records = caplog.get_records("setup") + caplog.get_records("call")
    for record in records:
        text = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        assert CANARY not in text, record
        assert AZURE_CANARY not in text, record
    assert records  # httpx/raftkit did log: the check above looked at something


def exception_texts(exc: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(vars(current)) if hasattr(current, "__dict__") else ""
        if isinstance(current, APIStatusError):
            yield json.dumps(current.body, default=str)
        if isinstance(current, APIError):
            yield f"{current.message} {current.url} {current.method}"
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)


def assert_clean(*things: Any) -> None:
    for thing in things:
        texts = exception_texts(thing) if isinstance(thing, BaseException) else [repr(thing)]
        for text in texts:
            assert CANARY not in text
            assert AZURE_CANARY not in text


def echoing_server(status: int, *, echo_in_message: bool = True) -> Callable[..., Any]:
    """A server that repeats the credential it was sent, as careless gateways do."""

    def handler(request: httpx.Request) -> httpx.Response:
        sent = request.headers.get("authorization", "") + request.headers.get("api-key", "")
        message = f"Incorrect API key provided: {sent}" if echo_in_message else "error"
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "code": None,
                "param": sent,
            }
        }
        return httpx.Response(status, json=body, headers={"x-request-id": "req_secret"})

    return handler


def mock_client(handler: Callable[..., Any], **kwargs: Any) -> OpenAIClient:
    return OpenAIClient(
        api_key=CANARY,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        retry=FAST,
        **kwargs,
    )


@pytest.mark.raftkit_simulator(api_key=CANARY)
async def test_success_and_failures_against_the_simulator(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with OpenAIClient(api_key=CANARY, base_url=sim.base_url, retry=FAST) as client:
        assert_clean(client, vars(client))
        response = await client.chat(MESSAGES, model="gpt-4o-mini")
        assert_clean(response)
        await client.embed(["a"], model="text-embedding-3-small")
        sim.add_fault(Fault.rate_limited(0.001), times=FAST.max_attempts)
        with pytest.raises(RateLimitError) as limited:
            await client.chat(MESSAGES, model="gpt-4o-mini")
        sim.add_fault(Fault.error(500), times=FAST.max_attempts)
        with pytest.raises(InternalServerError) as internal:
            await client.chat(MESSAGES, model="gpt-4o-mini")
        sim.add_fault(Fault.drop(), times=FAST.max_attempts)
        with pytest.raises(APIConnectionError) as dropped:
            await client.chat(MESSAGES, model="gpt-4o-mini")
    assert_clean(limited.value, internal.value, dropped.value)
    async with OpenAIClient(
        api_key=CANARY, base_url=sim.base_url, retry=FAST, timeout=0.2
    ) as client:
        sim.add_fault(Fault.timeout(5.0), times=FAST.max_attempts)
        with pytest.raises(APITimeoutError) as timed_out:
            await client.chat(MESSAGES, model="gpt-4o-mini")
    assert_clean(timed_out.value)


@pytest.mark.raftkit_simulator(api_key=AZURE_CANARY)
async def test_azure_with_key_and_token_provider(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint, api_key=AZURE_CANARY, api_version="2024-10-21", retry=FAST
    ) as client:
        assert_clean(client, vars(client))
        await client.chat(MESSAGES, model="gpt-4o-mini")
        sim.add_fault(Fault.error(503), times=FAST.max_attempts)
        with pytest.raises(InternalServerError) as failed:
            await client.chat(MESSAGES, model="gpt-4o-mini")
    assert_clean(failed.value)
    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint, token_provider=lambda: AZURE_CANARY, v1=True, retry=FAST
    ) as client:
        assert_clean(client, vars(client))
        await client.chat(MESSAGES, model="gpt-4o-mini")
    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint, token_provider=lambda: CANARY, v1=True, retry=FAST
    ) as client:
        with pytest.raises(AuthenticationError) as denied:
            await client.chat(MESSAGES, model="gpt-4o-mini")
    assert_clean(denied.value)


async def test_an_echoed_key_is_redacted_from_errors() -> None:
    async with mock_client(echoing_server(401)) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.chat(MESSAGES, model="m")
    assert_clean(caught.value)
    assert "***" in caught.value.message
    assert caught.value.request_id == "req_secret"
    azure = AzureOpenAIClient(
        endpoint="https://r.openai.azure.com",
        api_key=AZURE_CANARY,
        api_version="2024-10-21",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(echoing_server(403))),
    )
    async with azure:
        with pytest.raises(APIStatusError) as forbidden:
            await azure.chat(MESSAGES, model="dep")
    assert_clean(forbidden.value)


async def test_connection_errors_that_mention_the_key_are_redacted() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"proxy said no to {request.headers['authorization']}")

    async with mock_client(broken) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.chat(MESSAGES, model="m")
    assert "***" in caught.value.message
    assert isinstance(caught.value.__cause__, httpx.ConnectError)  # kept, redacted
    assert_clean(caught.value)


async def test_structured_output_failure_is_clean() -> None:
    class Out(BaseModel):
        n: int

    def answer(request: httpx.Request) -> httpx.Response:
        content = "not json"
        body = {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
        return httpx.Response(200, json=body)

    async with mock_client(answer) as client:
        with pytest.raises(StructuredOutputError) as caught:
            await client.chat_structured(MESSAGES, Out, model="m", max_attempts=2)
    assert_clean(caught.value)
    logging.getLogger("raftkit.llm").debug("structured output failed: %s", caught.value)


def test_secret_wrapper_never_shows_its_value() -> None:
    secret = Secret(CANARY)
    assert repr(secret) == "***"
    assert str(secret) == "***"
    assert f"{secret}" == "***"
    assert f"{secret!r}" == "***"
    assert secret.get_secret_value() == CANARY
    assert secret == Secret(CANARY)
    assert Secret(secret).get_secret_value() == CANARY
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)
    logging.getLogger("raftkit.llm").debug("secret is %s / %r", secret, secret)


@pytest.mark.parametrize(
    "url",
    [
        f"https://r.openai.azure.com/openai/deployments/d/chat?api-version=1&api-key={CANARY}",
        f"https://blob.core.windows.net/c/f.jsonl?sv=2022&sig={CANARY}&se=2030",
        f"https://x.test/v1?token={CANARY}",
        f"https://x.test/v1?KEY={CANARY}",
        f"https://user:{CANARY}@x.test/v1",
    ],
)
def test_urls_are_redacted(url: str) -> None:
    safe = redact_url(url)
    assert CANARY not in safe
    assert "***" in safe
    assert CANARY not in redact(f"GET {url} failed")
    logging.getLogger("raftkit.llm").debug("checked %s", safe)


def test_text_redaction_catches_key_shapes() -> None:
    assert CANARY not in redact(f"Incorrect API key provided: {CANARY}")
    assert "abc.def.ghi-jkl" not in redact("Authorization: Bearer abc.def.ghi-jkl")
    assert redact("my-token-value is here", ["my-token-value"]) == "*** is here"
    assert isinstance(RaftkitError("x"), Exception)
    logging.getLogger("raftkit.llm").debug("redaction checked")

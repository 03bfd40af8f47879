"""The API key never shows: not in logs, exception messages, reprs, args or error bodies."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from raftkit.cli import main
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
from raftkit.llm import (
    AzureOpenAIClient,
    OpenAIClient,
    RedactingFilter,
    RetryPolicy,
    Secret,
    install_log_redaction,
)
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


# ---------------------------------------------------------------- credentials in base URLs


def answering(seen: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
        }
        if request.url.path.endswith("/missing/chat/completions"):
            return httpx.Response(404, json={"error": {"message": f"no route {request.url}"}})
        return httpx.Response(200, json=body)

    return handler


@pytest.mark.parametrize(
    "base_url",
    [
        f"https://user:{CANARY}@gateway.test/v1",
        f"https://{CANARY}@gateway.test/v1",
        f"https://gateway.test/v1?api-key={CANARY}",
        f"https://gateway.test/v1?foo=bar&api-key={CANARY}",
    ],
)
async def test_a_key_in_the_base_url_stays_out_of_logs_errors_and_reprs(
    base_url: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    redaction = install_log_redaction()
    seen: list[httpx.Request] = []
    try:
        async with OpenAIClient(
            base_url=base_url,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(answering(seen))),
            retry=FAST,
        ) as client:
            await client.chat(MESSAGES, model="m")
            assert_clean(client, vars(client), client.base_url)
            assert client.limiters is not None
            limiters = client.limiters.limiters()
            assert_clean(*limiters, *limiters.values(), *(x.stats() for x in limiters.values()))
            broken = client.with_store(MemoryStore())
            broken._transport.base_url += "missing/"
            with pytest.raises(APIStatusError) as caught:
                await broken.chat(MESSAGES, model="m")
            logging.getLogger("raftkit.llm").warning("a failure: %s", caught.value)
        assert_clean(caught.value)
    finally:
        redaction.remove()
    # the key still went where the gateway wants it: a Basic credential or the query
    sent = seen[0]
    assert sent.url.path == "/v1/chat/completions"
    if "?" in base_url:
        assert sent.url.params["api-key"] == CANARY
    else:
        assert CANARY in base64.b64decode(sent.headers["authorization"][6:]).decode()
    # httpx did log the request line, and the filter cleaned it
    lines = [r.getMessage() for r in debug_logs.records if r.name == "httpx"]
    assert any("HTTP Request: POST https://" in line and "***" in line for line in lines)


def test_the_log_filter_cleans_messages_arguments_and_tracebacks(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    redaction = install_log_redaction(lambda: ["my-rotating-token-42"])
    log = logging.getLogger("somewhere.else")
    try:
        log.info("calling %s with %s", f"https://u:{CANARY}@h/v1", "my-rotating-token-42")
        try:
            raise RuntimeError(f"failed at https://h/v1?key={AZURE_CANARY}")
        except RuntimeError:
            log.exception("boom")
        log.info("nothing secret here: %d", 42)
    finally:
        redaction.remove()
    records = [r for r in debug_logs.records if r.name == "somewhere.else"]
    assert "***" in records[0].getMessage()
    assert "my-rotating-token-42" not in records[0].getMessage()
    assert records[1].exc_text is not None
    assert "RuntimeError" in records[1].exc_text
    assert AZURE_CANARY not in records[1].exc_text
    assert records[2].getMessage() == "nothing secret here: 42"
    assert records[2].args == (42,)  # untouched when there is nothing to hide
    # removed: a later record is no longer rewritten
    log.info("after %s", "my-rotating-token-42")
    assert debug_logs.records[-1].getMessage() == "after my-rotating-token-42"


@pytest.mark.raftkit_simulator
def test_the_command_line_keeps_a_base_url_key_out_of_its_verbose_log(
    raftkit_simulator: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    sim = raftkit_simulator
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bats.txt").write_text(
        "Bats are the only mammals capable of true and sustained flight. " * 20, encoding="utf-8"
    )
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", sim.api_key)
    run = tmp_path / "run"
    argv = ["-vv", "generate", str(docs), "--out", str(run), "--questions", "1"]
    argv += ["--base-url", f"{sim.base_url}?api-key={CANARY}"]
    assert main(argv) == 0
    # the command took its filter off again
    for where in (*logging.getLogger().handlers, logging.getLogger("httpx")):
        assert not any(isinstance(f, RedactingFilter) for f in where.filters)
    captured = capsys.readouterr()
    assert CANARY not in captured.out + captured.err
    for path in run.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    lines = [r.getMessage() for r in debug_logs.records if r.name == "httpx"]
    assert any("api-key=***" in line for line in lines)
    # the key did reach the server, where it belongs
    assert any(r.query.get("api-key") == CANARY for r in sim.requests)


class MemoryStore:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        return self.items.get(key)

    async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        self.items[key] = response

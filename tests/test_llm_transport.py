"""The request path with httpx.MockTransport: retries, idempotency, errors, limiter and ledger."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

import anyio
import httpx
import pytest

from raftkit.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    InternalServerError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
)
from raftkit.llm._base import RequestActivity, WaitReason
from raftkit.llm._retry import RetryPolicy
from raftkit.llm._transport import DEFAULT_TIMEOUT, Call, Transport, usage_from_body
from raftkit.llm.limiter import LimiterRegistry, RateLimits
from raftkit.llm.usage import UsageLedger
from raftkit.types import Usage

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]
CHAT_OK = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 11,
        "completion_tokens": 3,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 5},
    },
}


def error(status: int, code: str | None = None, message: str = "nope", **headers: str) -> Any:
    body = {"error": {"message": message, "type": "some_type", "param": "messages", "code": code}}
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return httpx.Response(status, json=body, headers=named)


class Events:
    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def names(self) -> list[str]:
        return [str(e[0]) for e in self.log]


class FakeAdmission:
    def __init__(self, events: Events) -> None:
        self.events = events

    def settle(self, used_tokens: int, *, completion_tokens: int | None = None) -> None:
        self.events.log.append(("admission.settle", used_tokens))


class FakeLimiter:
    def __init__(self, events: Events) -> None:
        self.events = events

    @contextlib.asynccontextmanager
    async def admit(self, tokens: int) -> AsyncIterator[FakeAdmission]:
        self.events.log.append(("admit", tokens))
        try:
            yield FakeAdmission(self.events)
        finally:
            self.events.log.append(("admit.exit",))

    def observe(self, headers: Mapping[str, str]) -> None:
        self.events.log.append(("observe",))

    def congested(self, retry_after: float | None, headers: Mapping[str, str]) -> None:
        self.events.log.append(("congested", retry_after))

    def waiting_on(self) -> tuple[WaitReason | None, float | None]:
        return "tpm", None


class FakeRegistry:
    def __init__(self, events: Events) -> None:
        self.limiter = FakeLimiter(events)
        self.scopes: list[tuple[str, str | None]] = []

    def get(self, scope: str, model: str | None) -> FakeLimiter:
        self.scopes.append((scope, model))
        return self.limiter


class FakeReservation:
    def __init__(self, events: Events) -> None:
        self.events = events

    def settle(self, usage: Usage, *, batch: bool = False) -> None:
        self.events.log.append(("reservation.settle", usage))

    def release(self) -> None:
        self.events.log.append(("reservation.release",))


class FakeLedger:
    def __init__(self, events: Events, budget_left: int = 10**9) -> None:
        self.events = events
        self.budget_left = budget_left

    async def reserve_when_affordable(
        self,
        model: str,
        *,
        prompt_tokens: int,
        max_completion_tokens: int,
        kind: Literal["chat", "embedding"] = "chat",
    ) -> FakeReservation:
        if prompt_tokens + max_completion_tokens > self.budget_left:
            raise BudgetExceededError("over budget", spent_usd=1.0, limit_usd=1.0)
        self.events.log.append(("reserve", model, prompt_tokens, max_completion_tokens, kind))
        return FakeReservation(self.events)

    def record_retry(self, model: str) -> None:
        self.events.log.append(("record_retry", model))

    def record_rate_limited(self, model: str) -> None:
        self.events.log.append(("record_rate_limited", model))


class Harness:
    def __init__(self, handler: Handler | Callable[..., Any], **options: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.events = Events()

        async def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            result = handler(request)
            if not isinstance(result, httpx.Response):
                result = await result
            assert isinstance(result, httpx.Response)
            return result

        async def fake_sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        async def auth() -> Mapping[str, str]:
            return {"Authorization": "Bearer test-key"}

        self.http = httpx.AsyncClient(transport=httpx.MockTransport(record))
        options.setdefault("limiters", FakeRegistry(self.events))
        options.setdefault("ledger", FakeLedger(self.events))
        self.transport = Transport(
            base_url="https://api.example.test/v1",
            auth=auth,
            scope="https://api.example.test/v1#abc",
            http_client=self.http,
            sleep=fake_sleep,
            rng=lambda: 0.0,
            **options,
        )


def chat_call(**overrides: Any) -> Call:
    values: dict[str, Any] = {
        "method": "POST",
        "path": "chat/completions",
        "json": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        "model": "gpt-4o-mini",
        "kind": "chat",
        "prompt_tokens": 20,
        "max_completion_tokens": 100,
    }
    values.update(overrides)
    return Call(**values)


def sequence(*responses: httpx.Response | Exception) -> Handler:
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


async def test_success_runs_the_whole_path_in_order() -> None:
    h = Harness(sequence(httpx.Response(200, json=CHAT_OK, headers={"x-request-id": "req_1"})))
    reply = await h.transport.send(chat_call())
    assert reply.usage == Usage(prompt_tokens=11, completion_tokens=3, cached_tokens=5)
    assert reply.attempts == 1
    assert h.events.names() == [
        "reserve",
        "admit",
        "observe",
        "admission.settle",
        "admit.exit",
        "reservation.settle",
    ]
    assert h.events.log[0] == ("reserve", "gpt-4o-mini", 20, 100, "chat")
    assert h.events.log[1] == ("admit", 120)
    assert ("admission.settle", 14) in h.events.log
    request = h.requests[0]
    assert str(request.url) == "https://api.example.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.headers["idempotency-key"].startswith("raftkit-")
    assert request.headers["user-agent"].startswith("raftkit/")
    assert json.loads(request.content)["messages"][0]["content"] == "hi"


async def test_retries_reuse_one_idempotency_key_and_back_off() -> None:
    h = Harness(
        sequence(error(500), error(502), httpx.Response(200, json=CHAT_OK)),
    )
    reply = await h.transport.send(chat_call())
    assert reply.attempts == 3
    keys = {r.headers["idempotency-key"] for r in h.requests}
    assert len(h.requests) == 3
    assert len(keys) == 1
    assert h.sleeps == [0.5, 1.0]  # rng() == 0: no jitter
    assert h.events.names().count("record_retry") == 2
    # one budget reservation covers all attempts of the request
    assert h.events.names().count("reserve") == 1
    assert "reservation.release" not in h.events.names()
    assert h.events.names().count("reservation.settle") == 1
    # every attempt goes through admission again
    assert h.events.names().count("admit") == 3


async def test_each_request_gets_its_own_idempotency_key() -> None:
    h = Harness(sequence(httpx.Response(200, json=CHAT_OK)))
    await h.transport.send(chat_call())
    await h.transport.send(chat_call())
    assert h.requests[0].headers["idempotency-key"] != h.requests[1].headers["idempotency-key"]


async def test_get_has_no_idempotency_key() -> None:
    h = Harness(sequence(httpx.Response(200, json={"object": "list", "data": []})))
    reply = await h.transport.send(Call("GET", "files"))
    assert reply.response.json() == {"object": "list", "data": []}
    assert "idempotency-key" not in h.requests[0].headers
    assert "reserve" not in h.events.names()  # not a billed call


async def test_rate_limit_honours_retry_after_and_tells_limiter_and_ledger() -> None:
    h = Harness(
        sequence(
            error(429, "rate_limit_exceeded", retry_after_ms="1234", x_request_id="req_429"),
            httpx.Response(200, json=CHAT_OK),
        )
    )
    await h.transport.send(chat_call())
    assert h.sleeps == [1.234]
    assert ("congested", 1.234) in h.events.log
    assert ("record_rate_limited", "gpt-4o-mini") in h.events.log
    # the failed attempt's admission was not settled: its tokens go back to the bucket
    assert h.events.names().count("admission.settle") == 1


async def test_exhausted_retries_raise_the_last_error_with_its_fields() -> None:
    h = Harness(sequence(error(503, "overloaded", "busy", x_request_id="req_abc")))
    with pytest.raises(InternalServerError) as caught:
        await h.transport.send(chat_call())
    exc = caught.value
    assert len(h.requests) == 6  # the default RetryPolicy.max_attempts
    assert len(h.sleeps) == 5
    assert exc.status_code == 503
    assert exc.code == "overloaded"
    assert exc.error_type == "some_type"
    assert exc.param == "messages"
    assert exc.request_id == "req_abc"
    assert exc.method == "POST"
    assert exc.url == "https://api.example.test/v1/chat/completions"
    assert "req_abc" in str(exc)


async def test_max_attempts_is_respected() -> None:
    h = Harness(sequence(error(500)), retry=RetryPolicy(max_attempts=2))
    with pytest.raises(InternalServerError):
        await h.transport.send(chat_call())
    assert len(h.requests) == 2


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (422, APIStatusError),
    ],
)
async def test_client_errors_are_not_retried(status: int, cls: type[APIStatusError]) -> None:
    h = Harness(sequence(error(status, "bad", "wrong", apim_request_id="apim-1")))
    with pytest.raises(cls) as caught:
        await h.transport.send(chat_call())
    assert len(h.requests) == 1
    assert h.sleeps == []
    assert caught.value.status_code == status
    assert caught.value.request_id == "apim-1"
    assert h.events.names()[-1] == "reservation.release"


async def test_insufficient_quota_is_never_retried() -> None:
    h = Harness(sequence(error(429, "insufficient_quota", "You exceeded your current quota")))
    with pytest.raises(QuotaExceededError) as caught:
        await h.transport.send(chat_call())
    assert len(h.requests) == 1
    assert "congested" not in h.events.names()
    assert "quota" in caught.value.message


async def test_request_too_large_is_not_retried() -> None:
    message = "Request too large for gpt-4o on tokens per min (TPM): Limit 100, Requested 500."
    h = Harness(sequence(error(429, "rate_limit_exceeded", message, retry_after="1")))
    with pytest.raises(RateLimitError) as caught:
        await h.transport.send(chat_call())
    assert not isinstance(caught.value, QuotaExceededError)
    assert len(h.requests) == 1
    assert caught.value.retry_after == 1.0
    assert "not retried" in caught.value.message


async def test_x_should_retry_overrides_the_status() -> None:
    h = Harness(sequence(error(400, x_should_retry="true"), httpx.Response(200, json=CHAT_OK)))
    await h.transport.send(chat_call())
    assert len(h.requests) == 2
    h2 = Harness(sequence(error(500, x_should_retry="false")))
    with pytest.raises(InternalServerError):
        await h2.transport.send(chat_call())
    assert len(h2.requests) == 1


async def test_connection_errors_are_retried_then_translated() -> None:
    h = Harness(sequence(httpx.ConnectError("connection refused")))
    with pytest.raises(APIConnectionError) as caught:
        await h.transport.send(chat_call())
    assert not isinstance(caught.value, APITimeoutError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(h.requests) == 6
    assert caught.value.url == "https://api.example.test/v1/chat/completions"


async def test_timeouts_become_api_timeout_errors() -> None:
    h = Harness(sequence(httpx.ReadTimeout("timed out"), httpx.Response(200, json=CHAT_OK)))
    reply = await h.transport.send(chat_call())
    assert reply.attempts == 2
    h2 = Harness(sequence(httpx.ReadTimeout("timed out")), retry=RetryPolicy(max_attempts=2))
    with pytest.raises(APITimeoutError):
        await h2.transport.send(chat_call())


async def test_not_idempotent_calls_are_not_resent_once_they_may_have_arrived() -> None:
    h = Harness(sequence(httpx.ReadTimeout("timed out")))
    with pytest.raises(APITimeoutError):
        await h.transport.send(Call("POST", "fine_tuning/jobs", json={}, idempotent=False))
    assert len(h.requests) == 1
    # a refused connection never reached the server: safe to resend
    h2 = Harness(sequence(httpx.ConnectError("refused"), httpx.Response(200, json={})))
    await h2.transport.send(Call("POST", "fine_tuning/jobs", json={}, idempotent=False))
    assert len(h2.requests) == 2


async def test_the_deadline_bounds_the_whole_request() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        return httpx.Response(200, json=CHAT_OK)

    h = Harness(slow, retry=RetryPolicy(deadline=0.05))
    with pytest.raises(APITimeoutError, match="deadline"):
        await h.transport.send(chat_call())
    assert h.events.names()[-1] == "reservation.release"


async def test_a_wait_past_the_deadline_is_not_started() -> None:
    h = Harness(sequence(error(503, retry_after="50")), retry=RetryPolicy(deadline=10))
    with pytest.raises(InternalServerError):
        await h.transport.send(chat_call())
    assert len(h.requests) == 1
    assert h.sleeps == []


async def test_budget_check_comes_before_sending() -> None:
    events = Events()
    h = Harness(sequence(httpx.Response(200, json=CHAT_OK)), ledger=FakeLedger(events, 50))
    with pytest.raises(BudgetExceededError):
        await h.transport.send(chat_call())
    assert h.requests == []


async def test_non_json_error_bodies_keep_their_text() -> None:
    h = Harness(sequence(httpx.Response(502, text="<html>Bad Gateway</html>")))
    h.transport.retry = RetryPolicy(max_attempts=1)
    with pytest.raises(InternalServerError, match="Bad Gateway"):
        await h.transport.send(chat_call())


async def test_injected_client_is_not_closed() -> None:
    h = Harness(sequence(httpx.Response(200, json=CHAT_OK)))
    await h.transport.aclose()
    assert not h.http.is_closed
    await h.http.aclose()


async def test_own_client_is_closed() -> None:
    async def auth() -> Mapping[str, str]:
        return {}

    transport = Transport(base_url="http://127.0.0.1:9", auth=auth, scope="s")
    await transport.aclose()
    assert transport.closed


async def test_real_limiter_and_ledger_account_for_usage() -> None:
    ledger = UsageLedger()
    registry = LimiterRegistry()
    h = Harness(
        sequence(error(500), httpx.Response(200, json=CHAT_OK)),
        limiters=registry,
        ledger=ledger,
    )
    await h.transport.send(chat_call())
    usage = ledger.model_usage("gpt-4o-mini")
    assert usage.prompt_tokens == 11
    assert usage.completion_tokens == 3
    assert usage.retries == 1
    assert ledger.reserved_usd == 0
    assert registry.limiters()[("https://api.example.test/v1#abc", "gpt-4o-mini")]


def test_usage_from_body() -> None:
    assert usage_from_body({"usage": {"prompt_tokens": 3, "total_tokens": 3}}) == Usage(
        prompt_tokens=3
    )
    assert usage_from_body({"usage": None}) is None
    assert usage_from_body([]) is None


# ---------------------------------------------------------------- bodies cut short (issue 11)

TRUNCATED = b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "mess'


def truncated() -> httpx.Response:
    return httpx.Response(200, content=TRUNCATED, headers={"content-type": "application/json"})


async def test_a_truncated_body_is_retried_and_counted() -> None:
    ledger = UsageLedger()
    h = Harness(sequence(truncated(), httpx.Response(200, json=CHAT_OK)), ledger=ledger)
    reply = await h.transport.send(chat_call())
    assert reply.attempts == 2
    assert reply.usage == Usage(prompt_tokens=11, completion_tokens=3, cached_tokens=5)
    assert len(h.requests) == 2
    assert len({r.headers["idempotency-key"] for r in h.requests}) == 1
    # the cut-short attempt's admission was not settled: its tokens went back
    assert h.events.names().count("admission.settle") == 1
    usage = ledger.model_usage("gpt-4o-mini")
    assert usage.retries == 1
    assert usage.calls == 1
    assert ledger.reserved_usd == 0


async def test_a_body_that_is_json_but_not_an_object_is_retried() -> None:
    h = Harness(sequence(httpx.Response(200, json=[1, 2]), httpx.Response(200, json=CHAT_OK)))
    reply = await h.transport.send(chat_call())
    assert reply.attempts == 2


async def test_bodies_cut_short_every_time_end_in_an_api_error() -> None:
    h = Harness(sequence(truncated()))
    with pytest.raises(APIError) as caught:
        await h.transport.send(chat_call())
    assert not isinstance(caught.value, APIStatusError)
    assert len(h.requests) == 6
    assert "not valid JSON" in caught.value.message
    assert caught.value.method == "POST"
    assert caught.value.url == "https://api.example.test/v1/chat/completions"
    assert h.events.names().count("record_retry") == 5
    assert "reservation.release" in h.events.names()


async def test_a_truncated_body_is_not_resent_when_the_call_must_not_be() -> None:
    h = Harness(sequence(truncated(), httpx.Response(200, json=CHAT_OK)))
    with pytest.raises(APIError, match="not valid JSON"):
        await h.transport.send(chat_call(idempotent=False))
    assert len(h.requests) == 1


async def test_calls_that_are_not_billed_leave_the_body_to_the_caller() -> None:
    h = Harness(sequence(httpx.Response(200, content=b"{", headers={"x-request-id": "r"})))
    reply = await h.transport.send(Call("GET", "files"))
    assert reply.response.content == b"{"
    assert reply.body is None


# ---------------------------------------------------------------- requests of an unsupported shape


async def test_a_refused_request_shape_is_never_retried() -> None:
    refusal = error(
        500,
        message='response_format type must be one of "text" or "json_object", but got: json_schema',
    )
    h = Harness(sequence(refusal, httpx.Response(200, json=CHAT_OK)))
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    }
    with pytest.raises(InternalServerError) as caught:
        await h.transport.send(chat_call(json=body))
    assert len(h.requests) == 1
    assert h.sleeps == []
    assert "not retried" in caught.value.message
    assert "response_format" in caught.value.message


# ---------------------------------------------------------------- activity and timeouts


async def test_activity_reports_requests_in_flight_and_waiting() -> None:
    release = anyio.Event()
    arrived: list[float] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        arrived.append(anyio.current_time())
        await release.wait()
        return httpx.Response(200, json=CHAT_OK)

    registry = LimiterRegistry(RateLimits(max_concurrency=2))
    h = Harness(slow, limiters=registry, ledger=UsageLedger())
    assert h.transport.activity() == RequestActivity()
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(h.transport.send, chat_call())
        await anyio.wait_all_tasks_blocked()
        assert len(arrived) == 2
        await anyio.sleep(0.05)
        now = h.transport.activity()
        assert now.in_flight == 2
        assert now.oldest_in_flight_s is not None
        assert now.oldest_in_flight_s >= 0.04
        assert now.waiting == 1
        assert now.waiting_on == "concurrency"
        assert now.paused_for_s is None
        release.set()
    assert h.transport.activity() == RequestActivity()


async def test_activity_asks_the_limiter_why_a_request_waits() -> None:
    release = anyio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json=CHAT_OK)

    class Gate(FakeLimiter):
        def __init__(self, events: Events) -> None:
            super().__init__(events)
            self.lock = anyio.Lock()

        @contextlib.asynccontextmanager
        async def admit(self, tokens: int) -> AsyncIterator[FakeAdmission]:
            async with self.lock:
                yield FakeAdmission(self.events)

    registry = FakeRegistry(Events())
    registry.limiter = Gate(registry.limiter.events)
    h = Harness(slow, limiters=registry)
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.transport.send, chat_call())
        tg.start_soon(h.transport.send, chat_call())
        await anyio.wait_all_tasks_blocked()
        activity = h.transport.activity()
        assert (activity.in_flight, activity.waiting, activity.waiting_on) == (1, 1, "tpm")
        release.set()


async def test_the_default_timeout_is_sized_by_max_tokens() -> None:
    async def auth() -> Mapping[str, str]:
        return {}

    own = Transport(base_url="http://127.0.0.1:9", auth=auth, scope="s")
    try:
        sized = own.timeout_for(chat_call(max_tokens=400, prompt_tokens=2_000))
        assert sized is not None
        assert sized.read == pytest.approx(60 + 4 + 80)
        assert sized.connect == 10.0
        unbounded = own.timeout_for(chat_call())  # no max_tokens sent: the longest wait
        assert unbounded is not None
        assert unbounded.read == 600.0
        assert own.timeout_for(Call("GET", "files")) == DEFAULT_TIMEOUT
    finally:
        await own.aclose()
    fixed = Transport(base_url="http://127.0.0.1:9", auth=auth, scope="s", timeout=5.0)
    try:
        assert fixed.timeout_for(chat_call(max_tokens=400)) == httpx.Timeout(5.0)
    finally:
        await fixed.aclose()
    # an injected client keeps its own timeouts unless one is given
    h = Harness(sequence(httpx.Response(200, json=CHAT_OK)))
    assert h.transport.timeout_for(chat_call(max_tokens=400)) is None
    h = Harness(sequence(httpx.Response(200, json=CHAT_OK)), timeout=7.5)
    await h.transport.send(chat_call(max_tokens=400))
    assert h.requests[0].extensions["timeout"]["read"] == 7.5


async def test_a_read_timeout_says_so_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(
        sequence(httpx.ReadTimeout("no answer"), httpx.Response(200, json=CHAT_OK)), timeout=3.0
    )
    with caplog.at_level("WARNING", logger="raftkit.llm"):
        reply = await h.transport.send(chat_call(max_tokens=10))
    assert reply.attempts == 2
    assert any("sent no answer within 3 s" in r.getMessage() for r in caplog.records)

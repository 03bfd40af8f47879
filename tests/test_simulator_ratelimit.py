"""Account rate limits: token buckets on a fake clock, and OpenAI's headers and 429s over HTTP."""

from __future__ import annotations

import re
from typing import Any

import anyio
import httpx
import pytest

from openapi_schemas import validate
from raftkit.testing import RateLimit, Simulator, SimulatorConfig, format_duration
from raftkit.testing._gate import simulated_latency
from raftkit.testing._ratelimit import RateLimiter, TokenBucket
from raftkit.testing._state import SimulatorState

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (360, "6m0s"),
        (67.5, "1m7.5s"),
        (0.02, "20ms"),
        (1, "1s"),
        (0, "0s"),
        (0.0004, "0ms"),
        (2.25, "2.25s"),
        (3725, "1h2m5s"),
    ],
)
def test_durations_are_formatted_like_openai(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_bucket_refills_continuously_up_to_capacity() -> None:
    bucket = TokenBucket(capacity=60, rate=1.0, now=0.0)
    bucket.take(60)
    bucket.refill(15.0)
    assert bucket.level == 15
    assert bucket.wait_for(20) == 5
    bucket.refill(1000.0)
    assert bucket.level == 60
    assert bucket.until_full() == 0


def test_limiter_refuses_requests_then_recovers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rpm=2, tpm=None), clock=clock)
    assert limiter.admit("m", 10).admitted
    second = limiter.admit("m", 10)
    assert second.admitted
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.headers["x-ratelimit-reset-requests"] == "1m0s"
    refused = limiter.admit("m", 10)
    assert not refused.admitted
    assert refused.reason == "requests"
    assert refused.retry_after == pytest.approx(30.0)
    clock.now += 30.0
    assert limiter.admit("m", 10).admitted


def test_limiter_tokens_too_large_and_per_model() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        RateLimit(rpm=None, tpm=1000), {"big": RateLimit(rpm=None, tpm=10_000)}, clock=clock
    )
    too_large = limiter.admit("m", 1001)
    assert (too_large.admitted, too_large.reason) == (False, "too_large")
    assert limiter.admit("m", 800).admitted
    refused = limiter.admit("m", 300)
    assert refused.reason == "tokens"
    assert (refused.limit, refused.used, refused.requested) == (1000, 800, 300)
    assert refused.retry_after == pytest.approx(100 / (1000 / 60))
    assert limiter.admit("big", 5000).admitted


def test_short_window_holds_only_its_share_but_admits_one_big_request() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rpm=600, tpm=6000), clock=clock, window_seconds=1)
    for _ in range(10):
        assert limiter.admit("m", 1).admitted
    assert limiter.admit("m", 1).reason == "requests"
    clock.now += 1.0
    # 500 tokens exceed the one-second bucket (100) but fit the minute: admitted when full
    assert limiter.admit("m", 500).admitted
    blocked = limiter.admit("m", 1)
    assert blocked.reason == "tokens"
    assert blocked.retry_after == pytest.approx(401 / 100)


def test_background_load_takes_its_share() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(rpm=100, tpm=None), clock=clock, background_load=0.4)
    headers = limiter.headers("m")
    assert headers["x-ratelimit-limit-requests"] == "100"
    assert headers["x-ratelimit-remaining-requests"] == "60"
    admitted = sum(limiter.admit("m", 0).admitted for _ in range(100))
    assert admitted == 60
    clock.now += 60.0
    # a minute of refill gives our client only 60% of the 100 requests
    assert sum(limiter.admit("m", 0).admitted for _ in range(100)) == 60
    with pytest.raises(ValueError, match="background_load"):
        RateLimiter(RateLimit(), clock=clock, background_load=1.0)


def test_latency_grows_with_completion_tokens() -> None:
    state = SimulatorState(SimulatorConfig(latency_base=0.5, latency_per_token=0.01))
    assert simulated_latency(state, 0) == 0.5
    assert simulated_latency(state, 100) == pytest.approx(1.5)


def chat_body(max_tokens: int = 50) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": max_tokens,
    }


async def post(sim: Simulator, body: dict[str, Any], path: str = "/chat/completions") -> Any:
    async with httpx.AsyncClient(verify=False) as client:
        return await client.post(
            f"{sim.base_url}{path}", headers={"Authorization": f"Bearer {sim.api_key}"}, json=body
        )


@pytest.mark.raftkit_simulator(rpm=2, tpm=100_000)
async def test_requests_limit_headers_and_429(raftkit_simulator: Simulator) -> None:
    first = await post(raftkit_simulator, chat_body())
    second = await post(raftkit_simulator, chat_body())
    third = await post(raftkit_simulator, chat_body())
    assert first.status_code == second.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(second.headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert re.fullmatch(r"(\d+m)?[\d.]+m?s", second.headers["x-ratelimit-reset-requests"])
    assert third.status_code == 429
    validate("ErrorResponse", third.json())
    error = third.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "on requests per min (RPM): Limit 2, Used 2, Requested 1." in error["message"]
    millis = int(third.headers["retry-after-ms"])
    assert 0 < millis <= 30_000
    assert int(third.headers["retry-after"]) == -(-millis // 1000)
    assert third.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.raftkit_simulator(tpm=1000)
async def test_tokens_limit_429_message(raftkit_simulator: Simulator) -> None:
    assert (await post(raftkit_simulator, chat_body(600))).status_code == 200
    refused = await post(raftkit_simulator, chat_body(600))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "tokens"
    assert re.search(
        r"on tokens per min \(TPM\): Limit 1000, Used \d+, Requested \d+\. "
        r"Please try again in [\d.]+m?s\.",
        error["message"],
    )


@pytest.mark.raftkit_simulator(tpm=1000)
async def test_request_larger_than_the_bucket_can_never_fit(raftkit_simulator: Simulator) -> None:
    refused = await post(raftkit_simulator, chat_body(5000))
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith("Request too large for gpt-4o-mini")
    assert refused.headers["x-should-retry"] == "false"
    assert "retry-after" not in refused.headers


@pytest.mark.raftkit_simulator(rpm=1)
async def test_limits_are_per_model(raftkit_simulator: Simulator) -> None:
    other = {**chat_body(), "model": "gpt-4o"}
    assert (await post(raftkit_simulator, chat_body())).status_code == 200
    assert (await post(raftkit_simulator, chat_body())).status_code == 429
    assert (await post(raftkit_simulator, other)).status_code == 200
    raftkit_simulator.set_rate_limit("gpt-4o-mini", rpm=100, tpm=None)
    assert (await post(raftkit_simulator, chat_body())).status_code == 200


@pytest.mark.raftkit_simulator(tpm=10_000)
async def test_embeddings_are_charged_their_input_tokens(raftkit_simulator: Simulator) -> None:
    body = {"model": "text-embedding-3-small", "input": "one two three four"}
    response = await post(raftkit_simulator, body, "/embeddings")
    assert response.status_code == 200
    spent = 10_000 - int(response.headers["x-ratelimit-remaining-tokens"])
    assert spent == response.json()["usage"]["prompt_tokens"]


async def test_insufficient_quota(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.set_insufficient_quota()
    refused = await post(raftkit_simulator, chat_body())
    assert refused.status_code == 429
    validate("ErrorResponse", refused.json())
    assert refused.json()["error"]["type"] == "insufficient_quota"
    assert refused.json()["error"]["code"] == "insufficient_quota"
    raftkit_simulator.set_insufficient_quota(False)
    assert (await post(raftkit_simulator, chat_body())).status_code == 200


@pytest.mark.raftkit_simulator(rpm=10, background_load=0.4)
async def test_background_load_shows_in_headers(raftkit_simulator: Simulator) -> None:
    response = await post(raftkit_simulator, chat_body())
    assert response.headers["x-ratelimit-limit-requests"] == "10"
    assert response.headers["x-ratelimit-remaining-requests"] == "5"


@pytest.mark.raftkit_simulator(rpm=1)
async def test_azure_limits_are_per_deployment(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    statuses = []
    async with httpx.AsyncClient(verify=False) as client:
        for deployment in ("a", "a", "b"):
            response = await client.post(
                f"{sim.azure_endpoint}/openai/deployments/{deployment}/chat/completions",
                params={"api-version": "2024-10-21"},
                headers={"api-key": sim.api_key},
                json={"messages": [{"role": "user", "content": "hi"}]},
            )
            statuses.append(response.status_code)
    assert statuses == [200, 429, 200]


@pytest.mark.raftkit_simulator(rpm=20)
async def test_concurrent_requests_are_each_admitted_or_refused_once(
    raftkit_simulator: Simulator,
) -> None:
    statuses: list[int] = []
    async with httpx.AsyncClient(verify=False, timeout=30) as client:

        async def one() -> None:
            response = await client.post(
                f"{raftkit_simulator.base_url}/chat/completions",
                headers={"Authorization": f"Bearer {raftkit_simulator.api_key}"},
                json=chat_body(),
            )
            if response.status_code == 429:
                assert response.json()["error"]["type"] == "requests"
            statuses.append(response.status_code)

        async with anyio.create_task_group() as group:
            for _ in range(40):
                group.start_soon(one)
    assert len(statuses) == 40
    assert set(statuses) == {200, 429}
    # the bucket starts with 20; refill during the test can only add to that
    assert statuses.count(200) >= 20
    log = raftkit_simulator.requests
    assert len({record.request_id for record in log}) == 40
    assert sorted(record.status for record in log) == sorted(statuses)

"""The limiter and ledger in the real request path, against the simulator over HTTP."""

from __future__ import annotations

import anyio
import pytest

from raftkit.errors import BudgetExceededError, QuotaExceededError
from raftkit.llm._base import ChatResponse
from raftkit.llm.limiter import LimiterRegistry, RateLimits
from raftkit.llm.openai import OpenAIClient
from raftkit.llm.usage import UsageLedger
from raftkit.testing import Simulator, SimulatorConfig

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"


def ask(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {i}: how small is the smallest bat?"}]


async def test_a_429_storm_ends_with_every_result_delivered() -> None:
    # the server allows 20 requests a second; the client was told 1,000
    config = SimulatorConfig(rpm=1200, window_seconds=1.0)
    registry = LimiterRegistry(RateLimits(rpm=60_000))
    ledger = UsageLedger()
    results: dict[int, ChatResponse] = {}
    async with (
        Simulator(config) as sim,
        OpenAIClient(
            api_key=sim.api_key,
            base_url=sim.base_url,
            limiters=registry,
            ledger=ledger,
            max_retries=20,
        ) as client,
    ):

        async def one(i: int) -> None:
            results[i] = await client.chat(ask(i), model=MODEL, max_tokens=50)

        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, i)
        answered = [r for r in sim.requests if r.path.endswith("/chat/completions")]
    assert sorted(results) == list(range(40))
    usage = ledger.model_usage(MODEL)
    assert usage.calls == 40
    assert usage.rate_limited >= 1
    assert usage.retries >= usage.rate_limited
    assert len([r for r in answered if r.status == 429]) == usage.rate_limited
    (limiter,) = registry.limiters().values()
    stats = limiter.stats()
    assert stats.rate_limited == usage.rate_limited
    assert stats.decreases >= 1
    assert stats.rpm is not None
    assert stats.rpm <= 1200  # learned from x-ratelimit-limit-requests


async def test_insufficient_quota_stops_at_once() -> None:
    registry = LimiterRegistry()
    ledger = UsageLedger()
    async with (
        Simulator(SimulatorConfig(insufficient_quota=True)) as sim,
        OpenAIClient(
            api_key=sim.api_key, base_url=sim.base_url, limiters=registry, ledger=ledger
        ) as client,
    ):
        with pytest.raises(QuotaExceededError):
            await client.chat(ask(0), model=MODEL, max_tokens=50)
        sent = [r for r in sim.requests if r.path.endswith("/chat/completions")]
    assert len(sent) == 1  # never retried
    usage = ledger.model_usage(MODEL)
    assert (usage.calls, usage.failed, usage.rate_limited) == (0, 1, 0)
    (limiter,) = registry.limiters().values()
    assert limiter.stats().decreases == 0  # out of credit is not congestion
    assert limiter.stats().in_flight == 0


async def test_the_budget_cap_stops_new_calls_and_keeps_finished_ones() -> None:
    # each call could cost up to about (30 + 1000) tokens at gpt-4o's prices: ~ $0.0101
    ledger = UsageLedger(max_cost_usd=0.03)
    done: list[ChatResponse] = []
    async with (
        Simulator() as sim,
        OpenAIClient(api_key=sim.api_key, base_url=sim.base_url, ledger=ledger) as client,
    ):

        async def until_refused() -> None:
            for i in range(100):
                done.append(await client.chat(ask(i), model="gpt-4o", max_tokens=1000))

        with pytest.raises(BudgetExceededError) as raised:
            await until_refused()
        sent = [r for r in sim.requests if r.path.endswith("/chat/completions")]
    report = ledger.report()
    assert len(done) >= 2
    assert len(sent) == len(done)  # the refused call was never sent
    assert report.models["gpt-4o"].calls == len(done)
    assert report.total_cost_usd == pytest.approx(raised.value.spent_usd)
    assert report.total_cost_usd <= 0.03
    assert report.reserved_usd == pytest.approx(0.0)

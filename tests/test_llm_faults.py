"""Faults of a real server over real HTTP (the simulator): bodies cut short, a server that
accepts and never answers, and time queued in raftkit's own limiter (issue 11, items 4 and 11).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from raftkit.errors import APIError
from raftkit.llm import (
    LimiterRegistry,
    OpenAIClient,
    RateLimits,
    RequestActivity,
    RetryPolicy,
    UsageLedger,
)
from raftkit.testing import Fault, Simulator

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(initial_delay=0.001, max_delay=0.005, deadline=60)
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Write one question about bats."}]


class Quiz(BaseModel):
    question: str


def client(sim: Simulator, **kwargs: Any) -> OpenAIClient:
    kwargs.setdefault("retry", FAST)
    return OpenAIClient(api_key=sim.api_key, base_url=sim.base_url, **kwargs)


async def test_truncated_bodies_are_retried_not_fatal(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.add_fault(Fault.malformed_json(path="/chat/completions"), times=2)
    ledger = UsageLedger()
    async with client(sim, ledger=ledger) as c:
        response = await c.chat(MESSAGES, model="gpt-4o-mini", max_tokens=50)
        structured = await c.chat_structured(MESSAGES, Quiz, model="gpt-4o-mini")
    assert response.text
    assert structured.output.question
    usage = ledger.model_usage("gpt-4o-mini")
    assert usage.calls == 2
    assert usage.retries == 2  # counted in the ledger, like any other retry
    assert sim.pending_faults == 0


async def test_a_two_percent_rate_of_cut_bodies_loses_no_call(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.add_random_fault(Fault.malformed_json(path="/chat/completions"), 0.02)
    sim.add_fault(Fault.malformed_json(path="/chat/completions"))  # at least one, for certain
    ledger = UsageLedger()
    answered = 0
    async with client(sim, ledger=ledger) as c:

        async def one(i: int) -> None:
            nonlocal answered
            await c.chat(
                [{"role": "user", "content": f"q {i}"}], model="gpt-4o-mini", max_tokens=20
            )
            answered += 1

        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(one, i)
    assert answered == 60
    usage = ledger.model_usage("gpt-4o-mini")
    assert usage.calls == 60
    assert usage.retries >= 1


async def test_bodies_cut_short_every_time_name_the_problem(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.add_fault(Fault.malformed_json(path="/chat/completions"), times=3)
    async with client(sim, retry=RetryPolicy(max_attempts=3, initial_delay=0.001)) as c:
        with pytest.raises(APIError, match="not valid JSON") as caught:
            await c.chat(MESSAGES, model="gpt-4o-mini")
    assert caught.value.request_id


async def test_a_server_that_never_answers_shows_within_seconds(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    sim.add_fault(Fault.timeout(60.0), times=3)
    seen: list[RequestActivity] = []
    async with client(sim) as c:

        async def one(i: int) -> None:
            await c.chat([{"role": "user", "content": f"q{i}"}], model="gpt-4o-mini")

        assert c.activity() == RequestActivity()
        with anyio.move_on_after(5):  # the watcher below ends the wait much sooner
            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(one, i)
                while True:
                    await anyio.sleep(0.1)
                    now = c.activity()
                    seen.append(now)
                    if now.oldest_in_flight_s is not None and now.oldest_in_flight_s > 0.5:
                        tg.cancel_scope.cancel()
        after = c.activity()
    last = seen[-1]
    assert last.oldest_in_flight_s is not None
    assert last.oldest_in_flight_s > 0.5
    # a server with no published limits starts with two requests in flight; the third waits
    assert (last.in_flight, last.waiting, last.waiting_on) == (2, 1, "concurrency")
    assert after == RequestActivity()  # cancelled calls leave nothing behind


async def test_time_queued_in_the_limiter_does_not_count_against_the_timeout(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    # each answer takes 0.3 s on the wire; four calls through one slot wait up to 0.9 s in
    # raftkit's limiter, longer than the 0.6 s per-attempt timeout, and none times out
    sim.add_fault(Fault.latency(0.3, path="/chat/completions"), times=4)
    ledger = UsageLedger()
    limiters = LimiterRegistry(RateLimits(max_concurrency=1))
    waits: list[RequestActivity] = []
    async with client(sim, timeout=0.6, ledger=ledger, limiters=limiters) as c:

        async def one(i: int) -> None:
            await c.chat([{"role": "user", "content": f"q {i}"}], model="gpt-4o-mini")

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(one, i)
            await anyio.sleep(0.1)
            waits.append(c.activity())
    usage = ledger.model_usage("gpt-4o-mini")
    assert usage.calls == 4
    assert usage.retries == 0
    assert waits[0].in_flight == 1
    assert waits[0].waiting == 3
    assert waits[0].waiting_on == "concurrency"

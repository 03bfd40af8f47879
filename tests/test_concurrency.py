"""Requests in flight at a server that publishes no limits (issue 13, item 3).

The control logic (``AdaptiveConcurrency``) is driven here by a model of a server with a few
slots and a queue, on model time (deterministic, seeded); the limiter's use of it on a manual
clock; and the whole request path against a real slot-limited HTTP server.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from dataclasses import dataclass, field

import anyio
import pytest

from raftkit.llm import LimiterRegistry, OpenAIClient, RetryPolicy, UsageLedger
from raftkit.llm._concurrency import AdaptiveConcurrency, Measurement, efficiency
from raftkit.llm.limiter import RateLimiter, RateLimits
from slot_server import RemoteSlotServer, slot_server_process
from test_limiter import ManualClock

# ---------------------------------------------------------------- a model of a local server


@dataclass
class Outcome:
    throughput: float
    """Completions per second after the warm-up, as a share of the server's capacity."""
    limits: list[int] = field(default_factory=list)
    """The limit after every completion past the warm-up."""
    max_in_flight: int = 0
    max_queued: int = 0

    @property
    def median_limit(self) -> float:
        return statistics.median(self.limits)


def serve(
    controller: AdaptiveConcurrency,
    *,
    slots: int,
    seconds: float,
    spread: float = 0.3,
    slowdown: float = 0.0,
    demand: int | None = None,
    until: float = 400.0,
    warm_up: float = 100.0,
    round_trip: float = 0.003,
    cold_start: float = 0.0,
    seed: int = 1,
) -> Outcome:
    """Requests through ``controller`` to a server with ``slots`` and a FIFO queue.

    Service times are ``seconds`` times a log-normal factor (``spread``) and times
    ``1 + slowdown * busy`` (a batching server slows each request as it fills); the first
    requests also wait ``cold_start`` (a model loaded on first use). The caller
    always has more to send (``demand=None``) or keeps at most ``demand`` in flight.
    """
    rng = random.Random(seed)
    events: list[tuple[float, int, str]] = []
    admitted: dict[int, float] = {}
    work: dict[int, float] = {}
    queue: list[int] = []
    busy = 0
    served = 0
    ids = iter(range(10**9))
    outcome = Outcome(0.0)
    now = 0.0

    def start(request: int) -> None:
        nonlocal busy
        busy += 1
        factor = rng.lognormvariate(0.0, spread)
        work[request] = 100 * factor  # completion tokens, in proportion to decoding time
        service = seconds * factor * (1 + slowdown * busy)
        ready = max(now, cold_start)  # requests that arrive while the model loads wait for it
        heapq.heappush(events, (ready + service, request, "done"))

    def admit() -> None:
        cap = controller.limit if demand is None else min(controller.limit, demand)
        while len(admitted) < cap:
            request = next(ids)
            admitted[request] = now
            waiting = 1 if demand is None or len(admitted) < demand else 0
            controller.update(now, len(admitted), waiting)
            heapq.heappush(events, (now + round_trip / 2, request, "arrive"))
        outcome.max_in_flight = max(outcome.max_in_flight, len(admitted)) if now > warm_up else 0

    admit()
    while events:
        now, request, kind = heapq.heappop(events)
        if now > until:
            break
        if kind == "arrive":
            if busy < slots:
                start(request)
            else:
                queue.append(request)
                if now > warm_up:
                    outcome.max_queued = max(outcome.max_queued, len(queue))
        elif kind == "done":
            busy -= 1
            if queue:
                start(queue.pop(0))
            heapq.heappush(events, (now + round_trip / 2, request, "reply"))
        else:
            sent = admitted.pop(request)
            controller.sample(now, now - sent, sent, work.pop(request))
            controller.update(now, len(admitted), 1 if demand is None else 0)
            if now > warm_up:
                served += 1
                outcome.limits.append(controller.limit)
            admit()
    mean_service = seconds * math.exp(spread**2 / 2)
    outcome.throughput = served / (until - warm_up) / (slots / mean_service)
    return outcome


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_one_slot_server_gets_one_or_two_requests(seed: int) -> None:
    outcome = serve(AdaptiveConcurrency(), slots=1, seconds=0.5, seed=seed)
    in_range = sum(1 for limit in outcome.limits if limit <= 2) / len(outcome.limits)
    assert in_range >= 0.9
    assert outcome.max_in_flight <= 4
    assert outcome.max_queued <= 3
    assert outcome.throughput >= 0.9


@pytest.mark.parametrize(("slots", "seconds"), [(8, 1.0), (8, 0.2), (64, 2.0)])
def test_more_slots_get_more_requests_and_full_use(slots: int, seconds: float) -> None:
    outcome = serve(AdaptiveConcurrency(), slots=slots, seconds=seconds)
    assert 0.75 * slots <= outcome.median_limit <= 1.5 * slots
    assert outcome.throughput >= 0.9


def test_a_batching_server_that_slows_as_it_fills_still_gets_filled() -> None:
    # vLLM-like: each request slows by 1 % per busy slot, yet 32 slots serve far more than 8
    outcome = serve(AdaptiveConcurrency(), slots=32, seconds=1.0, slowdown=0.01)
    assert outcome.median_limit >= 24


def test_noisy_latencies_do_not_walk_the_limit_away() -> None:
    outcome = serve(AdaptiveConcurrency(), slots=8, seconds=1.0, spread=0.8, seed=5)
    assert 6 <= outcome.median_limit <= 16
    assert outcome.throughput >= 0.9


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_cold_start_is_not_taken_for_a_slow_server(seed: int) -> None:
    # the first requests wait 10 service times (a model loaded on first use, as Ollama does):
    # compared with that, 4 in flight at a one-slot server would look twice as fast as 2
    controller = AdaptiveConcurrency()
    outcome = serve(
        controller, slots=1, seconds=0.5, cold_start=5.0, until=60.0, warm_up=5.0, seed=seed
    )
    assert [m.limit for m in controller.history][:3] == [2, 4, 4]  # tried, doubted, undone
    assert outcome.median_limit <= 2
    assert outcome.max_in_flight <= 4


def test_a_caller_that_sends_few_requests_does_not_grow_the_limit() -> None:
    controller = AdaptiveConcurrency()
    serve(controller, slots=64, seconds=0.5, demand=3)
    assert controller.limit <= 4  # grown while 3 were held back by 2, then nothing to learn
    assert controller.phase == "startup"


def test_startup_doubles_until_it_stops_paying() -> None:
    controller = AdaptiveConcurrency()
    serve(controller, slots=8, seconds=1.0, until=25.0, warm_up=0.0)
    limits = [m.limit for m in controller.history]
    assert limits[:4] == [2, 4, 8, 16]
    assert controller.phase == "steady"


def test_congestion_decreases_at_once_and_old_requests_do_not_count() -> None:
    controller = AdaptiveConcurrency(initial=10)
    controller.update(0.0, 10, 5)
    controller.congested(1.0)
    assert controller.limit == 7
    assert controller.phase == "steady"
    # requests admitted before the decrease, or while more than the limit were in flight,
    # are not this epoch's
    for i in range(20):
        controller.sample(2.0 + i, 1.0, admitted_at=0.5)
    assert controller.history == []
    controller.update(30.0, 7, 1)  # drained to the limit: measuring starts
    for i in range(8):
        controller.sample(31.0 + i, 1.0, admitted_at=30.0 + i)
    assert controller.history == []  # 2 samples per request of the limit make an epoch
    for i in range(6):
        controller.sample(40.0 + i, 1.0, admitted_at=31.0 + i)
    assert len(controller.history) == 1
    assert controller.history[0].limit == 7


def test_efficiency() -> None:
    low = Measurement(limit=4, in_flight=4.0, latency=1.0, held=True)
    room = Measurement(limit=8, in_flight=8.0, latency=1.0, held=True)
    queued = Measurement(limit=8, in_flight=8.0, latency=2.0, held=True)
    assert efficiency(low, room) == pytest.approx(1.0)
    assert efficiency(low, queued) == pytest.approx(0.0)
    assert efficiency(room, low) == pytest.approx(1.0)  # going down lost all it could
    assert efficiency(low, Measurement(limit=4, in_flight=4.2, latency=1.0, held=True)) is None
    assert room.throughput == pytest.approx(8.0)


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"minimum": 3, "initial": 2}, {"maximum": 1}, {"min_samples": 0}]
)
def test_nonsense_settings_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        AdaptiveConcurrency(**kwargs)


# ---------------------------------------------------------------- in the limiter


@pytest.mark.anyio
async def test_the_limiter_learns_concurrency_only_when_nothing_is_known() -> None:
    assert RateLimiter().stats().adaptive
    assert RateLimiter().stats().concurrency == 2
    assert not RateLimiter(RateLimits(max_concurrency=16)).stats().adaptive
    assert not RateLimiter(RateLimits(rpm=600)).stats().adaptive
    learned = RateLimiter()
    learned.observe({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "599"})
    assert not learned.stats().adaptive  # published limits: today's behaviour
    assert learned.stats().concurrency is None


@pytest.mark.anyio
async def test_the_limiter_feeds_latency_and_in_flight_to_the_controller() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    served = 0

    async def one() -> None:
        nonlocal served
        async with limiter.admit(10) as admission:
            await clock.sleep(1.0)  # a server with room: latency stays 1 s
            admission.settle(10, completion_tokens=50)
            served += 1

    async def caller() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(one)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await clock.advance(0)
        assert limiter.stats().in_flight == 2
        assert limiter.waiting_on() == ("concurrency", None)
        for _ in range(20):
            await clock.advance(1.0)
    assert served == 200
    learned = limiter.stats().concurrency
    assert learned is not None
    assert learned >= 16  # doubled while throughput doubled


@pytest.mark.anyio
async def test_a_429_from_a_server_without_limits_lowers_the_learned_limit() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter._adaptive = AdaptiveConcurrency(initial=10)  # as if learned
    async with limiter.admit(0):
        limiter.congested(0.0, {})
    assert limiter.stats().concurrency == 7


@pytest.mark.anyio
async def test_waiting_on_names_what_holds_the_queue() -> None:
    clock = ManualClock()
    paused = RateLimiter(RateLimits(rpm=600), clock=clock, sleep=clock.sleep)
    async with anyio.create_task_group() as tg:
        async with paused.admit(0):
            paused.congested(5.0, {})
        tg.start_soon(lambda: _admit(paused))
        await clock.advance(1.0)
        reason, left = paused.waiting_on()
        assert reason == "paused"
        assert left == pytest.approx(4.0)
        assert paused.stats().paused_for_s == pytest.approx(4.0)
        await clock.advance(5.0)
    assert paused.waiting_on() == (None, None)
    tokens = RateLimiter(RateLimits(tpm=600), burst_seconds=1.0, clock=clock, sleep=clock.sleep)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _admit(tokens, 10))
        tg.start_soon(lambda: _admit(tokens, 10))
        await clock.advance(0)
        assert tokens.waiting_on() == ("tpm", None)
        await clock.advance(3.0)
    requests = RateLimiter(RateLimits(rpm=60), burst_seconds=1.0, clock=clock, sleep=clock.sleep)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _admit(requests))
        tg.start_soon(lambda: _admit(requests))
        await clock.advance(0)
        assert requests.stats().waiting_on == "rpm"
        await clock.advance(3.0)


async def _admit(limiter: RateLimiter, tokens: int = 0) -> None:
    async with limiter.admit(tokens) as admission:
        admission.settle(tokens)


# ---------------------------------------------------------------- over real HTTP

FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05)


async def run_against(
    server: RemoteSlotServer, calls: int, workers: int
) -> tuple[OpenAIClient, int]:
    """``calls`` chat calls from ``workers`` concurrent tasks (as a pipeline stage sends them),
    through a client with default settings; returns the client's ledger retries."""
    ledger = UsageLedger()
    registry = LimiterRegistry()
    todo = iter(range(calls))
    async with OpenAIClient(
        base_url=server.base_url, retry=FAST, limiters=registry, ledger=ledger, timeout=30
    ) as client:

        async def worker() -> None:
            for i in todo:
                await client.chat([{"role": "user", "content": f"q{i}"}], model="local")

        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
    usage = ledger.model_usage("local")
    assert usage.calls == calls
    return client, usage.retries


@pytest.mark.anyio
async def test_a_one_slot_server_is_not_flooded() -> None:
    # answers take 10 ms plus 1 ms per completion token (20 to 120), as decoding does
    with slot_server_process(slots=1, seconds=0.01, per_token=0.001) as server:
        client, retries = await run_against(server, calls=60, workers=16)
        seen = server.stats()
    assert retries == 0
    assert seen["hung_up"] == 0
    # 16 callers, yet the server never held more than a few waiting requests (usually 1 or
    # 2 in flight, 3 queued while a larger limit is tried; without adaptation, 15 queued)
    assert seen["max_queued"] <= 7
    assert client.limiters is not None
    (limiter,) = client.limiters.limiters().values()
    assert limiter.stats().adaptive
    learned = limiter.stats().concurrency
    assert learned is not None
    assert learned <= 4


@pytest.mark.anyio
async def test_a_server_with_more_slots_gets_more_in_flight() -> None:
    # slower answers than above: the slots, not this busy machine's client, must be the limit
    with slot_server_process(slots=6, seconds=0.02, per_token=0.002) as server:
        _, retries = await run_against(server, calls=160, workers=24)
        seen = server.stats()
    assert retries == 0
    assert seen["max_busy"] >= 5  # the slots were used
    assert seen["max_queued"] <= 12  # and not flooded by the 24 callers

"""The rate limiter on a manual clock: bucket arithmetic, FIFO order, cancellation, congestion."""

from __future__ import annotations

import itertools
import math

import anyio
import pytest

from raftkit.errors import UsageError
from raftkit.llm.limiter import Admission, LimiterRegistry, RateLimiter, RateLimits

pytestmark = pytest.mark.anyio


class ManualClock:
    """Time moves only when the test says so; sleepers wake when their deadline is passed."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        event = anyio.Event()
        self._sleepers.append((self.now + seconds, event))
        await event.wait()

    async def advance(self, seconds: float) -> None:
        """Move time forward in small steps, letting every task run at each step."""
        target = self.now + seconds
        while True:
            await anyio.wait_all_tasks_blocked()
            due = [d for d, _ in self._sleepers if d <= target + 1e-9]
            if not due:
                break
            self.now = max(self.now, min(due))
            for deadline, event in list(self._sleepers):
                if deadline <= self.now + 1e-9:
                    event.set()
                    self._sleepers.remove((deadline, event))
        self.now = target
        await anyio.wait_all_tasks_blocked()


def make(
    clock: ManualClock, limits: RateLimits | None = None, **kwargs: float | bool
) -> RateLimiter:
    return RateLimiter(limits, clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


async def admit_and_leave(
    limiter: RateLimiter, tokens: int, log: list[float], now: ManualClock
) -> None:
    async with limiter.admit(tokens) as admission:
        log.append(now())
        admission.settle(tokens)


# ---------------------------------------------------------------- bucket arithmetic


async def test_request_bucket_paces_after_the_burst() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(rpm=60), burst_seconds=2.0)  # 1 request/s, holds 2
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(admit_and_leave, limiter, 0, admitted, clock)
        await clock.advance(10)
    assert admitted == pytest.approx([0.0, 0.0, 1.0, 2.0, 3.0])


async def test_token_bucket_waits_for_the_reservation() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(tpm=600), burst_seconds=1.0)  # 10 tokens/s, holds 10
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(admit_and_leave, limiter, 5, admitted, clock)
        await clock.advance(5)
    assert admitted == pytest.approx([0.0, 0.0, 0.5])


async def test_a_request_larger_than_the_bucket_passes_when_full_and_leaves_a_debt() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(tpm=600), burst_seconds=1.0)  # holds 10 tokens
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 30, admitted, clock)
        await clock.advance(0)
        tg.start_soon(admit_and_leave, limiter, 10, admitted, clock)
        await clock.advance(10)
    # 30 taken from a full bucket of 10 leaves -20; 10 more are there after 3 s
    assert admitted == pytest.approx([0.0, 3.0])


async def test_settle_charges_a_response_larger_than_its_reservation() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(tpm=600), burst_seconds=1.0)
    admitted: list[float] = []
    async with limiter.admit(2) as admission:
        admission.settle(10)  # used 8 more than reserved: the bucket is empty now
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 10, admitted, clock)
        await clock.advance(2)
    assert admitted == pytest.approx([1.0])


@pytest.mark.parametrize(("refund", "expected"), [(False, 0.8), (True, 0.0)])
async def test_unused_tokens_are_refunded_only_when_asked(refund: bool, expected: float) -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(tpm=600), burst_seconds=1.0, refund_unused=refund)
    admitted: list[float] = []
    async with limiter.admit(10) as admission:
        admission.settle(2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 8, admitted, clock)
        await clock.advance(2)
    assert admitted == pytest.approx([expected])


async def test_a_failed_call_returns_its_whole_reservation() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(tpm=600), burst_seconds=1.0)
    with pytest.raises(RuntimeError):
        async with limiter.admit(10):
            raise RuntimeError("the call failed")
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 10, admitted, clock)
        await clock.advance(0)
    assert admitted == [0.0]


async def test_concurrency_limit() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(max_concurrency=2))
    release = anyio.Event()
    entered: list[int] = []

    async def hold(i: int) -> None:
        async with limiter.admit(1):
            entered.append(i)
            await release.wait()

    async with anyio.create_task_group() as tg:
        for i in range(3):  # one at a time: trio starts tasks in no fixed order
            tg.start_soon(hold, i)
            await clock.advance(0)
        assert entered == [0, 1]
        assert limiter.stats().in_flight == 2
        assert limiter.stats().waiting == 1
        release.set()
    assert entered == [0, 1, 2]
    assert limiter.stats().in_flight == 0


def test_limits_must_be_positive() -> None:
    with pytest.raises(UsageError):
        RateLimits(rpm=0)
    with pytest.raises(UsageError):
        RateLimits(max_concurrency=-1)
    with pytest.raises(UsageError):
        RateLimiter(burst_seconds=0)
    with pytest.raises(UsageError):
        RateLimiter().admit(-1)


# ---------------------------------------------------------------- FIFO


async def test_a_big_request_is_not_overtaken_by_later_small_ones() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(tpm=600), burst_seconds=1.0)  # 10 tokens/s, holds 10
    order: list[str] = []

    async def call(name: str, tokens: int) -> None:
        async with limiter.admit(tokens) as admission:
            order.append(name)
            admission.settle(tokens)

    async with limiter.admit(9) as first:  # leaves 1 token: enough for a small request
        first.settle(9)
    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "big", 10)
        await clock.advance(0)
        for i in range(3):  # one at a time: trio starts tasks in no fixed order
            tg.start_soon(call, f"small{i}", 1)
            await clock.advance(0)
        assert order == []  # the small ones wait behind the big one
        await clock.advance(5)
    assert order == ["big", "small0", "small1", "small2"]


# ---------------------------------------------------------------- cancellation


async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_one_goes() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(max_concurrency=1))
    release = anyio.Event()
    order: list[str] = []

    async def call(name: str) -> None:
        async with limiter.admit(1):
            order.append(name)
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "first")
        await clock.advance(0)
        with anyio.CancelScope() as waiting:
            waiting.cancel()
            await call("cancelled")
        tg.start_soon(call, "third")
        await clock.advance(0)
        assert limiter.stats().waiting == 1
        release.set()
    assert order == ["first", "third"]
    assert limiter.stats().waiting == 0


async def test_a_cancelled_head_of_queue_hands_its_turn_on() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(tpm=600), burst_seconds=1.0)
    admitted: list[str] = []

    async def call(name: str, tokens: int) -> None:
        async with limiter.admit(tokens) as admission:
            admitted.append(name)
            admission.settle(tokens)

    async with limiter.admit(10) as first:
        first.settle(10)  # the bucket is empty
    async with anyio.create_task_group() as tg:
        big = anyio.CancelScope()

        async def cancellable() -> None:
            with big:
                await call("big", 10)

        tg.start_soon(cancellable)
        await clock.advance(0)
        tg.start_soon(call, "small", 1)
        await clock.advance(0.05)
        assert admitted == []
        big.cancel()
        await clock.advance(0.1)
    assert admitted == ["small"]
    assert limiter.stats().waiting == 0


async def test_a_cancelled_call_in_flight_returns_its_slot_and_tokens() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(tpm=600, max_concurrency=1), burst_seconds=1.0)
    with anyio.CancelScope() as scope:

        async def in_flight() -> None:
            async with limiter.admit(10):
                scope.cancel()
                await anyio.sleep_forever()

        await in_flight()
    assert limiter.stats().in_flight == 0
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 10, admitted, clock)
        await clock.advance(0)
    assert admitted == [0.0]  # full bucket and a free slot, without time passing


# ---------------------------------------------------------------- congestion


async def test_a_429_pauses_the_scope_without_a_burst_after_it() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(rpm=600), burst_seconds=1.0)  # 10/s, holds 10
    limiter.congested(2.0, {})
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(admit_and_leave, limiter, 0, admitted, clock)
        await clock.advance(5)
    rate = 10 * 0.7  # one multiplicative decrease
    assert admitted[0] == pytest.approx(2 + 1 / rate)  # the bucket was emptied: no burst
    gaps = [b - a for a, b in itertools.pairwise(admitted)]
    # paced at the lowered rate (plus the little additive increase each success brings)
    assert all(1 / (rate * 1.05) < gap <= 1 / rate + 1e-9 for gap in gaps)


async def test_retry_after_comes_from_the_headers_when_not_given() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(rpm=6000), burst_seconds=1.0)
    limiter.congested(None, {"retry-after-ms": "1500", "retry-after": "2"})
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 0, admitted, clock)
        await clock.advance(3)
    assert admitted[0] == pytest.approx(1.5 + 1 / (100 * 0.7))


async def test_the_pause_is_capped() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(rpm=6000), burst_seconds=1.0, max_pause=5.0)
    limiter.congested(3600.0, {})
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 0, admitted, clock)
        await clock.advance(10)
    assert 5.0 <= admitted[0] < 5.1


async def test_decrease_once_per_episode_then_again_for_a_new_one() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(rpm=600), burst_seconds=1.0)
    before: list[Admission] = []
    # three requests sent before the first 429 came back: one episode
    for _ in range(3):
        async with limiter.admit(0) as admission:
            before.append(admission)
    for admission in before:
        limiter.congested(0.1, {}, admission=admission)
    stats = limiter.stats()
    assert stats.rate_limited == 3
    assert stats.decreases == 1
    assert stats.rpm == pytest.approx(600 * 0.7)

    await clock.advance(1)
    async with anyio.create_task_group() as tg:

        async def after() -> None:
            async with limiter.admit(0):
                limiter.congested(0.1, {})  # found through the admission in context

        tg.start_soon(after)
        await clock.advance(1)
    stats = limiter.stats()
    assert stats.decreases == 2
    assert stats.rpm == pytest.approx(600 * 0.7 * 0.7)


async def test_additive_increase_after_congestion() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(rpm=6000))
    async with limiter.admit(0) as first:
        limiter.congested(0.0, {}, admission=first)
    assert limiter.stats().factor == pytest.approx(0.7)
    factors = []
    for _ in range(6):
        await clock.advance(1.0)
        async with limiter.admit(0) as admission:
            admission.settle(0)
        factors.append(limiter.stats().factor)
    steps = [b - a for a, b in itertools.pairwise([0.7, *factors])]
    # fast up to 95 % of the rate of the last 429, then slow probing
    assert steps == pytest.approx([0.05] * 5 + [0.01])
    for _ in range(40):
        await clock.advance(1.0)
        async with limiter.admit(0) as admission:
            admission.settle(0)
    assert limiter.stats().factor == pytest.approx(1.0)  # never above the known limit


async def test_unknown_rates_under_a_given_concurrency_drive_a_window() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(max_concurrency=64))
    assert limiter.stats().concurrency == 4
    assert not limiter.stats().adaptive
    release = anyio.Event()

    async def hold() -> None:
        async with limiter.admit(10) as admission:
            await release.wait()
            admission.settle(10)

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(hold)
        await clock.advance(0)
        assert limiter.stats().in_flight == 4
        release.set()
    grown = limiter.stats().concurrency
    assert grown is not None
    assert grown > 4  # slow start: +1 per success while the window holds traffic back
    async with limiter.admit(0):
        limiter.congested(0.0, {})
    shrunk = limiter.stats().concurrency
    assert shrunk == math.floor(grown * 0.7)


# ---------------------------------------------------------------- learning from headers


async def test_limits_are_learned_from_headers() -> None:
    clock = ManualClock()
    limiter = make(clock)
    limiter.observe(
        {
            "x-ratelimit-limit-requests": "600",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-requests": "599",
            "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-requests": "100ms",
            "x-ratelimit-reset-tokens": "400ms",
        }
    )
    stats = limiter.stats()
    assert (stats.rpm, stats.tpm) == (600, 150000)
    assert stats.concurrency is None  # known rates replace the concurrency window


async def test_explicit_limits_win_over_higher_server_limits() -> None:
    limiter = RateLimiter(RateLimits(rpm=100))
    limiter.observe({"X-RateLimit-Limit-Requests": "600"})
    assert limiter.stats().rpm == 100
    limiter.observe({"x-ratelimit-limit-requests": "50"})
    assert limiter.stats().rpm == 50


async def test_the_local_bucket_holds_no_more_than_the_server_says_remains() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(rpm=600), burst_seconds=1.0)  # 10/s, holds 10
    admitted: list[float] = []
    async with limiter.admit(0):
        limiter.observe({"x-ratelimit-remaining-requests": "0"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 0, admitted, clock)
        await clock.advance(1)
    # without the header 9 requests would have been left; with it the next one waits 0.1 s
    assert admitted == pytest.approx([0.1])


async def test_requests_sent_since_are_subtracted_from_what_remains() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(tpm=6000), burst_seconds=1.0)  # 100 tokens/s, holds 100
    first = limiter.admit(10)
    admission = await first.__aenter__()
    async with limiter.admit(20) as later:
        later.settle(20)  # sent after `first`: not yet counted in first's headers
    # first's response: 50 tokens remained when the server counted it, 30 after `later`
    limiter.observe({"x-ratelimit-remaining-tokens": "50"})
    admission.settle(10)
    await first.__aexit__(None, None, None)
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 40, admitted, clock)
        await clock.advance(1)
    assert admitted == pytest.approx([0.1])  # 30 left, 10 more take 0.1 s


# ---------------------------------------------------------------- registry


def test_registry_shares_one_limiter_per_scope_and_model() -> None:
    registry = LimiterRegistry(
        RateLimits(rpm=10),
        {"gpt-4o-mini*": RateLimits(rpm=30), "gpt-4o-mini-2024-07-18": RateLimits(rpm=40)},
    )
    a = registry.get("https://api.openai.com/v1#abc", "gpt-4o-mini")
    assert registry.get("https://api.openai.com/v1#abc", "gpt-4o-mini") is a
    assert registry.get("https://api.openai.com/v1#def", "gpt-4o-mini") is not a
    assert registry.get("https://api.openai.com/v1#abc", "gpt-4o") is not a
    assert a.limits.rpm == 30
    assert registry.get("s", "gpt-4o-mini-2024-07-18").limits.rpm == 40
    assert registry.get("s", "gpt-4o").limits.rpm == 10
    assert registry.get("s", None).limits.rpm == 10
    assert len(registry.limiters()) == 6


async def test_limit_headers_can_be_ignored() -> None:
    limiter = RateLimiter(RateLimits(rpm=120), learn_limits=False)
    limiter.observe({"x-ratelimit-limit-requests": "20", "x-ratelimit-limit-tokens": "20000"})
    assert (limiter.stats().rpm, limiter.stats().tpm) == (120, None)


async def test_without_retry_after_the_exhausted_limit_says_when_to_come_back() -> None:
    clock = ManualClock()
    limiter = make(clock, RateLimits(rpm=6000), burst_seconds=1.0)
    limiter.congested(
        None,
        {
            "x-ratelimit-remaining-requests": "5",
            "x-ratelimit-reset-requests": "100ms",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "2s",
        },
    )
    admitted: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(admit_and_leave, limiter, 0, admitted, clock)
        await clock.advance(5)
    assert 2.0 <= admitted[0] < 2.1  # the tokens ran out: their reset, not the requests'

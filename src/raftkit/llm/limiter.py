"""Client-side rate limiting: stay just under the account's limits instead of bouncing off them.

One :class:`RateLimiter` guards one budget scope (an endpoint, a credential and a model or
deployment). Every request passes :meth:`RateLimiter.admit`, which waits, in strict arrival
order, until three things allow it:

- the request bucket (requests per minute),
- the token bucket (tokens per minute; a request reserves its prompt estimate plus
  ``max_tokens``, and :meth:`Admission.settle` reconciles that with the response's usage),
- the concurrency limit (requests in flight).

Both buckets hold a quarter of a second's worth and start full, so a run ramps up at the
allowed rate instead of firing a minute's budget at once. Limits come from :class:`RateLimits`
or are learned from the ``x-ratelimit-*`` headers of responses (:meth:`RateLimiter.observe`);
the local bucket is never allowed to hold more than the server says remains (less what was
sent since), which is how load from other clients of the same account is noticed before it
turns into 429s.

A 429 (:meth:`RateLimiter.congested`) pauses the whole scope for the server's wait, empties
the buckets (no burst after the pause) and lowers the rate once per congestion episode
(multiplicative decrease); the rate then climbs back (additive increase), quickly up to the
rate at which the last 429 happened and slowly beyond it. With no limits known and no headers,
the same rule drives a concurrency window instead, like TCP congestion control.

A server that publishes no limits at all (a local vLLM, llama.cpp or Ollama: no headers, no
429s, a few slots and a queue) gets no rates and no 429s to learn from, and given nothing by
the caller either (no ``max_concurrency``), its concurrency limit is learned from latency and
throughput instead (:class:`~raftkit.llm._concurrency.AdaptiveConcurrency`): it grows while
more requests in flight bring more answers per second and backs off when they only bring
longer latency, so the server's queue stays short and no request times out in it.

The clock and the sleep function are injectable so tests run on a fake clock.

The module is long because admission, the buckets, learning from headers and the reaction to
429s act on one shared state (one FIFO queue and its wake-ups); the concurrency control
without limits, which needs none of it, is the pure :mod:`raftkit.llm._concurrency`.
"""

from __future__ import annotations

import contextvars
import fnmatch
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType

import anyio

from raftkit.errors import UsageError
from raftkit.llm._base import WaitReason
from raftkit.llm._concurrency import AdaptiveConcurrency
from raftkit.llm._ratelimit_headers import RateLimitHeaders, parse_rate_limit_headers

__all__ = [
    "Admission",
    "LimiterRegistry",
    "LimiterStats",
    "RateLimiter",
    "RateLimits",
]

#: Seconds worth of budget each bucket may hold: the largest burst the limiter lets out.
DEFAULT_BURST_SECONDS = 0.25
#: Longest pause a 429 can impose; a server asking for more is retried after this anyway.
DEFAULT_MAX_PAUSE = 60.0
#: Pause after a 429 that named no wait.
_DEFAULT_PAUSE = 1.0
#: Multiplicative decrease per congestion episode and the floor of the rate factor.
_DECREASE = 0.7
_MIN_FACTOR = 0.05
#: Additive increase of the rate factor, per second of successful traffic: fast while below the
#: rate of the last 429, slow (probing) near and above it.
_FAST_INCREASE_PER_S = 0.05
_SLOW_INCREASE_PER_S = 0.01
#: Concurrency window when nothing is known: where it starts and how large it may grow.
_INITIAL_WINDOW = 4.0
_MAX_WINDOW = 1024.0
_EPSILON = 1e-9

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_current_admission: contextvars.ContextVar[Admission | None] = contextvars.ContextVar(
    "raftkit_current_admission", default=None
)


@dataclass(frozen=True)
class RateLimits:
    """An account's limits for one model or deployment; ``None`` means unknown (learned)."""

    rpm: float | None = None
    """Requests per minute."""
    tpm: float | None = None
    """Tokens per minute (prompt plus completion)."""
    max_concurrency: int | None = None
    """Requests in flight at once."""

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"RateLimits.{name} must be positive or None, got {value!r}")


@dataclass(frozen=True)
class LimiterStats:
    """A snapshot of a limiter's state, for logs and benchmarks."""

    name: str
    rpm: float | None
    """The request rate aimed at now (the known limit times the congestion factor)."""
    tpm: float | None
    concurrency: float | None
    """The concurrency cap in force (``None``: unbounded)."""
    factor: float
    """Fraction of the known limits aimed at; below 1 after congestion."""
    in_flight: int
    waiting: int
    admitted: int
    rate_limited: int
    """429s reported through :meth:`RateLimiter.congested`."""
    decreases: int
    """Congestion episodes: each lowered the rate once."""
    waiting_on: WaitReason | None = None
    """What holds the first waiting request back, if one waits."""
    paused_for_s: float | None = None
    """Seconds left of the pause after a 429."""
    adaptive: bool = False
    """Whether ``concurrency`` is learned from latency (no limits known or given)."""


class _Bucket:
    """A token bucket whose level may go below zero.

    A request larger than the bucket is let through once the bucket is full and leaves a
    debt that later requests wait out, so a big request is slowed, never refused.
    """

    def __init__(self, per_minute: float, burst_seconds: float) -> None:
        self._burst_seconds = burst_seconds
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.last: float | None = None

    def set_rate(self, per_minute: float, now: float) -> None:
        self.refill(now)
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * self._burst_seconds)
        self.level = min(self.level, self.capacity)

    def refill(self, now: float) -> None:
        if self.last is None:
            self.last = now
        elif now > self.last:
            self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
            self.last = now

    def wait_time(self, amount: float, now: float) -> float:
        need = min(amount, self.capacity)
        if self.level >= need - _EPSILON:
            return 0.0
        if self.rate <= 0:
            return math.inf
        ahead = max(0.0, (self.last or now) - now)
        return ahead + (need - self.level) / self.rate

    def drain_until(self, when: float) -> None:
        self.level = min(self.level, 0.0)
        self.last = when if self.last is None else max(self.last, when)


class Admission:
    """One admitted request. Call :meth:`settle` with the tokens the response used."""

    __slots__ = (
        "_limiter",
        "_settled",
        "admitted_at",
        "charged",
        "serial",
        "tokens",
        "tokens_mark",
    )

    def __init__(
        self, limiter: RateLimiter, tokens: int, charged: int, serial: int, mark: float, now: float
    ) -> None:
        self._limiter = limiter
        self._settled = False
        self.tokens = tokens
        """The tokens reserved at admission."""
        self.charged = charged
        self.serial = serial
        self.tokens_mark = mark
        self.admitted_at = now

    @property
    def settled(self) -> bool:
        return self._settled

    def settle(self, used_tokens: int, *, completion_tokens: int | None = None) -> None:
        """Reconcile the reservation with the response's ``usage.total_tokens``; idempotent.

        ``completion_tokens`` (where the response says) lets a limiter that learns its
        concurrency from latency weigh each answer by its length.
        """
        if self._settled:
            return
        self._settled = True
        self._limiter._settle(self, max(0, used_tokens), completion_tokens)

    def __repr__(self) -> str:
        return f"Admission(serial={self.serial}, tokens={self.tokens}, settled={self._settled})"


class _Ticket:
    __slots__ = ("tokens", "turn")

    def __init__(self, tokens: int) -> None:
        self.turn = anyio.Event()
        self.tokens = tokens


class _AdmitContext(AbstractAsyncContextManager[Admission]):
    def __init__(self, limiter: RateLimiter, tokens: int) -> None:
        self._limiter = limiter
        self._tokens = tokens
        self._admission: Admission | None = None
        self._token: contextvars.Token[Admission | None] | None = None

    async def __aenter__(self) -> Admission:
        self._admission = await self._limiter._acquire(self._tokens)
        self._token = _current_admission.set(self._admission)
        return self._admission

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current_admission.reset(self._token)
        if self._admission is not None:
            # A cancelled caller must still hand back its slot and reservation, or the scope
            # would shrink by one request for the rest of the run. The release is synchronous:
            # with no checkpoint in it, no cancellation can interrupt it (stronger than a
            # shielded scope, which only matters around an await).
            self._limiter._release(self._admission)


class RateLimiter:
    """FIFO admission under request, token and concurrency limits for one budget scope.

    ``clock`` (default :func:`anyio.current_time`) and ``sleep`` (default :func:`anyio.sleep`)
    are injectable so tests can run on a fake clock. ``burst_seconds`` is how many seconds'
    worth of budget may go out at once: keep it below the window the server enforces its
    limits over (OpenAI enforces per-minute limits over shorter periods), so that the server's
    bucket never runs dry. ``max_pause`` caps the pause a 429 can impose.

    ``refund_unused`` says how the server counts tokens. OpenAI and Azure OpenAI charge the
    prompt plus ``max_tokens`` when a request arrives and give nothing back, so by default
    :meth:`Admission.settle` only charges a response that used more than was reserved; for a
    server that counts the tokens actually used, pass ``refund_unused=True``. Either way the
    ``x-ratelimit-remaining-tokens`` header corrects the local bucket when the two disagree.

    ``learn_limits=False`` ignores ``x-ratelimit-limit-*`` (the ``remaining`` headers still
    cap the bucket): Azure OpenAI may report the limit of its short enforcement interval there
    rather than the per-minute limit, so give Azure deployments explicit limits and this flag.
    """

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        name: str = "",
        burst_seconds: float = DEFAULT_BURST_SECONDS,
        max_pause: float = DEFAULT_MAX_PAUSE,
        refund_unused: bool = False,
        learn_limits: bool = True,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if burst_seconds <= 0 or max_pause <= 0:
            raise UsageError("burst_seconds and max_pause must be positive")
        self.limits = limits or RateLimits()
        self.name = name
        self._burst_seconds = burst_seconds
        self._max_pause = max_pause
        self._refund_unused = refund_unused
        self._learn_limits = learn_limits
        self._clock: Clock = clock or anyio.current_time
        self._sleep: Sleep = sleep or anyio.sleep

        self._server_rpm: float | None = None
        self._server_tpm: float | None = None
        self._requests: _Bucket | None = None
        self._tokens: _Bucket | None = None
        self._factor = 1.0
        self._ceiling = 1.0
        self._last_increase: float | None = None

        self._window = _INITIAL_WINDOW
        self._ssthresh = math.inf
        self._in_flight = 0
        # without limits from anyone, concurrency is learned from latency and throughput
        self._adaptive = AdaptiveConcurrency() if self.limits.max_concurrency is None else None

        self._queue: deque[_Ticket] = deque()
        self._sleepers: set[anyio.CancelScope] = set()
        self._paused_until = -math.inf

        self._serial = 0
        self._tokens_admitted = 0.0
        self._episode_serial = -1
        self._episode_until = -math.inf
        self._latency = 1.0

        self._rate_limited = 0
        self._decreases = 0
        self._apply_rates(None)

    # ------------------------------------------------------------------ public surface

    def admit(self, tokens: int) -> AbstractAsyncContextManager[Admission]:
        """FIFO admission for one request reserving ``tokens`` (prompt estimate + max_tokens).

        Waits for request, token and concurrency capacity; the exit (shielded from
        cancellation) frees the concurrency slot and returns any unused reservation.
        """
        if tokens < 0:
            raise UsageError(f"a request cannot reserve a negative number of tokens ({tokens})")
        return _AdmitContext(self, tokens)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from the ``x-ratelimit-*`` headers of any response (success or error)."""
        parsed = parse_rate_limit_headers(headers)
        if parsed.empty:
            return
        self._observe(parsed, self._clock(), _current_admission.get())
        self._notify()

    def congested(
        self,
        retry_after: float | None,
        headers: Mapping[str, str],
        *,
        admission: Admission | None = None,
    ) -> None:
        """A 429 ``rate_limit_exceeded`` happened: pause the scope and, once per episode, slow down.

        ``retry_after`` is the server's wait in seconds if the caller already parsed it;
        otherwise ``retry-after-ms``, ``retry-after`` and then the reset header are used.
        ``admission`` (found automatically inside ``async with admit(...)``) tells whether the
        429 belongs to the current congestion episode (requests admitted before the last
        decrease) or starts a new one.
        """
        now = self._clock()
        parsed = parse_rate_limit_headers(headers)
        current = admission or _current_admission.get()
        self._observe(parsed, now, current)
        self._rate_limited += 1

        wait = retry_after if retry_after is not None else _pause_from(parsed)
        wait = min(max(wait, 0.0), self._max_pause)
        self._paused_until = max(self._paused_until, now + wait)
        for bucket in (self._requests, self._tokens):
            if bucket is not None:
                bucket.drain_until(self._paused_until)

        if current is not None:
            new_episode = current.serial >= self._episode_serial
        else:
            new_episode = now >= self._episode_until
        if new_episode:
            self._decrease(now)
            self._episode_serial = self._serial
            self._episode_until = self._paused_until + 2 * self._latency
            self._apply_rates(now)
        self._last_increase = self._paused_until
        self._notify()

    def waiting_on(self) -> tuple[WaitReason | None, float | None]:
        """What holds the first waiting request back (``None`` if none waits), and the
        seconds left of a pause after a 429."""
        if not self._queue:
            return None, None
        now = self._clock()
        if now < self._paused_until:
            return "paused", self._paused_until - now
        if self._in_flight >= self._concurrency_cap():
            return "concurrency", None
        if self._requests is not None:
            self._requests.refill(now)
            if self._requests.wait_time(1, now) > 0:
                return "rpm", None
        if self._tokens is not None:
            self._tokens.refill(now)
            if self._tokens.wait_time(self._queue[0].tokens, now) > 0:
                return "tpm", None
        return None, None

    def stats(self) -> LimiterStats:
        """The limiter's current state."""
        rpm, tpm = self._target_rates()
        cap = self._concurrency_cap()
        reason, paused_for = self.waiting_on()
        return LimiterStats(
            name=self.name,
            rpm=rpm,
            tpm=tpm,
            concurrency=None if math.isinf(cap) else cap,
            factor=self._factor,
            in_flight=self._in_flight,
            waiting=len(self._queue),
            admitted=self._serial,
            rate_limited=self._rate_limited,
            decreases=self._decreases,
            waiting_on=reason,
            paused_for_s=paused_for,
            adaptive=self._learning_concurrency(),
        )

    def __repr__(self) -> str:
        return f"RateLimiter(name={self.name!r}, limits={self.limits!r})"

    # ------------------------------------------------------------------ admission

    async def _acquire(self, tokens: int) -> Admission:
        ticket = _Ticket(tokens)
        self._queue.append(ticket)
        self._track()
        try:
            if self._queue[0] is not ticket:
                await ticket.turn.wait()
            while True:
                now = self._clock()
                delay = self._wait_time(tokens, now)
                if delay <= 0:
                    return self._take(tokens, now)
                await self._wait(delay)
        finally:
            was_head = self._queue[0] is ticket
            self._queue.remove(ticket)
            self._track()
            if was_head and self._queue:
                self._queue[0].turn.set()

    def _wait_time(self, tokens: int, now: float) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        if self._in_flight >= self._concurrency_cap():
            return math.inf
        wait = 0.0
        if self._requests is not None:
            self._requests.refill(now)
            wait = max(wait, self._requests.wait_time(1, now))
        if self._tokens is not None:
            self._tokens.refill(now)
            wait = max(wait, self._tokens.wait_time(tokens, now))
        return wait

    def _take(self, tokens: int, now: float) -> Admission:
        if self._requests is not None:
            self._requests.level -= 1
        charged = 0
        if self._tokens is not None:
            self._tokens.level -= tokens
            charged = tokens
        admission = Admission(self, tokens, charged, self._serial, self._tokens_admitted, now)
        self._serial += 1
        self._tokens_admitted += tokens
        self._in_flight += 1
        # _acquire tracks the change once the ticket has left the queue
        return admission

    async def _wait(self, delay: float) -> None:
        # Only the head of the queue sleeps; anything that frees capacity cancels its sleep.
        with anyio.CancelScope() as scope:
            self._sleepers.add(scope)
            try:
                if math.isinf(delay):
                    await anyio.sleep_forever()
                else:
                    await self._sleep(delay)
            finally:
                self._sleepers.discard(scope)

    def _notify(self) -> None:
        for scope in self._sleepers:
            scope.cancel()
        self._sleepers.clear()

    def _settle(self, admission: Admission, used: int, completion: int | None = None) -> None:
        now = self._clock()
        if self._tokens is not None:
            self._tokens.refill(now)
            if self._refund_unused:
                correction = admission.charged - used
            else:
                # OpenAI and Azure count prompt + max_tokens at admission and give nothing back;
                # only a response larger than the reservation costs more than was reserved.
                correction = min(0, admission.charged - used)
            self._tokens.level = min(self._tokens.capacity, self._tokens.level + correction)
        latency = max(0.0, now - admission.admitted_at)
        self._latency = 0.8 * self._latency + 0.2 * latency
        if self._adaptive is not None:
            self._adaptive.sample(now, latency, admission.admitted_at, completion)
        self._on_success(now)
        self._notify()

    def _release(self, admission: Admission) -> None:
        self._in_flight -= 1
        if not admission.settled and self._tokens is not None and admission.charged:
            # Failed, rate-limited or cancelled: the tokens were not spent (or cannot be known).
            self._tokens.level = min(self._tokens.capacity, self._tokens.level + admission.charged)
        self._track()
        self._notify()

    def _track(self) -> None:
        """Tell the adaptive concurrency limit what is in flight and waiting now."""
        if self._adaptive is not None:
            self._adaptive.update(self._clock(), self._in_flight, len(self._queue))

    # ------------------------------------------------------------------ learning

    def _observe(self, parsed: RateLimitHeaders, now: float, admission: Admission | None) -> None:
        changed = False
        if self._learn_limits:
            if parsed.limit_requests and parsed.limit_requests != self._server_rpm:
                self._server_rpm = parsed.limit_requests
                changed = True
            if parsed.limit_tokens and parsed.limit_tokens != self._server_tpm:
                self._server_tpm = parsed.limit_tokens
                changed = True
        if changed:
            self._apply_rates(now)
        if parsed.remaining_requests is not None and self._requests is not None:
            after = 0.0 if admission is None else self._serial - admission.serial - 1
            self._cap(self._requests, parsed.remaining_requests, after, now)
        if parsed.remaining_tokens is not None and self._tokens is not None:
            after = 0.0
            if admission is not None:
                after = self._tokens_admitted - admission.tokens_mark - admission.tokens
            self._cap(self._tokens, parsed.remaining_tokens, after, now)

    def _cap(self, bucket: _Bucket, remaining: float, admitted_after: float, now: float) -> None:
        # The server counted `remaining` when this request arrived; our later requests have
        # reached it since. Its refill since then is left out on purpose: other clients may
        # have taken it, and leaving it out keeps the server's bucket from running dry.
        estimate = remaining - admitted_after
        bucket.refill(now)
        bucket.level = min(bucket.level, estimate)

    def _target_rates(self) -> tuple[float | None, float | None]:
        rpm = _min_known(self.limits.rpm, self._server_rpm)
        tpm = _min_known(self.limits.tpm, self._server_tpm)
        return (
            None if rpm is None else rpm * self._factor,
            None if tpm is None else tpm * self._factor,
        )

    def _apply_rates(self, now: float | None) -> None:
        rpm, tpm = self._target_rates()
        if rpm is not None:
            if self._requests is None:
                self._requests = _Bucket(rpm, self._burst_seconds)
            elif now is not None:
                self._requests.set_rate(rpm, now)
        if tpm is not None:
            if self._tokens is None:
                self._tokens = _Bucket(tpm, self._burst_seconds)
            elif now is not None:
                self._tokens.set_rate(tpm, now)

    def _rates_known(self) -> bool:
        return self._requests is not None or self._tokens is not None

    def _learning_concurrency(self) -> bool:
        return self._adaptive is not None and not self._rates_known()

    def _concurrency_cap(self) -> float:
        cap = float(self.limits.max_concurrency or math.inf)
        if self._rates_known():
            return cap
        if self._adaptive is not None:
            return min(cap, self._adaptive.limit)
        return min(cap, math.floor(self._window))

    def _decrease(self, now: float) -> None:
        self._decreases += 1
        if self._rates_known():
            self._ceiling = self._factor
            self._factor = max(_MIN_FACTOR, self._factor * _DECREASE)
        elif self._adaptive is not None:
            self._adaptive.congested(now)
        else:
            self._ssthresh = max(1.0, self._window * _DECREASE)
            self._window = self._ssthresh

    def _on_success(self, now: float) -> None:
        if now < self._paused_until:
            return
        if self._rates_known():
            last = self._last_increase if self._last_increase is not None else now
            self._last_increase = now
            if self._factor >= 1.0:
                return
            # at most a second's credit, so an idle spell is not mistaken for proof of capacity
            elapsed = min(1.0, max(0.0, now - last))
            fast = self._factor < 0.95 * self._ceiling
            step = (_FAST_INCREASE_PER_S if fast else _SLOW_INCREASE_PER_S) * elapsed
            self._factor = min(1.0, self._factor + step)
            self._apply_rates(now)
        elif self._adaptive is None and self._in_flight + 1 >= math.floor(self._window):
            # grow only while the window is what holds traffic back
            step = 1.0 if self._window < self._ssthresh else 1.0 / self._window
            cap = float(self.limits.max_concurrency or _MAX_WINDOW)
            self._window = min(cap, self._window + step)


def _min_known(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _pause_from(parsed: RateLimitHeaders) -> float:
    if parsed.retry_after is not None:
        return parsed.retry_after
    exhausted = [
        reset
        for remaining, reset in (
            (parsed.remaining_requests, parsed.reset_requests),
            (parsed.remaining_tokens, parsed.reset_tokens),
        )
        if reset is not None and remaining is not None and remaining < 1
    ]
    if exhausted:
        return max(exhausted)
    resets = [r for r in (parsed.reset_requests, parsed.reset_tokens) if r is not None]
    if resets:
        return min(resets)
    return _DEFAULT_PAUSE


class LimiterRegistry:
    """One :class:`RateLimiter` per budget scope, shared by every client that uses that scope.

    A scope is what the provider budgets by: endpoint + credential fingerprint (never the key
    itself) + model or deployment. ``per_model`` maps model names, or ``fnmatch`` patterns such
    as ``"gpt-4o-mini*"``, to their limits; other models get ``default``.
    """

    def __init__(
        self,
        default: RateLimits | None = None,
        per_model: Mapping[str, RateLimits] | None = None,
        *,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
        refund_unused: bool = False,
        learn_limits: bool = True,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.default = default or RateLimits()
        self.per_model = dict(per_model or {})
        self._burst_seconds = burst_seconds
        self._refund_unused = refund_unused
        self._learn_limits = learn_limits
        self._clock = clock
        self._sleep = sleep
        self._limiters: dict[tuple[str, str], RateLimiter] = {}

    def limits_for(self, model: str | None) -> RateLimits:
        """The configured limits for ``model``: an exact name, else the longest matching pattern."""
        if model is None:
            return self.default
        if model in self.per_model:
            return self.per_model[model]
        patterns = [p for p in self.per_model if fnmatch.fnmatchcase(model, p)]
        if patterns:
            return self.per_model[max(patterns, key=len)]
        return self.default

    def get(self, scope: str, model: str | None) -> RateLimiter:
        """The limiter of ``scope`` and ``model``, created on first use."""
        key = (scope, model or "")
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = RateLimiter(
                self.limits_for(model),
                name=f"{scope}/{model}" if model else scope,
                burst_seconds=self._burst_seconds,
                refund_unused=self._refund_unused,
                learn_limits=self._learn_limits,
                clock=self._clock,
                sleep=self._sleep,
            )
            self._limiters[key] = limiter
        return limiter

    def limiters(self) -> dict[tuple[str, str], RateLimiter]:
        """Every limiter created so far, keyed by ``(scope, model)``."""
        return dict(self._limiters)

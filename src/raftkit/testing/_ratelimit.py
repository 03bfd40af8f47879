"""Account rate limits: requests and tokens per minute, as continuously refilled buckets.

Each model (or Azure deployment) has one bucket for requests and one for tokens. A bucket holds
one minute's budget, or only ``window_seconds`` worth of it when the limit is enforced in short
windows, as real services do. A simulated other client on the same account
(``background_load``) takes its share of every refill, so our client sees only the rest.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Admission",
    "RateLimit",
    "RateLimiter",
    "TokenBucket",
    "format_duration",
]


def format_duration(seconds: float) -> str:
    """A duration the way OpenAI writes it in ``x-ratelimit-reset-*``: "6m0s", "1m7.5s", "20ms"."""
    seconds = max(0.0, seconds)
    if seconds == 0.0:
        return "0s"
    if seconds < 1.0:
        return f"{round(seconds * 1000)}ms"
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{text}{secs}s"


class TokenBucket:
    """A bucket of ``capacity`` units refilled at ``rate`` units per second.

    A cost larger than the whole bucket is admitted when the bucket is full (the level goes
    below zero and the debt is repaid by refill), so a short enforcement window never makes a
    request impossible that the per-minute limit allows.
    """

    def __init__(self, capacity: float, rate: float, now: float, *, level: float | None = None):
        self.capacity = capacity
        self.rate = rate
        self.level = capacity if level is None else level
        self._last = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self.level = min(self.capacity, self.level + elapsed * self.rate)

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` can be taken (after :meth:`refill`)."""
        needed = min(cost, self.capacity) - self.level
        if needed <= 0:
            return 0.0
        return needed / self.rate if self.rate > 0 else math.inf

    def take(self, cost: float) -> None:
        self.level -= cost

    def until_full(self) -> float:
        missing = self.capacity - self.level
        if missing <= 0:
            return 0.0
        return missing / self.rate if self.rate > 0 else math.inf


@dataclass(frozen=True)
class RateLimit:
    """Requests and tokens per minute for one model or deployment (``None``: unlimited)."""

    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True)
class Admission:
    """The limiter's verdict on one request, with what the response headers must say."""

    admitted: bool
    headers: dict[str, str]
    # why it was refused: "requests" / "tokens" bucket empty, or "too_large" for never
    reason: Literal["requests", "tokens", "too_large"] | None = None
    retry_after: float = 0.0
    limit: int = 0
    used: int = 0
    requested: int = 0


class _Buckets:
    def __init__(
        self, limit: RateLimit, now: float, *, window_seconds: float | None, background: float
    ) -> None:
        share = 1.0 - background

        def make(per_minute: int | None) -> TokenBucket | None:
            if per_minute is None:
                return None
            full = per_minute if window_seconds is None else per_minute / 60.0 * window_seconds
            return TokenBucket(full, per_minute / 60.0 * share, now, level=full * share)

        self.limit = limit
        self.requests = make(limit.rpm)
        self.tokens = make(limit.tpm)


class RateLimiter:
    """Admission control for every model or deployment, safe to call from any thread."""

    def __init__(
        self,
        default: RateLimit,
        overrides: Mapping[str, RateLimit] | None = None,
        *,
        clock: Callable[[], float],
        window_seconds: float | None = None,
        background_load: float = 0.0,
    ) -> None:
        if not 0.0 <= background_load < 1.0:
            raise ValueError(f"background_load must be in [0, 1), got {background_load}")
        self._default = default
        self._overrides = dict(overrides or {})
        self._clock = clock
        self._window = window_seconds
        self._background = background_load
        self._lock = threading.Lock()
        self._buckets: dict[str, _Buckets] = {}

    def set_limit(self, key: str, limit: RateLimit) -> None:
        """Change the limits of ``key`` (a model or deployment); its buckets start full."""
        with self._lock:
            self._overrides[key] = limit
            self._buckets.pop(key, None)

    def _for(self, key: str, now: float) -> _Buckets:
        buckets = self._buckets.get(key)
        if buckets is None:
            limit = self._overrides.get(key, self._default)
            buckets = _Buckets(limit, now, window_seconds=self._window, background=self._background)
            self._buckets[key] = buckets
        return buckets

    def admit(self, key: str, tokens: int) -> Admission:
        """Take one request and ``tokens`` from ``key``'s buckets, or say why not."""
        with self._lock:
            now = self._clock()
            buckets = self._for(key, now)
            limit = buckets.limit
            for bucket in (buckets.requests, buckets.tokens):
                if bucket is not None:
                    bucket.refill(now)
            if limit.tpm is not None and tokens > limit.tpm:
                return Admission(
                    False,
                    self._headers(buckets),
                    reason="too_large",
                    limit=limit.tpm,
                    requested=tokens,
                    retry_after=0.0,
                )
            if buckets.requests is not None and limit.rpm is not None:
                wait = buckets.requests.wait_for(1)
                if wait > 0:
                    return self._refusal(buckets, "requests", wait, limit.rpm, 1)
            if buckets.tokens is not None and limit.tpm is not None:
                wait = buckets.tokens.wait_for(tokens)
                if wait > 0:
                    return self._refusal(buckets, "tokens", wait, limit.tpm, tokens)
            if buckets.requests is not None:
                buckets.requests.take(1)
            if buckets.tokens is not None:
                buckets.tokens.take(tokens)
            return Admission(True, self._headers(buckets))

    def headers(self, key: str) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers for ``key`` right now (empty when unlimited)."""
        with self._lock:
            now = self._clock()
            buckets = self._for(key, now)
            for bucket in (buckets.requests, buckets.tokens):
                if bucket is not None:
                    bucket.refill(now)
            return self._headers(buckets)

    def _refusal(
        self,
        buckets: _Buckets,
        reason: Literal["requests", "tokens"],
        wait: float,
        limit: int,
        requested: int,
    ) -> Admission:
        bucket = buckets.requests if reason == "requests" else buckets.tokens
        assert bucket is not None
        used = max(0, round(bucket.capacity - bucket.level))
        return Admission(
            False,
            self._headers(buckets),
            reason=reason,
            retry_after=wait,
            limit=limit,
            used=min(used, limit),
            requested=requested,
        )

    @staticmethod
    def _headers(buckets: _Buckets) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, bucket, limit in (
            ("requests", buckets.requests, buckets.limit.rpm),
            ("tokens", buckets.tokens, buckets.limit.tpm),
        ):
            if bucket is None or limit is None:
                continue
            headers[f"x-ratelimit-limit-{name}"] = str(limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.level)))
            headers[f"x-ratelimit-reset-{name}"] = format_duration(bucket.until_full())
        return headers

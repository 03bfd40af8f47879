"""Polling long-running work (jobs, batches, files, deployments) with a capped backoff.

The request path already retries each call; a poll loop adds one thing on top: a call that
still failed for a passing reason (a dropped connection, a 5xx, a 429 after its retries) must
not end a wait of hours. Those are logged and the loop polls again, until its deadline.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import anyio

from raftkit.errors import (
    APIConnectionError,
    InternalServerError,
    QuotaExceededError,
    RaftkitError,
    RateLimitError,
)

__all__ = ["PollPolicy", "Poller", "is_transient"]

logger = logging.getLogger("raftkit.finetune")


def is_transient(error: BaseException) -> bool:
    """Whether polling again later may succeed where this call failed."""
    if isinstance(error, QuotaExceededError):
        return False
    return isinstance(error, APIConnectionError | InternalServerError | RateLimitError)


@dataclass(frozen=True)
class PollPolicy:
    """Seconds between polls: ``initial``, times ``factor`` after each unchanged poll, at most
    ``maximum``; ``timeout`` (``None``: no deadline) bounds the whole wait."""

    initial: float = 2.0
    maximum: float = 60.0
    factor: float = 1.5
    timeout: float | None = 48 * 3600.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 <= initial <= maximum and factor >= 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive (or None)")


class Poller:
    """One wait: tracks the deadline and the current interval."""

    def __init__(self, policy: PollPolicy, what: str) -> None:
        self.policy = policy
        self.what = what
        self.interval = policy.initial
        self.deadline = (
            anyio.current_time() + policy.timeout if policy.timeout is not None else math.inf
        )
        self.transient_failures = 0

    @property
    def expired(self) -> bool:
        return anyio.current_time() >= self.deadline

    def progressed(self) -> None:
        """Something changed: poll soon again."""
        self.interval = self.policy.initial

    def absorb(self, error: RaftkitError) -> None:
        """Re-raise ``error`` unless it is transient; a transient one is logged and survived."""
        if not is_transient(error) or self.expired:
            raise error
        self.transient_failures += 1
        logger.warning("polling %s failed, trying again: %s", self.what, error)

    async def sleep(self) -> None:
        remaining = self.deadline - anyio.current_time()
        await anyio.sleep(max(0.0, min(self.interval, remaining)))
        self.interval = min(self.policy.maximum, self.interval * self.policy.factor)

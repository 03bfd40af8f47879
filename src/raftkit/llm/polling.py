"""Waiting for long-running work (jobs, batches, files, deployments): one poll loop.

The request path already retries each call; a poll loop adds one thing on top: a call that
still failed for a passing reason (a dropped connection, a 5xx, a 429 after its retries) must
not end a wait of hours. Those are logged and the loop polls again, until its deadline, when
:class:`~raftkit.errors.WaitTimeoutError` says what the work was last seen doing (the work
itself goes on; waiting again later resumes).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from raftkit.errors import (
    APIConnectionError,
    APIError,
    InternalServerError,
    QuotaExceededError,
    RateLimitError,
    WaitTimeoutError,
)

__all__ = ["PollPolicy", "is_transient", "poll_until"]

logger = logging.getLogger("raftkit.llm")

_T = TypeVar("_T")


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


async def poll_until(
    fetch: Callable[[], Awaitable[_T]],
    *,
    status: Callable[[_T], str],
    done: Callable[[_T], bool],
    policy: PollPolicy,
    what: str,
    resource_id: str,
    hint: str = "",
    current: _T | None = None,
    on_value: Callable[[_T], Awaitable[bool]] | None = None,
) -> _T:
    """Call ``fetch`` until ``done(value)``, then return that value.

    ``status(value)`` is what the work is doing; a change is logged and resets the interval
    to ``policy.initial``, as does ``on_value(value)`` returning ``True`` (it is awaited after
    every successful fetch, e.g. to pass on new events). ``done`` may raise to end the wait
    with a failure. ``current`` is a value already in hand, looked at before the first fetch.

    A fetch that fails with a transient :class:`~raftkit.errors.APIError` is logged and
    retried at the next poll; any other error is raised. At the deadline,
    :class:`~raftkit.errors.WaitTimeoutError` names ``what`` (e.g. ``"batch b_1"``), its last
    status and ``hint`` (what to do next).
    """
    deadline = anyio.current_time() + policy.timeout if policy.timeout is not None else math.inf
    interval = policy.initial
    last: str | None = None

    async def attempt() -> _T | None:
        try:
            return await fetch()
        except APIError as error:
            if not is_transient(error) or anyio.current_time() >= deadline:
                raise
            logger.warning("polling %s failed, trying again: %s", what, error)
            return None

    value = current if current is not None else await attempt()
    while True:
        if value is not None:
            state = status(value)
            progressed = await on_value(value) if on_value is not None else False
            if state != last:
                logger.info("%s: %s", what, state)
            if progressed or state != last:
                interval = policy.initial
            last = state
            if done(value):
                return value
        if anyio.current_time() >= deadline:
            raise WaitTimeoutError(
                f"{what} was still {last or 'unknown'} when the wait ended{hint}",
                resource_id=resource_id,
                last_status=last,
            )
        await anyio.sleep(max(0.0, min(interval, deadline - anyio.current_time())))
        interval = min(policy.maximum, interval * policy.factor)
        value = await attempt()

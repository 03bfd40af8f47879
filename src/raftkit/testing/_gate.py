"""What every billable request passes before it is answered: body parsing, quota, rate limits,
a request slot (local dialects), and the simulated wait."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.requests import Request
from starlette.types import Receive

from raftkit.testing._errors import SimulatorHTTPError
from raftkit.testing._state import SimulatorState

__all__ = ["admit", "hold", "read_json", "request_slot", "simulated_latency"]

_ORGANIZATION = "org-raftkit-simulator"
_LIMITS_URL = "Visit https://platform.openai.com/account/rate-limits to learn more."


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object, or a 400 like OpenAI's for anything else."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SimulatorHTTPError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            type="invalid_request_error",
        )
    return body


def admit(state: SimulatorState, key: str, model: str, tokens: int) -> dict[str, str]:
    """Charge one request and ``tokens`` to ``key``'s limits; the ``x-ratelimit-*`` headers.

    Raises the 429 OpenAI sends when the quota is gone, a bucket is empty, or the request
    is larger than the whole per-minute token budget.
    """
    if state.insufficient_quota:
        raise SimulatorHTTPError(
            429,
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            type="insufficient_quota",
            code="insufficient_quota",
        )
    verdict = state.limiter.admit(key, tokens)
    if verdict.admitted:
        return verdict.headers
    if verdict.reason == "too_large":
        raise SimulatorHTTPError(
            429,
            f"Request too large for {model} in organization {_ORGANIZATION} on tokens per min "
            f"(TPM): Limit {verdict.limit}, Requested {verdict.requested}. The input or output "
            f"tokens must be reduced in order to run successfully. {_LIMITS_URL}",
            type="tokens",
            code="rate_limit_exceeded",
            headers={**verdict.headers, "x-should-retry": "false"},
        )
    unit = "requests per min (RPM)" if verdict.reason == "requests" else "tokens per min (TPM)"
    wait = verdict.retry_after
    millis = max(1, math.ceil(wait * 1000))
    raise SimulatorHTTPError(
        429,
        f"Rate limit reached for {model} in organization {_ORGANIZATION} on {unit}: "
        f"Limit {verdict.limit}, Used {verdict.used}, Requested {verdict.requested}. "
        f"Please try again in {_seconds(wait)}. {_LIMITS_URL}",
        type=verdict.reason,
        code="rate_limit_exceeded",
        headers={
            **verdict.headers,
            "retry-after-ms": str(millis),
            "retry-after": str(math.ceil(millis / 1000)),
        },
    )


def _seconds(wait: float) -> str:
    if wait < 1:
        return f"{math.ceil(wait * 1000)}ms"
    return f"{math.ceil(wait * 1000) / 1000:g}s"


def simulated_latency(state: SimulatorState, completion_tokens: int) -> float:
    return state.config.latency_base + state.config.latency_per_token * completion_tokens


async def hold(state: SimulatorState, receive: Receive, seconds: float) -> bool:
    """Wait ``seconds``; whether the client hung up meanwhile.

    The wait watches the connection, so a client that gives up frees it at once, and
    :meth:`SimulatorState.release_holds` ends every wait when the simulator stops.
    """
    if seconds <= 0 or state.closing:
        return False
    with anyio.move_on_after(seconds) as scope:
        with state.lock:
            state.holds.add(scope)
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return True
        finally:
            with state.lock:
                state.holds.discard(scope)
    return False


@asynccontextmanager
async def request_slot(state: SimulatorState, receive: Receive) -> AsyncIterator[bool]:
    """Hold one of the server's request slots while the body runs; wait for one first.

    Yields ``False`` (holding nothing) when the client hung up while it waited. Without a slot
    limit (the OpenAI dialect) it only counts requests in flight.
    """
    limit = state.slot_limit()
    if limit is None:
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            yield True
        finally:
            state.in_flight -= 1
        return
    if state.slot_semaphore is None:
        state.slot_semaphore = anyio.Semaphore(limit)
    semaphore = state.slot_semaphore
    gone = False
    acquired = False
    state.queued += 1
    try:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                nonlocal gone
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        gone = True
                        group.cancel_scope.cancel()
                        return

            group.start_soon(watch)
            await semaphore.acquire()
            acquired = True
            group.cancel_scope.cancel()
    finally:
        state.queued -= 1
    if not acquired or gone:
        if acquired:
            semaphore.release()
        yield False
        return
    state.in_flight += 1
    state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
    try:
        yield True
    finally:
        state.in_flight -= 1
        semaphore.release()

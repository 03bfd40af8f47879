"""poll_until: the one poll loop of jobs, batches, files and deployments."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import pytest

from raftkit.errors import (
    APIConnectionError,
    BadRequestError,
    InternalServerError,
    QuotaExceededError,
    RateLimitError,
    WaitTimeoutError,
)
from raftkit.llm import PollPolicy, poll_until
from raftkit.llm.polling import is_transient

pytestmark = pytest.mark.anyio

QUICK = PollPolicy(initial=0.0, maximum=0.0, timeout=30.0)


class Service:
    """Answers each poll with the next scripted status (or raises the scripted error)."""

    def __init__(self, script: Iterable[str | Exception]) -> None:
        self.script = deque(script)
        self.polls = 0

    async def fetch(self) -> str:
        self.polls += 1
        item = self.script.popleft()
        if isinstance(item, Exception):
            raise item
        return item

    async def wait(
        self,
        until: str | Callable[[str], bool] = "done",
        *,
        policy: PollPolicy = QUICK,
        **kwargs: Any,
    ) -> str:
        """``poll_until`` this service until the status ``until`` (or ``until(status)``)."""
        done = until if callable(until) else (lambda value: value == until)
        kwargs.setdefault("what", "job j")
        kwargs.setdefault("resource_id", "j")
        return await poll_until(self.fetch, status=str, done=done, policy=policy, **kwargs)


async def test_passing_failures_are_survived_until_done(anyio_backend: str) -> None:
    service = Service(
        [
            "queued",
            APIConnectionError("reset"),
            InternalServerError("boom", status_code=500),
            RateLimitError("slow down", status_code=429),
            "running",
            "done",
        ]
    )
    seen: list[str] = []

    async def on_value(value: str) -> bool:
        seen.append(value)
        return False

    assert await service.wait(on_value=on_value) == "done"
    assert service.polls == 6
    assert seen == ["queued", "running", "done"]


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("no", status_code=400),
        QuotaExceededError("out of credit", status_code=429, code="insufficient_quota"),
    ],
)
async def test_other_failures_end_the_wait(anyio_backend: str, error: Exception) -> None:
    service = Service(["queued", error, "done"])
    with pytest.raises(type(error)):
        await service.wait()
    assert not is_transient(error)


async def test_done_may_raise_a_failure(anyio_backend: str) -> None:
    def done(value: str) -> bool:
        if value == "failed":
            raise RuntimeError("the service failed it")
        return value == "done"

    service = Service(["queued", "failed", "done"])
    with pytest.raises(RuntimeError, match="failed it"):
        await service.wait(done)
    assert service.polls == 2


async def test_a_value_in_hand_is_looked_at_before_polling(anyio_backend: str) -> None:
    service = Service([])
    assert await service.wait("processed", current="processed") == "processed"
    assert service.polls == 0


async def test_the_deadline_names_the_work_its_last_status_and_what_to_do(
    anyio_backend: str,
) -> None:
    service = Service(["validating", *(["in_progress"] * 1000)])
    with pytest.raises(WaitTimeoutError) as caught:
        await service.wait(
            "completed",
            policy=PollPolicy(initial=0.01, maximum=0.01, timeout=0.05),
            what="batch b_1",
            resource_id="b_1",
            hint="; run again to keep polling it",
        )
    assert str(caught.value) == (
        "batch b_1 was still in_progress when the wait ended; run again to keep polling it"
    )
    assert caught.value.resource_id == "b_1"
    assert caught.value.last_status == "in_progress"
    assert isinstance(caught.value, TimeoutError)


async def test_progress_brings_the_next_poll_sooner(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    real_sleep: Callable[[float], Awaitable[None]] = anyio.sleep

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        await real_sleep(0)

    monkeypatch.setattr(anyio, "sleep", sleep)
    service = Service(["a", "a", "a", "b", "b", "done"])
    await service.wait(policy=PollPolicy(initial=1.0, maximum=3.0, factor=2.0, timeout=None))
    # unchanged polls back off (1, 2, capped at 3); a new status starts again at 1
    assert slept == [1.0, 2.0, 3.0, 1.0, 2.0]

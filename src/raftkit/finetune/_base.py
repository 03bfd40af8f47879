"""The :class:`FineTuneProvider` plug-in point: files in, a fine-tuned model out.

A provider is given its client by the caller and never closes it. ``wait`` is written once
here, on top of ``get_job`` and ``events``, so a provider for another service (a local trainer,
another vendor) gets resumable, connection-tolerant waiting for free.
"""

from __future__ import annotations

import abc
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal

import anyio.lowlevel

from raftkit.finetune._errors import FineTuneJobFailedError
from raftkit.finetune._models import (
    TERMINAL_STATUSES,
    Checkpoint,
    FineTuneJob,
    Hyperparameters,
    JobEvent,
    TrainingMetrics,
)
from raftkit.llm.files import UploadedFile
from raftkit.llm.polling import PollPolicy, poll_until
from raftkit.resources import AsyncResource

__all__ = [
    "FINE_TUNE_METHODS",
    "KNOWN_STATUSES",
    "EventCallback",
    "FileSource",
    "FineTuneMethod",
    "FineTuneProvider",
    "JobCallback",
]

logger = logging.getLogger("raftkit.finetune")

#: Called with each new event while waiting; may be a plain function or a coroutine function.
EventCallback = Callable[[JobEvent], Awaitable[None] | None]
#: Called with the job after every poll while waiting (plain or coroutine function).
JobCallback = Callable[[FineTuneJob], Awaitable[None] | None]
#: A file to upload: a path, or the content itself.
FileSource = str | os.PathLike[str] | bytes

#: How a job trains: on chat examples (``supervised``) or on preference pairs (``dpo``).
FineTuneMethod = Literal["supervised", "dpo"]
FINE_TUNE_METHODS: tuple[FineTuneMethod, ...] = ("supervised", "dpo")

#: Job states a provider knows; any other is logged and waited through.
KNOWN_STATUSES = frozenset({"validating_files", "queued", "running"}) | TERMINAL_STATUSES


class FineTuneProvider(AsyncResource):
    """A fine-tuning service. An async context manager; closing it leaves the client open."""

    #: Polling of :meth:`wait` when the caller gives no policy.
    default_poll = PollPolicy()

    async def aclose(self) -> None:
        """Release what the provider opened itself (never the client it was given)."""
        # the built-in providers open nothing; a subclass that does overrides this
        await anyio.lowlevel.checkpoint()

    # ------------------------------------------------------------------ files

    @abc.abstractmethod
    async def upload_file(
        self,
        source: FileSource,
        *,
        filename: str | None = None,
        purpose: str = "fine-tune",
    ) -> UploadedFile:
        """Upload a training or validation file, reusing an identical earlier upload."""

    # ------------------------------------------------------------------ jobs

    @abc.abstractmethod
    async def create_job(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        hyperparameters: Hyperparameters | None = None,
        metadata: Mapping[str, str] | None = None,
        method: FineTuneMethod = "supervised",
        beta: float | None = None,
    ) -> FineTuneJob:
        """Start a fine-tuning job on uploaded files (by id): ``supervised`` on chat examples,
        or ``dpo`` on preference pairs with ``beta`` (``None``: the service's ``auto``)."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> FineTuneJob: ...

    @abc.abstractmethod
    def list_jobs(self) -> AsyncIterator[FineTuneJob]:
        """Every job, newest first, page by page."""

    @abc.abstractmethod
    async def cancel_job(self, job_id: str) -> FineTuneJob: ...

    @abc.abstractmethod
    def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's events, newest first (as the services list them), page by page."""

    @abc.abstractmethod
    def checkpoints(self, job_id: str) -> AsyncIterator[Checkpoint]:
        """The job's checkpoints, newest first."""

    @abc.abstractmethod
    async def metrics(self, job: FineTuneJob | str) -> TrainingMetrics:
        """Per-step training (and validation) loss and accuracy of a succeeded job."""

    @abc.abstractmethod
    async def deploy(self, model: FineTuneJob | str, *, name: str | None = None) -> str:
        """Make a fine-tuned model callable; returns the ``model`` to pass to ``chat``."""

    # ------------------------------------------------------------------ waiting

    async def wait(
        self,
        job_id: str,
        *,
        on_event: EventCallback | None = None,
        poll: PollPolicy | None = None,
        raise_on_failure: bool = True,
        on_job: JobCallback | None = None,
    ) -> FineTuneJob:
        """Poll until the job is terminal, passing each new event (oldest first, never twice)
        to ``on_event`` and the job as polled to ``on_job``; returns the final job.

        Works on any existing job id, so a restarted program resumes waiting where it was.
        Between polls, passing failures (dropped connections, 5xx, 429) are logged and survived
        until ``poll.timeout``, when :class:`WaitTimeoutError` is raised (the job goes on).
        A ``failed`` job raises :class:`FineTuneJobFailedError` with the service's reason
        (or is returned, with ``raise_on_failure=False``); a ``cancelled`` one is returned.
        """
        seen: set[str] = set()
        last_status: list[str] = []

        async def fetch() -> tuple[FineTuneJob, list[JobEvent]]:
            job = await self.get_job(job_id)
            return job, await self._new_events(job_id, seen)

        async def on_value(polled: tuple[FineTuneJob, list[JobEvent]]) -> bool:
            job, fresh = polled
            for event in fresh:
                await _call(on_event, event)
            await _call(on_job, job)
            if job.status not in KNOWN_STATUSES and last_status[-1:] != [job.status]:
                logger.warning("job %s is in unknown state %r; still waiting", job_id, job.status)
            last_status[:] = [job.status]
            return bool(fresh)

        def done(polled: tuple[FineTuneJob, list[JobEvent]]) -> bool:
            job = polled[0]
            if job.terminal and job.status == "failed" and raise_on_failure:
                raise FineTuneJobFailedError(job)
            return job.terminal

        job, _ = await poll_until(
            fetch,
            status=lambda polled: polled[0].status,
            done=done,
            on_value=on_value,
            policy=poll or self.default_poll,
            what=f"fine-tuning job {job_id}",
            resource_id=job_id,
            hint="; it goes on, wait() on its id again later",
        )
        return job

    async def _new_events(self, job_id: str, seen: set[str]) -> list[JobEvent]:
        """Events not in ``seen`` (which is updated), oldest first."""
        fresh: list[JobEvent] = []
        events = self.events(job_id)
        try:
            async for event in events:
                if event.id in seen:
                    break  # newest first: everything after this was seen before
                fresh.append(event)
        finally:
            # leaving an async generator early must close it here, not in the garbage collector
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        fresh.reverse()
        seen.update(event.id for event in fresh)
        return fresh


async def _call(
    callback: Callable[[Any], Awaitable[None] | None] | None, value: JobEvent | FineTuneJob
) -> None:
    if callback is None:
        return
    result = callback(value)
    if inspect.isawaitable(result):
        await result

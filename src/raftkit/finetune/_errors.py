"""Failures of fine-tuning work that are not failed HTTP calls: the service said no, later."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from raftkit.errors import InputError, RaftkitError

if TYPE_CHECKING:
    from raftkit.finetune._models import FineTuneJob

__all__ = [
    "BatchFailedError",
    "DeploymentFailedError",
    "FileRejectedError",
    "FineTuneError",
    "FineTuneJobFailedError",
    "WaitTimeoutError",
]


class FineTuneError(RaftkitError):
    """Root of the fine-tuning side's own failures."""


class FileRejectedError(FineTuneError, InputError):
    """The service processed an uploaded file and rejected it (Azure ``status: error``)."""

    def __init__(self, file_id: str, filename: str, details: str | None) -> None:
        reason = details or "no details given"
        super().__init__(f"the service rejected file {filename} ({file_id}): {reason}")
        self.file_id = file_id
        self.filename = filename
        self.details = details


class FineTuneJobFailedError(FineTuneError):
    """A job ended ``failed``; the message is the service's reason."""

    def __init__(self, job: FineTuneJob) -> None:
        error = job.error
        reason = error.message if error is not None and error.message else "no reason given"
        code = f" [{error.code}]" if error is not None and error.code else ""
        super().__init__(f"fine-tuning job {job.id} failed{code}: {reason}")
        self.job = job


class WaitTimeoutError(FineTuneError, TimeoutError):
    """Waiting for a job, batch, file or deployment passed its deadline; the work goes on."""

    def __init__(self, message: str, *, resource_id: str, last_status: str | None) -> None:
        super().__init__(message)
        self.resource_id = resource_id
        self.last_status = last_status


class DeploymentFailedError(FineTuneError):
    """An Azure deployment ended in a provisioning state other than ``Succeeded``."""

    def __init__(self, name: str, state: str) -> None:
        super().__init__(f"deployment {name} ended in provisioning state {state}")
        self.name = name
        self.state = state


class BatchFailedError(FineTuneError):
    """The service failed a whole batch (e.g. a malformed input file)."""

    def __init__(self, batch_id: str, status: str, errors: Sequence[str]) -> None:
        shown = "; ".join(errors[:5]) if errors else "no details given"
        super().__init__(f"batch {batch_id} ended {status}: {shown}")
        self.batch_id = batch_id
        self.status = status
        self.errors = list(errors)

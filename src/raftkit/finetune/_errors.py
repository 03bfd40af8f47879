"""Failures of fine-tuning work that are not failed HTTP calls: the service said no, later.

A rejected upload (:class:`~raftkit.errors.FileRejectedError`) and a wait that passed its
deadline (:class:`~raftkit.errors.WaitTimeoutError`) happen to batches as well, so they live in
:mod:`raftkit.errors` and are re-exported by :mod:`raftkit.finetune`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raftkit.errors import RaftkitError

if TYPE_CHECKING:
    from raftkit.finetune._models import FineTuneJob

__all__ = [
    "DeploymentFailedError",
    "FineTuneError",
    "FineTuneJobFailedError",
]


class FineTuneError(RaftkitError):
    """Root of the fine-tuning side's own failures."""


class FineTuneJobFailedError(FineTuneError):
    """A job ended ``failed``; the message is the service's reason."""

    def __init__(self, job: FineTuneJob) -> None:
        error = job.error
        reason = error.message if error is not None and error.message else "no reason given"
        code = f" [{error.code}]" if error is not None and error.code else ""
        super().__init__(f"fine-tuning job {job.id} failed{code}: {reason}")
        self.job = job


class DeploymentFailedError(FineTuneError):
    """An Azure deployment ended in a provisioning state other than ``Succeeded``."""

    def __init__(self, name: str, state: str) -> None:
        super().__init__(f"deployment {name} ended in provisioning state {state}")
        self.name = name
        self.state = state

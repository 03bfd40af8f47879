"""What goes into a batch and what comes back: requests, per-line failures, results, errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import RaftkitError

__all__ = ["BatchFailedError", "BatchLineFailure", "BatchRequest", "BatchResult", "BatchStatus"]


class BatchFailedError(RaftkitError):
    """The service failed a whole batch (e.g. a malformed input file), or batches stopped
    answering the requests of a run."""

    def __init__(self, batch_id: str, status: str, errors: Sequence[str]) -> None:
        shown = "; ".join(errors[:5]) if errors else "no details given"
        super().__init__(f"batch {batch_id} ended {status}: {shown}")
        self.batch_id = batch_id
        self.status = status
        self.errors = list(errors)


class BatchRequest(BaseModel):
    """One chat request: the body as sent online (with ``model``) and its sample index."""

    model_config = ConfigDict(frozen=True)

    body: dict[str, Any]
    sample: int = Field(default=0, ge=0)

    @property
    def model(self) -> str:
        return str(self.body.get("model") or "")


class BatchLineFailure(BaseModel):
    """A request the batch did not answer, and why."""

    model_config = ConfigDict(frozen=True)

    key: str
    status_code: int | None = None
    code: str | None = None
    message: str


class BatchResult(BaseModel):
    requested: int = Field(description="distinct requests given")
    already_stored: int = Field(description="found in the store before anything was sent")
    submitted: int = Field(description="lines of the batch that was run (or resumed)")
    stored: int = Field(description="answers merged into the store")
    batch_id: str | None = None
    status: str | None = None
    resumed: bool = Field(default=False, description="an earlier run's batch was polled")
    failures: list[BatchLineFailure] = Field(default_factory=list)
    cost_usd: float = 0.0


class BatchStatus(BaseModel):
    """A batch as last polled, for a status line: its id, state and request counts."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    status: str
    completed: int = 0
    failed: int = 0
    total: int = 0
    round: int = Field(default=1, description="which round of run_in_rounds (1 first)")

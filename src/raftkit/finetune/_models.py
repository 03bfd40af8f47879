"""The records the fine-tuning side hands back: jobs, events, checkpoints, metrics, deployments.

OpenAI and Azure's ``api-version`` surface name a few things differently (Azure's job states
``created``/``pending`` and ``organisation_id``); these models speak OpenAI's names and keep the
server's original object in ``raw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "TERMINAL_STATUSES",
    "Checkpoint",
    "Deployment",
    "FineTuneJob",
    "Hyperparameters",
    "JobError",
    "JobEvent",
    "StepMetrics",
    "TrainingMetrics",
    "normalise_status",
]

#: Job states after which nothing changes any more.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})

# Azure's authoring API names the first two states after its own lifecycle.
_STATUS_ALIASES = {
    "created": "validating_files",
    "pending": "queued",
    "notrunning": "queued",
    "canceled": "cancelled",
}


def normalise_status(status: str) -> str:
    """OpenAI's name for a job state (Azure's ``created`` → ``validating_files`` ...)."""
    lowered = status.strip().lower()
    return _STATUS_ALIASES.get(lowered, lowered)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Hyperparameters(_Frozen):
    """Supervised fine-tuning hyperparameters; ``None`` leaves the choice to the service."""

    n_epochs: int | None = Field(default=None, ge=1, le=50)
    batch_size: int | None = Field(default=None, ge=1, le=256)
    learning_rate_multiplier: float | None = Field(default=None, gt=0)

    def to_api(self) -> dict[str, Any]:
        """Only the values that are set: the others stay ``auto`` on the service."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class JobError(_Frozen):
    code: str | None = None
    message: str = ""
    param: str | None = None


class FineTuneJob(_Frozen):
    """A fine-tuning job; ``status`` uses OpenAI's names on every provider."""

    id: str
    status: str
    model: str
    fine_tuned_model: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    created_at: int | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    result_files: list[str] = Field(default_factory=list)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    suffix: str | None = None
    seed: int | None = None
    error: JobError | None = None
    #: the key-value tags given at creation (OpenAI ``metadata``; Azure has none)
    metadata: dict[str, str] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> FineTuneJob:
        error = body.get("error")
        job_error = None
        # OpenAI sends an error object with null fields while a job is fine
        if isinstance(error, Mapping) and (error.get("message") or error.get("code")):
            job_error = JobError(
                code=error.get("code"),
                message=str(error.get("message") or ""),
                param=error.get("param"),
            )
        hyper = body.get("hyperparameters")
        method = body.get("method")
        if isinstance(method, Mapping):
            kind = method.get("type")
            inner = method.get(kind) if isinstance(kind, str) else None
            if isinstance(inner, Mapping) and isinstance(inner.get("hyperparameters"), Mapping):
                hyper = inner["hyperparameters"]
        return cls(
            id=str(body["id"]),
            status=normalise_status(str(body.get("status") or "unknown")),
            model=str(body.get("model") or ""),
            fine_tuned_model=body.get("fine_tuned_model"),
            training_file=body.get("training_file"),
            validation_file=body.get("validation_file"),
            created_at=body.get("created_at"),
            finished_at=body.get("finished_at"),
            trained_tokens=body.get("trained_tokens"),
            result_files=[str(f) for f in body.get("result_files") or []],
            hyperparameters=dict(hyper) if isinstance(hyper, Mapping) else {},
            suffix=body.get("user_provided_suffix") or body.get("suffix"),
            seed=body.get("seed"),
            error=job_error,
            metadata={str(k): str(v) for k, v in metadata.items()}
            if isinstance(metadata := body.get("metadata"), Mapping)
            else {},
            raw=dict(body),
        )


class JobEvent(_Frozen):
    id: str
    created_at: int
    level: str
    message: str
    type: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> JobEvent:
        data = body.get("data")
        return cls(
            id=str(body["id"]),
            created_at=int(body.get("created_at") or 0),
            level=str(body.get("level") or "info"),
            message=str(body.get("message") or ""),
            type=body.get("type"),
            data=dict(data) if isinstance(data, Mapping) else {},
        )


class Checkpoint(_Frozen):
    id: str
    step: int
    model: str = Field(description="the checkpoint's model name, usable for chat")
    created_at: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> Checkpoint:
        metrics = body.get("metrics")
        return cls(
            id=str(body["id"]),
            step=int(body.get("step_number") or 0),
            model=str(body.get("fine_tuned_model_checkpoint") or ""),
            created_at=body.get("created_at"),
            metrics={
                k: float(v)
                for k, v in (metrics.items() if isinstance(metrics, Mapping) else ())
                if isinstance(v, int | float)
            },
        )


class StepMetrics(_Frozen):
    """One row of a job's result file. Blank cells (no validation at that step) are ``None``."""

    step: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    valid_loss: float | None = None
    valid_accuracy: float | None = None
    extra: dict[str, float] = Field(default_factory=dict)


class TrainingMetrics(_Frozen):
    """The per-step metrics of a finished job, from its result CSV."""

    file_id: str
    steps: list[StepMetrics]

    @property
    def final(self) -> StepMetrics | None:
        return self.steps[-1] if self.steps else None

    def last(self, name: str) -> float | None:
        """The last non-blank value of a column (``"valid_loss"``, ...)."""
        for row in reversed(self.steps):
            value = getattr(row, name, None) if name in StepMetrics.model_fields else None
            if value is None:
                value = row.extra.get(name)
            if value is not None:
                return float(value)
        return None

    def render(self) -> str:
        if not self.steps:
            return "no training steps reported"
        parts = [f"{len(self.steps)} steps"]
        for label, name in (
            ("train loss", "train_loss"),
            ("train accuracy", "train_accuracy"),
            ("valid loss", "valid_loss"),
            ("valid accuracy", "valid_accuracy"),
        ):
            value = self.last(name)
            if value is not None:
                parts.append(f"{label} {value:.4f}")
        return ", ".join(parts)


class Deployment(_Frozen):
    """A model deployment on an Azure OpenAI resource (ARM)."""

    name: str
    model: str
    provisioning_state: str
    sku_name: str | None = None
    capacity: int | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> Deployment:
        properties = body.get("properties")
        props: Mapping[str, Any] = properties if isinstance(properties, Mapping) else {}
        model = props.get("model")
        sku = body.get("sku")
        skud: Mapping[str, Any] = sku if isinstance(sku, Mapping) else {}
        return cls(
            name=str(body.get("name") or ""),
            model=str(model.get("name") or "") if isinstance(model, Mapping) else "",
            provisioning_state=str(props.get("provisioningState") or "Unknown"),
            sku_name=skud.get("name"),
            capacity=skud.get("capacity"),
            raw=dict(body),
        )

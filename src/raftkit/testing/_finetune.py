"""Fine-tuning jobs: ``/v1/fine_tuning/jobs`` and the Azure authoring twins.

A job's whole life is planned when it is created, as milestones at offsets (seconds of
``state.clock()``) from its creation: files validated, queued, started, training steps with
their loss, a checkpoint per epoch, then success or failure. Reading a job applies the
milestones that are due, so no background task runs and a test that polls until the job is
terminal sees the same history on asyncio, trio or a slow machine.

On success the fine-tuned model (``ft:<base>:<org>:<suffix>:<id>`` on OpenAI,
``<base>.ft-<id>[-<suffix>]`` on Azure) and its checkpoints are registered with the core, so
chat completions accept them, and a CSV of per-step metrics is stored as the result file.

Azure's versioned surface speaks the authoring spec: states ``created`` → ``pending`` →
``running`` → ``succeeded`` / ``failed`` / ``cancelled``, log level ``warning``, no nulls.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from raftkit.testing._files import (
    API_PREFIXES,
    Dialect,
    FileRecord,
    api_error,
    dialect_of,
    extension,
    file_store,
    inspect_training_data,
    page,
    query_limit,
    read_object,
)
from raftkit.testing._state import SimulatorState
from raftkit.testing._text import stable_hash

__all__ = [
    "FineTuningSettings",
    "configure_fine_tuning",
    "fine_tuned_models",
    "refresh",
    "routes",
]

_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_AZURE_STATES = {
    "validating_files": "created",
    "queued": "pending",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
_SUPPORTED_METHODS = frozenset({"supervised"})
_KEPT_CHECKPOINTS = 3


@dataclass(frozen=True, kw_only=True)
class FineTuningSettings:
    """Timing and behaviour of simulated jobs. Durations are seconds of ``state.clock()``."""

    validating_seconds: float = 0.05
    queued_seconds: float = 0.05
    running_seconds: float = 0.1
    fail_jobs_with: str | None = "RAFTKIT_SIMULATE_TRAINING_FAILURE"
    """A job whose training file contains this text fails halfway through training (with
    ``error.code == "training_failed"``); ``None`` turns the marker off."""
    organization: str = "raftkit-simulator"
    """The organisation slug in OpenAI fine-tuned model names."""
    organization_id: str = "org-raftkit-simulator"
    fine_tunable_models: frozenset[str] | None = None
    """Base models that may be fine-tuned; ``None`` accepts any name."""
    max_step_events: int = 10
    """How many ``Step k/N`` metrics events a job logs (plus one per epoch end)."""


@dataclass
class _Event:
    id: str
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None


@dataclass
class _Checkpoint:
    id: str
    created_at: int
    model: str
    step: int
    metrics: dict[str, float]


@dataclass
class _Milestone:
    offset: float
    apply: Callable[[_Job], None]


@dataclass
class _Job:
    id: str
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    method_type: str
    metadata: dict[str, str] | None
    integrations: list[Any] | None
    created_at: int
    created_clock: float
    azure: bool
    total_seconds: float
    status: str = "validating_files"
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    result_files: list[str] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)
    checkpoints: list[_Checkpoint] = field(default_factory=list)
    milestones: list[_Milestone] = field(default_factory=list)
    applied: int = 0


class _Jobs:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.settings = FineTuningSettings()
        self.jobs: dict[str, _Job] = {}

    # ---------------------------------------------------------------- time

    def advance(self, job: _Job) -> None:
        """Apply every milestone that is due by now."""
        with self.state.lock:
            elapsed = self.state.clock() - job.created_clock
            while job.applied < len(job.milestones) and job.status not in _TERMINAL:
                milestone = job.milestones[job.applied]
                if milestone.offset > elapsed:
                    break
                job.applied += 1
                milestone.apply(job)

    def get(self, job_id: str) -> _Job | None:
        with self.state.lock:
            job = self.jobs.get(job_id)
        if job is not None:
            self.advance(job)
        return job

    def all(self) -> list[_Job]:
        with self.state.lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            self.advance(job)
        return jobs

    # ---------------------------------------------------------------- history

    def log(
        self,
        job: _Job,
        offset: float,
        message: str,
        *,
        level: str = "info",
        kind: str = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        job.events.append(
            _Event(
                id=self.state.new_id("ftevent"),
                created_at=job.created_at + int(offset),
                level=level,
                message=message,
                type=kind,
                data=data,
            )
        )

    def finish(self, job: _Job, offset: float, status: str) -> None:
        job.status = status
        job.finished_at = job.created_at + math.ceil(offset)

    def fail(self, job: _Job, offset: float, code: str, message: str, param: str | None) -> None:
        job.error = {"code": code, "message": message, "param": param}
        self.log(job, offset, message, level="error")
        self.finish(job, offset, "failed")

    def cancel(self, job: _Job) -> None:
        with self.state.lock:
            offset = self.state.clock() - job.created_clock
            self.log(job, offset, "Fine-tuning job cancelled")
            self.finish(job, offset, "cancelled")

    # ---------------------------------------------------------------- planning

    def model_name(self, job: _Job) -> str:
        short = job.id.removeprefix("ftjob-")
        if job.azure:
            tail = f"-{job.suffix}" if job.suffix else ""
            return f"{job.model}.ft-{short}{tail}"
        return f"ft:{job.model}:{self.settings.organization}:{job.suffix or ''}:{short[:8]}"

    def plan(self, job: _Job, training: FileRecord, validation: FileRecord | None) -> None:
        """Schedule the job's whole life as milestones (see the module docstring)."""
        settings = self.settings
        store = file_store(self.state)
        report = inspect_training_data(training.content)
        validation_problem = (
            inspect_training_data(validation.content).problem if validation is not None else None
        )
        examples = max(1, report.examples)
        steps_per_epoch = math.ceil(examples / job.batch_size)
        total = steps_per_epoch * job.n_epochs
        curve = _LossCurve(stable_hash(job.id, job.seed), total, validation is not None)
        validated = settings.validating_seconds
        started = validated + settings.queued_seconds
        done = started + settings.running_seconds
        job.total_seconds = done
        marker = settings.fail_jobs_with
        fails_at = (
            max(1, total // 2) if marker and marker.encode("utf-8") in training.content else None
        )
        add = job.milestones.append

        def at_step(step: int) -> float:
            return started + settings.running_seconds * step / (total + 1)

        add(_Milestone(0.0, lambda j: self.log(j, 0, f"Created fine-tuning job: {j.id}")))
        add(
            _Milestone(
                0.0, lambda j: self.log(j, 0, f"Validating training file: {j.training_file}")
            )
        )

        def files_checked(j: _Job) -> None:
            if report.problem is not None:
                self.fail(
                    j,
                    validated,
                    "invalid_training_file",
                    f"The job failed due to an invalid training file. {report.problem}",
                    "training_file",
                )
            elif validation_problem is not None:
                self.fail(
                    j,
                    validated,
                    "invalid_validation_file",
                    f"The job failed due to an invalid validation file. {validation_problem}",
                    "validation_file",
                )
            else:
                self.log(j, validated, "Files validated, moving job to queued state")
                j.status = "queued"

        add(_Milestone(validated, files_checked))

        def start(j: _Job) -> None:
            self.log(j, started, "Fine-tuning job started")
            j.status = "running"

        add(_Milestone(started, start))
        # OpenAI keeps checkpoints of the last three epochs only
        first_kept = max(1, job.n_epochs - _KEPT_CHECKPOINTS + 1)
        epoch_ends = {steps_per_epoch * epoch for epoch in range(first_kept, job.n_epochs + 1)}
        shown = _spread(total, settings.max_step_events) | epoch_ends
        for step in sorted(shown):
            if fails_at is not None and step > fails_at:
                break
            offset = at_step(step)
            add(_Milestone(offset, self._step_milestone(offset, step, total, curve)))
            if step in epoch_ends:
                add(_Milestone(offset, self._checkpoint_milestone(offset, step, curve)))
        if fails_at is not None:

            def training_failed(j: _Job) -> None:
                self.fail(
                    j,
                    at_step(fails_at),
                    "training_failed",
                    f"Training failed at step {fails_at}/{total}: the training file contains "
                    f"the simulator's failure marker {marker!r}.",
                    None,
                )

            add(_Milestone(at_step(fails_at), training_failed))
            return

        def succeed(j: _Job) -> None:
            name = self.model_name(j)
            j.fine_tuned_model = name
            j.trained_tokens = report.tokens * j.n_epochs
            result = store.add("step_metrics.csv", "fine-tune-results", curve.csv())
            j.result_files = [result.id]
            self.state.register_model(name, owned_by=settings.organization_id)
            for checkpoint in j.checkpoints:
                self.state.register_model(checkpoint.model, owned_by=settings.organization_id)
            self.log(j, done, f"New fine-tuned model created: {name}")
            self.log(j, done, "Evaluating model against our usage policies")
            self.log(j, done, "Usage policy evaluations completed, model is now enabled")
            self.log(j, done, "The job has successfully completed")
            self.finish(j, done, "succeeded")

        add(_Milestone(done, succeed))

    def _step_milestone(
        self, offset: float, step: int, total: int, curve: _LossCurve
    ) -> Callable[[_Job], None]:
        def apply(job: _Job) -> None:
            metrics = curve.at(step)
            text = f"Step {step}/{total}: training loss={metrics['train_loss']:.2f}"
            if "valid_loss" in metrics:
                text += f", validation loss={metrics['valid_loss']:.2f}"
            self.log(
                job,
                offset,
                text,
                kind="metrics",
                data={**metrics, "total_steps": total},
            )

        return apply

    def _checkpoint_milestone(
        self, offset: float, step: int, curve: _LossCurve
    ) -> Callable[[_Job], None]:
        def apply(job: _Job) -> None:
            name = f"{self.model_name(job)}:ckpt-step-{step}"
            job.checkpoints.append(
                _Checkpoint(
                    id=self.state.new_id("ftckpt").replace("-", "_", 1),
                    created_at=job.created_at + int(offset),
                    model=name,
                    step=step,
                    metrics=curve.at(step),
                )
            )
            self.log(job, offset, f"Checkpoint created at step {step}")

        return apply


def _spread(total: int, count: int) -> set[int]:
    """About ``count`` steps spread evenly over ``1..total``, always with the first and last."""
    if count <= 1 or total <= count:
        return set(range(1, total + 1))
    return {1 + round(i * (total - 1) / (count - 1)) for i in range(count)}


class _LossCurve:
    """A deterministic, noisy, falling loss curve for one job."""

    def __init__(self, seed: int, total: int, with_validation: bool) -> None:
        generator = random.Random(seed)
        self.total = total
        self.with_validation = with_validation
        self.start = 1.6 + generator.random() * 0.8
        self.floor = 0.2 + generator.random() * 0.2
        self.noise = [generator.uniform(-0.04, 0.04) for _ in range(2 * total + 2)]

    def at(self, step: int) -> dict[str, float]:
        progress = step / self.total
        loss = self.floor + (self.start - self.floor) * math.exp(-3.0 * progress)
        train_loss = max(0.01, loss + self.noise[step])
        metrics: dict[str, float] = {
            "step": float(step),
            "train_loss": round(train_loss, 4),
            "train_mean_token_accuracy": round(min(0.99, 1.0 - train_loss / 3.0), 4),
        }
        if self.with_validation:
            valid_loss = max(0.01, loss * 1.08 + self.noise[self.total + step])
            metrics["valid_loss"] = round(valid_loss, 4)
            metrics["valid_mean_token_accuracy"] = round(min(0.99, 1.0 - valid_loss / 3.0), 4)
        return metrics

    def csv(self) -> bytes:
        lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        for step in range(1, self.total + 1):
            m = self.at(step)
            valid = (
                f"{m['valid_loss']},{m['valid_mean_token_accuracy']}"
                if self.with_validation
                else ","
            )
            lines.append(f"{step},{m['train_loss']},{m['train_mean_token_accuracy']},{valid}")
        return ("\n".join(lines) + "\n").encode("utf-8")


def _jobs(state: SimulatorState) -> _Jobs:
    def make() -> _Jobs:
        state.add_refresher(lambda: refresh(state))
        return _Jobs(state)

    return extension(state, "raftkit.testing._finetune", make)


def configure_fine_tuning(state: SimulatorState, settings: FineTuningSettings) -> None:
    """Use ``settings`` for jobs created from now on."""
    _jobs(state).settings = settings


def refresh(state: SimulatorState) -> None:
    """Bring every job up to the clock (registering the models of jobs that just finished)."""
    _jobs(state).all()


def fine_tuned_models(state: SimulatorState) -> set[str]:
    """Names of the models (and checkpoints) of every succeeded job."""
    names: set[str] = set()
    for job in _jobs(state).all():
        if job.fine_tuned_model is not None:
            names.add(job.fine_tuned_model)
            names.update(c.model for c in job.checkpoints)
    return names


# ---------------------------------------------------------------- request parsing


def _hyperparameter(
    dialect: Dialect,
    values: dict[str, Any],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    integer: bool,
) -> float:
    value = values.get(name, "auto")
    if value is None or value == "auto":
        return default
    number_ok = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not number_ok or not low <= value <= high:
        raise api_error(
            dialect,
            400,
            f"Invalid value for hyperparameter '{name}': {value!r}. Expected 'auto' or a "
            f"{'whole ' if integer else ''}number between {low:g} and {high:g}.",
            param=f"hyperparameters.{name}",
        )
    return float(value)


def _file_for_job(
    state: SimulatorState, dialect: Dialect, body: dict[str, Any], param: str
) -> FileRecord | None:
    file_id = body.get(param)
    if file_id is None and param == "validation_file":
        return None
    if not isinstance(file_id, str) or not file_id:
        raise api_error(dialect, 400, f"Missing required parameter: '{param}'.", param=param)
    store = file_store(state)
    record = store.get(file_id)
    if record is None:
        raise api_error(
            dialect,
            400,
            f"Invalid file ID: {file_id} does not exist.",
            param=param,
            code="invalid_file_id",
        )
    if record.purpose != "fine-tune":
        raise api_error(
            dialect,
            400,
            f"File {file_id} has purpose '{record.purpose}'; {param} needs purpose 'fine-tune'.",
            param=param,
        )
    if store.status(record) == "error":
        raise api_error(
            dialect,
            400,
            f"File {file_id} failed validation: {record.problem}",
            param=param,
            azure_code="jsonlValidationFailed",
        )
    return record


def _create_job(state: SimulatorState, dialect: Dialect, body: dict[str, Any]) -> _Job:
    jobs = _jobs(state)
    settings = jobs.settings
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise api_error(dialect, 400, "Missing required parameter: 'model'.", param="model")
    allowed = settings.fine_tunable_models
    if allowed is not None and model not in allowed:
        raise api_error(
            dialect,
            400,
            f"Model {model} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    training = _file_for_job(state, dialect, body, "training_file")
    validation = _file_for_job(state, dialect, body, "validation_file")
    assert training is not None
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not 1 <= len(suffix) <= 64):
        raise api_error(dialect, 400, "'suffix' must be 1 to 64 characters.", param="suffix")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise api_error(dialect, 400, "'seed' must be an integer.", param="seed")
    method = body.get("method") or {"type": "supervised"}
    if not isinstance(method, dict) or method.get("type") not in _SUPPORTED_METHODS:
        kind = method.get("type") if isinstance(method, dict) else method
        raise api_error(
            dialect,
            400,
            f"Fine-tuning method {kind!r} is not simulated; use 'supervised'.",
            param="method.type",
        )
    supervised = method.get("supervised") or {}
    values = supervised.get("hyperparameters") if isinstance(supervised, dict) else None
    if values is None:
        values = body.get("hyperparameters") or {}
    if not isinstance(values, dict):
        raise api_error(
            dialect, 400, "'hyperparameters' must be an object.", param="hyperparameters"
        )
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise api_error(dialect, 400, "'metadata' must map strings to strings.", param="metadata")
    examples = max(1, inspect_training_data(training.content).examples)
    # "auto" follows OpenAI's published behaviour: more epochs for small datasets
    auto_epochs = 3 if examples >= 100 else min(25, math.ceil(300 / examples))
    auto_batch = max(1, min(256, round(examples * 0.002)))
    n_epochs = int(_hyperparameter(dialect, values, "n_epochs", auto_epochs, 1, 50, integer=True))
    batch_size = int(
        _hyperparameter(dialect, values, "batch_size", auto_batch, 1, 256, integer=True)
    )
    learning_rate = _hyperparameter(
        dialect, values, "learning_rate_multiplier", 1.8, 1e-9, 1e6, integer=False
    )
    job_id = state.new_id("ftjob")
    job = _Job(
        id=job_id,
        model=model,
        training_file=training.id,
        validation_file=validation.id if validation is not None else None,
        suffix=suffix,
        seed=seed if seed is not None else stable_hash(job_id) % 2**31,
        n_epochs=n_epochs,
        batch_size=batch_size,
        learning_rate_multiplier=learning_rate,
        method_type="supervised",
        metadata=metadata,
        integrations=body.get("integrations"),
        created_at=state.unix_time(),
        created_clock=state.clock(),
        azure=dialect.azure,
        total_seconds=0.0,
    )
    jobs.plan(job, training, validation)
    with state.lock:
        jobs.jobs[job.id] = job
    jobs.advance(job)
    return job


# ---------------------------------------------------------------- rendering


def _render_job(job: _Job, dialect: Dialect, organization_id: str) -> dict[str, Any]:
    hyperparameters = {
        "batch_size": job.batch_size,
        "learning_rate_multiplier": job.learning_rate_multiplier,
        "n_epochs": job.n_epochs,
    }
    running = job.status not in _TERMINAL
    body: dict[str, Any] = {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": job.created_at,
        "error": job.error,
        "fine_tuned_model": job.fine_tuned_model,
        "finished_at": job.finished_at,
        "hyperparameters": hyperparameters,
        "model": job.model,
        "organization_id": organization_id,
        "result_files": list(job.result_files),
        "status": job.status,
        "trained_tokens": job.trained_tokens,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "integrations": job.integrations,
        "seed": job.seed,
        "estimated_finish": job.created_at + math.ceil(job.total_seconds) if running else None,
        "method": {"type": job.method_type, job.method_type: {"hyperparameters": hyperparameters}},
        "metadata": job.metadata,
        "user_provided_suffix": job.suffix,
    }
    if not dialect.versioned:
        return body
    body["status"] = _AZURE_STATES[job.status]
    body["organisation_id"] = body.pop("organization_id")  # the authoring spec's spelling
    body["suffix"] = body.pop("user_provided_suffix")
    return {key: value for key, value in body.items() if value is not None}


def _render_event(event: _Event, dialect: Dialect) -> dict[str, Any]:
    level = event.level
    if dialect.versioned and level == "warn":
        level = "warning"
    body: dict[str, Any] = {
        "object": "fine_tuning.job.event",
        "id": event.id,
        "created_at": event.created_at,
        "level": level,
        "message": event.message,
        "type": event.type,
        "data": event.data if event.data is not None else {},
    }
    return body


def _render_checkpoint(job: _Job, checkpoint: _Checkpoint) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint.id,
        "created_at": checkpoint.created_at,
        "fine_tuned_model_checkpoint": checkpoint.model,
        "fine_tuning_job_id": job.id,
        "metrics": dict(checkpoint.metrics),
        "step_number": checkpoint.step,
    }


# ---------------------------------------------------------------- routes


def routes(state: SimulatorState) -> list[BaseRoute]:
    """``/fine_tuning/jobs`` and its sub-resources under every prefix in ``API_PREFIXES``."""
    jobs = _jobs(state)

    def render(job: _Job, dialect: Dialect) -> dict[str, Any]:
        return _render_job(job, dialect, jobs.settings.organization_id)

    def found(request: Request, dialect: Dialect) -> _Job:
        job_id = request.path_params["job_id"]
        job = jobs.get(job_id)
        if job is None:
            raise api_error(
                dialect, 404, f"Fine-tuning job {job_id} not found.", param="fine_tuning_job_id"
            )
        return job

    async def create(request: Request) -> Response:
        dialect = dialect_of(request)
        job = _create_job(state, dialect, await read_object(request, dialect))
        return JSONResponse(render(job, dialect), status_code=201 if dialect.versioned else 200)

    async def list_jobs(request: Request) -> Response:
        dialect = dialect_of(request)
        limit = query_limit(request, dialect, 20, 100)
        everything = list(reversed(jobs.all()))
        chosen, more = page(
            everything, lambda j: j.id, after=request.query_params.get("after"), limit=limit
        )
        return JSONResponse(
            {"object": "list", "data": [render(j, dialect) for j in chosen], "has_more": more}
        )

    async def retrieve(request: Request) -> Response:
        dialect = dialect_of(request)
        return JSONResponse(render(found(request, dialect), dialect))

    async def cancel(request: Request) -> Response:
        dialect = dialect_of(request)
        job = found(request, dialect)
        if job.status in _TERMINAL:
            raise api_error(
                dialect,
                400,
                f"Job {job.id} is already {job.status} and cannot be cancelled.",
                azure_code="unexpectedEntityState",
            )
        jobs.cancel(job)
        return JSONResponse(render(job, dialect))

    async def delete(request: Request) -> Response:
        dialect = dialect_of(request)
        job = found(request, dialect)
        if job.status not in _TERMINAL:
            raise api_error(
                dialect,
                400,
                f"Job {job.id} is {job.status}; cancel it before deleting it.",
                azure_code="unexpectedEntityState",
            )
        with state.lock:
            jobs.jobs.pop(job.id, None)
        return Response(status_code=204)

    async def events(request: Request) -> Response:
        dialect = dialect_of(request)
        job = found(request, dialect)
        limit = query_limit(request, dialect, 20, 1000)
        with state.lock:
            newest_first = list(reversed(job.events))
        chosen, more = page(
            newest_first, lambda e: e.id, after=request.query_params.get("after"), limit=limit
        )
        data = [_render_event(e, dialect) for e in chosen]
        return JSONResponse({"object": "list", "data": data, "has_more": more})

    async def checkpoints(request: Request) -> Response:
        dialect = dialect_of(request)
        job = found(request, dialect)
        limit = query_limit(request, dialect, 10, 100)
        with state.lock:
            newest_first = list(reversed(job.checkpoints))
        chosen, more = page(
            newest_first, lambda c: c.id, after=request.query_params.get("after"), limit=limit
        )
        data = [_render_checkpoint(job, c) for c in chosen]
        body: dict[str, Any] = {"object": "list", "data": data, "has_more": more}
        if not dialect.versioned:
            body["first_id"] = data[0]["id"] if data else None
            body["last_id"] = data[-1]["id"] if data else None
        return JSONResponse(body)

    table: list[tuple[str, Callable[[Request], Any], str]] = [
        ("/fine_tuning/jobs", create, "POST"),
        ("/fine_tuning/jobs", list_jobs, "GET"),
        ("/fine_tuning/jobs/{job_id}", retrieve, "GET"),
        ("/fine_tuning/jobs/{job_id}/cancel", cancel, "POST"),
        ("/fine_tuning/jobs/{job_id}/events", events, "GET"),
        ("/fine_tuning/jobs/{job_id}/checkpoints", checkpoints, "GET"),
    ]
    found_routes: list[BaseRoute] = [
        Route(prefix + path, endpoint, methods=[method])
        for prefix in API_PREFIXES
        for path, endpoint, method in table
    ]
    # only Azure's authoring API deletes jobs
    found_routes.append(Route("/openai/fine_tuning/jobs/{job_id}", delete, methods=["DELETE"]))
    return found_routes

"""Fine-tuning jobs: ``/v1/fine_tuning/jobs`` and the Azure authoring twins.

A job's whole life is planned when it is created, as milestones at offsets (seconds of the
simulated clock, ``state.now()``) from its creation: files validated, queued, started,
training steps with their loss, a checkpoint per epoch, then success or failure. Reading a job
applies the milestones that are due, so no background task runs and a test that polls until
the job is terminal sees the same history on asyncio, trio or a slow machine. Event,
checkpoint and result-file ids derive from the job's id, so a job reloaded from a state
directory replays the same history (see :mod:`raftkit.testing._persist`).

Methods: ``supervised`` on chat data and ``dpo`` on preference pairs (``method.dpo.
hyperparameters.beta``); a job whose training file holds the other format fails validation.
Azure's ``trainingType`` is echoed on Azure's surfaces; ``developerTier`` jobs run on spare
capacity and take ``developer_tier_slowdown`` times as long. What is refused before a job
exists is in :mod:`raftkit.testing._finetune_request`.

On success the fine-tuned model (``ft:<base>:<org>:<suffix>:<id>`` on OpenAI,
``<base>.ft-<id>[-<suffix>]`` on Azure) and its checkpoints are registered with the core, so
chat completions accept them, and a CSV of per-step metrics is stored as the result file.

Azure's versioned surface speaks the authoring spec: states ``created`` → ``pending`` →
``running`` → ``succeeded`` / ``failed`` / ``cancelled``, log level ``warning``, no nulls.

The module is long because a job's plan, its replay from the state directory, its rendering
in two API dialects and its routes share the private ``_Job`` record; the request checks live
apart, in :mod:`raftkit.testing._finetune_request`.
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
    page,
    query_limit,
    read_object,
)
from raftkit.testing._finetune_request import JobRequest, read_job_request
from raftkit.testing._state import SimulatorState
from raftkit.testing._text import stable_hash
from raftkit.testing._training_data import TrainingDataFormat, inspect_training_data

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
_KEPT_CHECKPOINTS = 3


@dataclass(frozen=True, kw_only=True)
class FineTuningSettings:
    """Timing and behaviour of simulated jobs. Durations are seconds of the simulated clock."""

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
    developer_tier_slowdown: float = 2.0
    """An Azure ``developerTier`` job (spare capacity) runs this many times as long."""


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
    created_time: float
    """The simulated clock when the job was created."""
    azure: bool
    total_seconds: float
    settings: FineTuningSettings
    """The settings the job was planned with (kept with it in a state directory)."""
    beta: float | None = None
    training_type: str | None = None
    cancelled_time: float | None = None
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

    def advance(self, job: _Job, until: float | None = None) -> None:
        """Apply every milestone that is due by now (or by ``until``, simulated clock)."""
        with self.state.lock:
            now = self.state.now() if until is None else until
            elapsed = now - job.created_time
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

    # ---------------------------------------------------------------- state on disk

    _FIELDS: tuple[str, ...] = (
        "id",
        "model",
        "training_file",
        "validation_file",
        "suffix",
        "seed",
        "n_epochs",
        "batch_size",
        "learning_rate_multiplier",
        "method_type",
        "metadata",
        "integrations",
        "created_at",
        "created_time",
        "azure",
        "beta",
        "training_type",
        "cancelled_time",
    )

    def dump(self) -> list[dict[str, Any]]:
        """What cannot be recomputed of each job: its request, its settings, a cancel."""
        with self.state.lock:
            jobs = list(self.jobs.values())
        dumped = []
        for job in jobs:
            item = {name: getattr(job, name) for name in self._FIELDS}
            item["settings"] = {
                name: getattr(job.settings, name)
                for name in FineTuningSettings.__dataclass_fields__
                if name != "fine_tunable_models"
            }
            dumped.append(item)
        return dumped

    def load(self, data: Any) -> None:
        """Rebuild the jobs and replay their histories up to the clock."""
        store = file_store(self.state)
        for item in data:
            item = dict(item)
            settings = FineTuningSettings(**item.pop("settings"))
            cancelled = item.pop("cancelled_time")
            training = store.get(item["training_file"])
            if training is None:
                continue  # its training file is gone: the job cannot be replayed
            validation_id = item["validation_file"]
            validation = store.get(validation_id) if validation_id else None
            job = _Job(**item, total_seconds=0.0, settings=settings)
            self.plan(job, training, validation)
            if cancelled is not None:
                self.advance(job, until=cancelled)
                if job.status not in _TERMINAL:
                    self.cancel(job, cancelled)
            self.jobs[job.id] = job

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
                id=_child_id("ftevent", job.id, len(job.events)),
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

    def cancel(self, job: _Job, when: float | None = None) -> None:
        with self.state.lock:
            job.cancelled_time = self.state.now() if when is None else when
            offset = job.cancelled_time - job.created_time
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
        settings = job.settings
        store = file_store(self.state)
        expected: TrainingDataFormat = "dpo" if job.method_type == "dpo" else "supervised"
        counter = self.state.tokens(job.model)
        report = inspect_training_data(training.content, expected=expected, counter=counter)
        validation_problem = (
            inspect_training_data(validation.content, expected=expected, counter=counter).problem
            if validation is not None
            else None
        )
        examples = max(1, report.examples)
        steps_per_epoch = math.ceil(examples / job.batch_size)
        total = steps_per_epoch * job.n_epochs
        curve = _LossCurve(stable_hash(job.id, job.seed), total, validation is not None)
        validated = settings.validating_seconds
        started = validated + settings.queued_seconds
        running = settings.running_seconds
        if job.training_type == "developerTier":
            running *= settings.developer_tier_slowdown
        done = started + running
        job.total_seconds = done
        marker = settings.fail_jobs_with
        fails_at = (
            max(1, total // 2) if marker and marker.encode("utf-8") in training.content else None
        )
        add = job.milestones.append

        def at_step(step: int) -> float:
            return started + running * step / (total + 1)

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
            result = store.add(
                "step_metrics.csv",
                "fine-tune-results",
                curve.csv(),
                file_id=_child_id("file", j.id, 0),
            )
            j.result_files = [result.id]
            owner = settings.organization_id
            self.state.register_model(name, owned_by=owner, fine_tuned=True)
            for checkpoint in j.checkpoints:
                self.state.register_model(checkpoint.model, owned_by=owner, fine_tuned=True)
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
                    id=_child_id("ftckpt", job.id, step).replace("-", "_", 1),
                    created_at=job.created_at + int(offset),
                    model=name,
                    step=step,
                    metrics=curve.at(step),
                )
            )
            self.log(job, offset, f"Checkpoint created at step {step}")

        return apply


def _child_id(prefix: str, job_id: str, number: int) -> str:
    """An id derived from the job's, so a replayed history has the same ids."""
    return f"{prefix}-{stable_hash(prefix, job_id, number):016x}{number:08x}"


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
        jobs = _Jobs(state)
        state.add_refresher(lambda: refresh(state))
        state.add_persistence("fine_tuning", jobs.dump, jobs.load)
        return jobs

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


# ---------------------------------------------------------------- creation


def _create_job(state: SimulatorState, dialect: Dialect, body: dict[str, Any]) -> _Job:
    jobs = _jobs(state)
    settings = jobs.settings
    request = read_job_request(state, dialect, body, allowed=settings.fine_tunable_models)
    job_id = state.new_id("ftjob")
    job = _new_job(state, job_id, request, dialect.azure, settings)
    jobs.plan(job, request.training, request.validation)
    with state.lock:
        jobs.jobs[job.id] = job
    state.mark_dirty()
    jobs.advance(job)
    return job


def _new_job(
    state: SimulatorState,
    job_id: str,
    request: JobRequest,
    azure: bool,
    settings: FineTuningSettings,
) -> _Job:
    return _Job(
        id=job_id,
        model=request.model,
        training_file=request.training.id,
        validation_file=request.validation.id if request.validation is not None else None,
        suffix=request.suffix,
        seed=request.seed if request.seed is not None else stable_hash(job_id) % 2**31,
        n_epochs=request.n_epochs,
        batch_size=request.batch_size,
        learning_rate_multiplier=request.learning_rate_multiplier,
        method_type=request.method,
        metadata=request.metadata,
        integrations=request.integrations,
        created_at=state.unix_time(),
        created_time=state.now(),
        azure=azure,
        total_seconds=0.0,
        settings=settings,
        beta=request.beta,
        training_type=request.training_type,
    )


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
        "method": {
            "type": job.method_type,
            job.method_type: {"hyperparameters": _method_hyperparameters(job, hyperparameters)},
        },
        "metadata": job.metadata,
        "user_provided_suffix": job.suffix,
    }
    if job.azure and job.training_type is not None:
        body["trainingType"] = job.training_type
    if not dialect.versioned:
        return body
    body["status"] = _AZURE_STATES[job.status]
    body["organisation_id"] = body.pop("organization_id")  # the authoring spec's spelling
    body["suffix"] = body.pop("user_provided_suffix")
    return {key: value for key, value in body.items() if value is not None}


def _method_hyperparameters(job: _Job, common: dict[str, Any]) -> dict[str, Any]:
    if job.method_type == "dpo":
        return {"beta": job.beta, **common}
    return dict(common)


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
        state.mark_dirty()
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

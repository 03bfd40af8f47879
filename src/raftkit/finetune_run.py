"""Fine-tuning a run directory, resumably: export → validate → upload → job → wait → deploy.

:class:`FineTuneRun` is what ``raftkit finetune`` does, as a library: it exports
``examples.jsonl`` if the chat files are missing, checks them the way the service will, uploads
them (identical files are not uploaded twice), starts a job and records it in
``finetune.json``; a second run resumes waiting for that job instead of starting another. It
sits on floor 4 because it joins two plug-in packages, :mod:`raftkit.dataset` and
:mod:`raftkit.finetune`.

Creating a job is made idempotent across crashes: before the request is sent, ``finetune.json``
records a *pending* creation with a fresh tag, and the job is created carrying that tag (OpenAI
``metadata``; on Azure, which has no metadata, the ``suffix``) with the training file's id. A
run that died while the reply was in transit, or before writing the job down, finds the job by
its tag on the next start and resumes it instead of paying for a second one.

After a successful job, ``finetune/`` gets the training curve (``training-curve.csv`` and
``training-curve.svg``) and ``report.md`` linking them; the fine-tuned model's name is written
to ``finetune.json`` as soon as the service names it. A local job's id is a hash of what it
trains, so "creating it again" after its trainer was killed (it reads ``failed``,
``interrupted``) finds the same job and resumes it from its last checkpoint.

The module passes 400 lines because its steps share one piece of state, ``finetune.json``,
whose every write must keep a crash resumable; split across modules, the order of those writes
(pending tag, job, model name, summary) would no longer be readable in one place.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from raftkit.dataset import (
    ValidationReport,
    prepare_dataset,
    validate_chat_jsonl,
    validate_preference_jsonl,
)
from raftkit.dataset.cost import Epochs, default_epochs, training_price_per_million
from raftkit.dataset.validate import Purpose
from raftkit.errors import (
    APIConnectionError,
    InputError,
    InternalServerError,
    NotFoundError,
    UsageError,
)
from raftkit.finetune import (
    AzureFineTuneProvider,
    Deployment,
    EventCallback,
    FineTuneJob,
    FineTuneMethod,
    FineTuneProvider,
    Hyperparameters,
    LifecycleReport,
    LocalLoRAProvider,
    TrainingMetrics,
    summary_markdown,
    training_curve_csv,
    training_curve_svg,
)
from raftkit.llm import AzureAccount, AzureManagementClient
from raftkit.run_dir import RunDir
from raftkit.students import TemplateAudit

__all__ = ["RESUMABLE_STATUSES", "TAG_KEY", "FineTuneRun", "FineTuneSummary", "LifecycleHook"]

logger = logging.getLogger("raftkit.finetune")

#: A recorded job in one of these states is waited for again instead of starting another.
RESUMABLE_STATUSES = frozenset({"validating_files", "queued", "running", "succeeded"})
#: The metadata key whose value tags a job with the creation that made it.
TAG_KEY = "raftkit_run"
# How far back (seconds before the creation was recorded) a tagged job is looked for: the
# service's clock and ours may differ a little.
_CLOCK_SLACK = 600
_MAX_LISTED = 500

Say = Callable[[str], object]
JobSeen = Callable[[FineTuneJob], Awaitable[None] | None]


@dataclass(frozen=True)
class FineTuneSummary:
    """What a succeeded job left in the run directory."""

    report: Path
    curve_csv: Path | None
    curve_svg: Path | None
    metrics: TrainingMetrics | None


#: Asked about the base model before anything is uploaded (see
#: :func:`raftkit.finetune.check_model`); a refusal raises, warnings are passed on.
LifecycleHook = Callable[[str], Awaitable[LifecycleReport]]


class FineTuneRun:
    """The fine-tuning of one run directory through ``provider`` (which the caller owns).

    ``provider_name`` (``"openai"``, ``"azure"``, ``"local"``) is recorded with the job, so a
    job is only resumed through the service that runs it. Progress lines go to ``say`` and
    warnings to ``warn`` (both: the ``raftkit.finetune`` logger unless given).
    ``finetune.json`` and the summary say ``simulated`` when the service is the simulator
    (``simulated``) or the run's data came from it.

    ``method="dpo"`` trains on the preference pairs of ``dataset/dpo/`` (``raftkit export
    --formats dpo``) with ``beta``. ``lifecycle`` is awaited with the base model before any
    upload: a model (or provider) past its date is refused before anything is paid.
    ``price_per_million`` (and its ``price_note``) is the training price of the cost estimate
    printed before the job starts (default: the price table's for the model).

    With a :class:`~raftkit.finetune.LocalLoRAProvider` (give it ``RunDir.local_training``) the
    chat files are checked by the student's chat-template audit instead of a service's rules,
    ``model`` is the BASE, and the "fine-tuned model" recorded is the adapter's folder.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        provider: FineTuneProvider,
        *,
        provider_name: str,
        model: str = "gpt-4o-mini",
        hyperparameters: Hyperparameters | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        say: Say | None = None,
        warn: Say | None = None,
        simulated: bool = False,
        method: FineTuneMethod = "supervised",
        beta: float | None = None,
        lifecycle: LifecycleHook | None = None,
        price_per_million: float | None = None,
        price_note: str = "",
        from_adapter: str | None = None,
    ) -> None:
        self.run = RunDir(run_dir)
        self.simulated = simulated
        self.provider = provider
        self.provider_name = provider_name
        self.model = model
        self.hyperparameters = hyperparameters or Hyperparameters()
        self.suffix = suffix
        self.seed = seed
        self.summary: FineTuneSummary | None = None
        self._say: Say = say or logger.info
        self._warn: Say = warn or logger.warning
        if beta is not None and method != "dpo":
            raise UsageError("beta is a DPO hyperparameter: use it with method='dpo'")
        self.method: FineTuneMethod = method
        self.beta = beta
        if from_adapter is not None and (
            method != "dpo" or not isinstance(provider, LocalLoRAProvider)
        ):
            raise UsageError("from_adapter is for local DPO (method='dpo', the local provider)")
        self.from_adapter = from_adapter
        self.lifecycle = lifecycle
        self.price_per_million = price_per_million
        self.price_note = price_note

    @property
    def epochs(self) -> Epochs:
        return self.hyperparameters.n_epochs or "auto"

    @property
    def _tags_by_suffix(self) -> bool:
        # Azure's job API has no metadata: the suffix (in the model's name) carries the tag
        return isinstance(self.provider, AzureFineTuneProvider)

    # ------------------------------------------------------------------ state

    async def read_state(self) -> dict[str, Any]:
        """What ``finetune.json`` records (empty when nothing was started)."""
        path = anyio.Path(self.run.finetune_state)
        if not await path.exists():
            return {}
        try:
            state = json.loads(await path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise UsageError(
                f"{self.run.finetune_state} is not JSON; delete it or start a new job"
            ) from e
        return state if isinstance(state, dict) else {}

    async def _write_state(self, state: dict[str, Any]) -> None:
        if self.simulated or self.run.simulated():
            state = {**state, "simulated": True}
        target = self.run.finetune_state
        temporary = anyio.Path(target.with_suffix(".json.tmp"))
        await temporary.write_text(json.dumps(state, indent=2), encoding="utf-8")
        await temporary.replace(target)

    async def _update_state(self, **changes: Any) -> dict[str, Any]:
        state = {**await self.read_state(), **changes}
        await self._write_state(state)
        return state

    # ------------------------------------------------------------------ the workflow

    async def start_or_resume(self, *, resume: bool = True) -> FineTuneJob:
        """The recorded job if it is still worth waiting for (and ``resume``), else the job an
        interrupted start created, else a new one."""
        if not self.run.root.is_dir():
            raise UsageError(f"{self.run.root} is not a directory")
        if resume:
            job = await self.recorded_job() or await self.interrupted_job()
            if job is not None:
                return job
        return await self.start()

    async def recorded_job(self) -> FineTuneJob | None:
        """The job ``finetune.json`` names for this provider, if it is in a resumable state."""
        state = await self.read_state()
        same = state.get("provider") == self.provider_name
        if state.get("method", "supervised") != self.method:
            same = False  # a supervised job is not resumed by a DPO run, nor the other way
        recorded = state.get("job_id") if same else None
        if not isinstance(recorded, str):
            return None
        try:
            job = await self.provider.get_job(recorded)
        except NotFoundError:
            self._warn(f"job {recorded} of {self.run.finetune_state} is unknown to the service")
            return None
        if job.status not in RESUMABLE_STATUSES:
            if job.error is not None and job.error.code == "interrupted":
                self._say(f"job {job.id}: {job.error.message}")  # a local trainer was killed
            return None
        self._say(f"resuming job {job.id} ({job.status}) from {self.run.finetune_state}")
        return job

    async def interrupted_job(self) -> FineTuneJob | None:
        """The job a start that did not finish (killed, or its reply lost) already created,
        found by its tag; recorded, and returned if it is worth waiting for."""
        state = await self.read_state()
        pending = state.get("pending")
        if state.get("provider") != self.provider_name or not isinstance(pending, dict):
            return None
        job = await self._find_tagged(pending)
        if job is None:
            return None
        self._say(f"found job {job.id} ({job.status}), created by an interrupted start")
        await self._record(job, pending)
        return job if job.status in RESUMABLE_STATUSES else None

    async def chat_files(self) -> tuple[Path, Path | None]:
        """The chat training (and, if usable, validation) files, exported if missing and
        checked the way the service will; a training file it would reject raises."""
        train = self.run.dataset_file("chat", "train")
        local = isinstance(self.provider, LocalLoRAProvider)
        if not train.is_file():
            examples = self.run.examples
            if not examples.is_file():
                raise UsageError(f"{self.run.root} has neither {train} nor {examples}")
            self._say(f"exporting {examples} ...")
            prepared = await prepare_dataset(
                examples, self.run.dataset, model=self.model, epochs=self.epochs
            )
            # a hosted service's rules (e.g. its 10-example minimum) bind no local trainer
            self._say(prepared.split.render() if local else prepared.render())
            if not prepared.ok and not local:
                raise UsageError("the exported chat files would be rejected; see above")
        if not await anyio.to_thread.run_sync(_has_rows, train):
            raise UsageError(
                f"{train} has no rows: the run has no train split to fine-tune on (generate "
                "more examples, or export with other --seed/ratios)"
            )
        report = await self._validate(train, "training")
        if not report.ok or local:  # a student's audit is worth reading: lengths, the mask
            self._say(report.render())
        if not report.ok:
            judge = f"the chat-template audit of {self.model}" if local else "the service"
            raise UsageError(f"{train} would be rejected by {judge}; see above")
        if isinstance(report, ValidationReport) and report.cost is not None:
            self._estimate(report.cost.tokens_per_epoch, report.examples)
        validation = self.run.dataset_file("chat", "validation")
        if not validation.is_file():
            return train, None
        checked = await self._validate(validation, "validation")
        if not checked.ok:
            # a validation file only adds metrics: train without it rather than not at all
            self._warn(f"{validation} would be rejected, training without it:")
            self._warn(checked.render())
            return train, None
        return train, validation

    async def _validate(self, path: Path, purpose: Purpose) -> ValidationReport | TemplateAudit:
        if isinstance(self.provider, LocalLoRAProvider):
            # an open-weight student: rendered with its own chat template, as it will train
            return await self.provider.audit_file(path, self.model)
        return await anyio.to_thread.run_sync(
            lambda: validate_chat_jsonl(path, model=self.model, epochs=self.epochs, purpose=purpose)
        )

    async def check_lifecycle(self) -> None:
        """Ask ``lifecycle`` about the model: warnings are passed on, a refusal raises."""
        if self.lifecycle is None:
            return
        report = await self.lifecycle(self.model)
        for message in report.warnings:
            self._warn(f"warning: {message}")
        report.raise_if_refused()

    async def preference_files(self) -> tuple[Path, Path | None]:
        """The DPO training (and, if usable, validation) files, checked as the service will."""
        train = self.run.dataset_file("dpo", "train")
        if not train.is_file():
            raise UsageError(
                f"{train} does not exist: write the preference pairs first with "
                f"`raftkit export {self.run.root} --formats dpo`"
            )
        if isinstance(self.provider, LocalLoRAProvider):
            return await self._local_preference_files(train)
        report = await anyio.to_thread.run_sync(lambda: validate_preference_jsonl(train))
        if not report.ok:
            self._say(report.render())
            raise UsageError(f"{train} would be rejected by the service; see above")
        self._estimate(report.billed_tokens_per_epoch, report.rows)
        validation = self.run.dataset_file("dpo", "validation")
        if not validation.is_file():
            return train, None
        checked = await anyio.to_thread.run_sync(lambda: validate_preference_jsonl(validation))
        if not checked.ok:
            self._warn(f"{validation} would be rejected, training without it:")
            self._warn(checked.render())
            return train, None
        return train, validation

    async def _local_preference_files(self, train: Path) -> tuple[Path, Path | None]:
        """Pairs rendered with the student's template (no service rules, no price): a pair
        that cannot be trained is an error naming its file and line; validation is optional."""
        assert isinstance(self.provider, LocalLoRAProvider)
        count = await self.provider.check_pairs(train, self.model)
        self._say(f"preference pairs: {count} in {train}, rendered with {self.model}'s template")
        validation = self.run.dataset_file("dpo", "validation")
        if not validation.is_file():
            return train, None
        try:
            await self.provider.check_pairs(validation, self.model)
        except InputError as e:
            self._warn(f"training without the validation pairs: {e}")
            return train, None
        return train, validation

    def _estimate(self, tokens_per_epoch: int, rows: int) -> None:
        """Say what training should cost, at this run's price (the tier's, on Azure)."""
        epochs = self.hyperparameters.n_epochs or default_epochs(max(rows, 1))
        price = (
            self.price_per_million
            if self.price_per_million is not None
            else training_price_per_million(self.model)
        )
        tokens = tokens_per_epoch * epochs
        money = "no training price known" if price is None else f"${tokens * price / 1e6:,.2f}"
        rate = "" if price is None else f" at ${price:g}/1M tokens"
        note = f" ({self.price_note})" if self.price_note else ""
        self._say(
            f"estimated training cost: {tokens_per_epoch:,} tokens x {epochs} epochs = "
            f"{tokens:,} tokens; {money}{rate}{note}"
        )

    async def start(self) -> FineTuneJob:
        """Upload the training files, start a job and record it in ``finetune.json``."""
        await self.check_lifecycle()
        if self.method == "dpo":
            train, validation = await self.preference_files()
        else:
            train, validation = await self.chat_files()
        uploaded = await self.provider.upload_file(train)
        self._say(f"training file: {uploaded.id} ({'reused' if uploaded.reused else 'uploaded'})")
        validation_id = None
        if validation is not None:
            valid = await self.provider.upload_file(validation)
            validation_id = valid.id
            self._say(f"validation file: {valid.id} ({'reused' if valid.reused else 'uploaded'})")
        tag = f"rk-{secrets.token_hex(8)}"
        suffix = self.suffix
        if self._tags_by_suffix and suffix is None:
            suffix = f"raftkit-{tag[3:]}"
        pending = {
            "tag": tag,
            "training_file": uploaded.id,
            "validation_file": validation_id,
            "suffix": suffix,
            "requested_at": int(time.time()),
        }
        # written before the request: whatever happens to the reply, the next start looks
        # for a job with this tag before it creates one
        await self._write_state({"provider": self.provider_name, "pending": pending})
        try:
            create: Callable[..., Awaitable[FineTuneJob]] = self.provider.create_job
            if isinstance(self.provider, LocalLoRAProvider) and self.from_adapter:
                create = functools.partial(self.provider.create_job, from_adapter=self.from_adapter)
            job = await create(
                model=self.model,
                training_file=uploaded.id,
                validation_file=validation_id,
                suffix=suffix,
                seed=self.seed,
                hyperparameters=self.hyperparameters,
                method=self.method,
                beta=self.beta,
                metadata=None if self._tags_by_suffix else {TAG_KEY: tag},
            )
        except (APIConnectionError, InternalServerError):
            # the server may have created the job and lost the reply: look before giving up
            found = await self._find_tagged(pending)
            if found is None:
                raise
            self._say(f"the reply was lost, but job {found.id} was created; resuming it")
            job = found
        await self._record(job, pending)
        kind = " (dpo)" if self.method == "dpo" else ""
        self._say(f"started fine-tuning job {job.id} on {self.model}{kind}")
        return job

    async def _record(self, job: FineTuneJob, pending: dict[str, Any]) -> None:
        training_type = (
            self.provider.training_type
            if isinstance(self.provider, AzureFineTuneProvider)
            else None
        )
        await self._write_state(
            {
                "provider": self.provider_name,
                "job_id": job.id,
                "method": self.method,
                **({"training_type": training_type} if training_type else {}),
                **({"from_adapter": self.from_adapter} if self.from_adapter else {}),
                "model": self.model,
                "training_file": pending.get("training_file"),
                "validation_file": pending.get("validation_file"),
                "tag": pending.get("tag"),
                "status": job.status,
                "fine_tuned_model": job.fine_tuned_model,
            }
        )

    async def _find_tagged(self, pending: dict[str, Any]) -> FineTuneJob | None:
        """The newest job carrying ``pending``'s tag and training file (jobs are listed newest
        first; the search stops at jobs older than the creation)."""
        since = int(pending.get("requested_at") or 0) - _CLOCK_SLACK
        listed = 0
        async for job in self.provider.list_jobs():
            if self._carries(job, pending):
                return job
            listed += 1
            if listed >= _MAX_LISTED or (job.created_at is not None and job.created_at < since):
                return None
        return None

    def _carries(self, job: FineTuneJob, pending: dict[str, Any]) -> bool:
        if job.training_file != pending.get("training_file"):
            return False
        if job.validation_file != pending.get("validation_file"):
            return False
        if job.metadata.get(TAG_KEY) == pending.get("tag"):
            return True
        if not self._tags_by_suffix or job.suffix != pending.get("suffix"):
            return False
        # a user-given suffix is not unique: only a job created after the request can match
        since = int(pending.get("requested_at") or 0) - _CLOCK_SLACK
        return job.created_at is None or job.created_at >= since

    # ------------------------------------------------------------------ waiting and after

    async def wait(
        self,
        job: FineTuneJob,
        *,
        on_event: EventCallback | None = None,
        on_job: JobSeen | None = None,
    ) -> FineTuneJob:
        """Wait until ``job`` ends (a failed job is returned, not raised) and record its state;
        the fine-tuned model's name is recorded as soon as the service gives it. A succeeded
        job's summary and training curve are written (see :attr:`summary`)."""
        known = [job.fine_tuned_model]

        async def seen(polled: FineTuneJob) -> None:
            if polled.fine_tuned_model and polled.fine_tuned_model != known[0]:
                known[0] = polled.fine_tuned_model
                await self._update_state(
                    fine_tuned_model=polled.fine_tuned_model, status=polled.status
                )
            if on_job is not None:
                result = on_job(polled)
                if result is not None:
                    await result

        done = await self.provider.wait(
            job.id, on_event=on_event, raise_on_failure=False, on_job=seen
        )
        await self._update_state(status=done.status, fine_tuned_model=done.fine_tuned_model)
        if done.status == "succeeded":
            self.summary = await self.write_summary(done)
        return done

    async def write_summary(self, job: FineTuneJob) -> FineTuneSummary:
        """Write ``finetune/report.md`` and, when the job reported metrics, its training curve
        (``training-curve.csv`` and ``.svg``); the paths are recorded in ``finetune.json``."""
        metrics: TrainingMetrics | None = None
        if job.result_files:
            try:
                metrics = await self.provider.metrics(job)
            except Exception as e:  # the model is trained: a missing curve is only a warning
                self._warn(f"could not read the metrics of job {job.id}: {e}")
        run = self.run
        text = summary_markdown(
            job,
            metrics,
            service=self.provider_name,
            base_model=self.model,
            simulated=self.simulated,
        )

        def write() -> None:
            run.finetune.mkdir(parents=True, exist_ok=True)
            if metrics is not None:
                run.training_curve_csv.write_text(training_curve_csv(metrics), encoding="utf-8")
                title = f"{job.fine_tuned_model or job.id}: training curve"
                run.training_curve_svg.write_text(
                    training_curve_svg(metrics, title=title), encoding="utf-8"
                )
            run.finetune_report_md.write_text(text, encoding="utf-8")

        await anyio.to_thread.run_sync(write)
        summary = FineTuneSummary(
            report=run.finetune_report_md,
            curve_csv=run.training_curve_csv if metrics is not None else None,
            curve_svg=run.training_curve_svg if metrics is not None else None,
            metrics=metrics,
        )
        await self._update_state(
            report=str(summary.report),
            training_curve={"csv": str(summary.curve_csv), "svg": str(summary.curve_svg)}
            if metrics is not None
            else None,
        )
        return summary

    async def deploy(
        self,
        job: FineTuneJob,
        *,
        management: AzureManagementClient,
        account: AzureAccount,
        name: str,
        sku_name: str | None = None,
        capacity: int | None = None,
    ) -> Deployment:
        """Deploy the fine-tuned model of ``job`` on Azure and wait until it serves."""
        provider = self.provider
        if not isinstance(provider, AzureFineTuneProvider):
            raise UsageError("deploying is for Azure; an OpenAI fine-tuned model is usable at once")
        provider.management = management
        provider.account = account
        return await provider.create_deployment(
            job, name=name, sku_name=sku_name, capacity=capacity
        )


def _has_rows(path: Path) -> bool:
    with path.open("rb") as f:
        return any(line.strip() for line in f)

"""Fine-tuning a run directory, resumably: export → validate → upload → job → wait → deploy.

:class:`FineTuneRun` is what ``raftkit finetune`` does, as a library: it exports
``examples.jsonl`` if the chat files are missing, checks them the way the service will, uploads
them (identical files are not uploaded twice), starts a job and records it in
``finetune.json``; a second run resumes waiting for that job instead of starting another. It
sits on floor 4 because it joins two plug-in packages, :mod:`raftkit.dataset` and
:mod:`raftkit.finetune`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from raftkit.dataset import prepare_dataset, validate_chat_jsonl
from raftkit.dataset.cost import Epochs
from raftkit.errors import UsageError
from raftkit.finetune import (
    AzureFineTuneProvider,
    Deployment,
    EventCallback,
    FineTuneJob,
    FineTuneProvider,
    Hyperparameters,
)
from raftkit.llm import AzureAccount, AzureManagementClient
from raftkit.run_dir import RunDir

__all__ = ["RESUMABLE_STATUSES", "FineTuneRun"]

logger = logging.getLogger("raftkit.finetune")

#: A recorded job in one of these states is waited for again instead of starting another.
RESUMABLE_STATUSES = frozenset({"validating_files", "queued", "running", "succeeded"})

Say = Callable[[str], object]


class FineTuneRun:
    """The fine-tuning of one run directory through ``provider`` (which the caller owns).

    ``provider_name`` (``"openai"``, ``"azure"``) is recorded with the job, so a job is only
    resumed through the service that runs it. Progress lines go to ``say`` and warnings to
    ``warn`` (both: the ``raftkit.finetune`` logger unless given). ``finetune.json`` says
    ``"simulated": true`` when the service is the simulator (``simulated``) or the run's data
    came from it.
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
    ) -> None:
        self.run = RunDir(run_dir)
        self.simulated = simulated
        self.provider = provider
        self.provider_name = provider_name
        self.model = model
        self.hyperparameters = hyperparameters or Hyperparameters()
        self.suffix = suffix
        self.seed = seed
        self._say: Say = say or logger.info
        self._warn: Say = warn or logger.warning

    @property
    def epochs(self) -> Epochs:
        return self.hyperparameters.n_epochs or "auto"

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

    # ------------------------------------------------------------------ the workflow

    async def start_or_resume(self, *, resume: bool = True) -> FineTuneJob:
        """The recorded job if it is still worth waiting for (and ``resume``), else a new one."""
        if not self.run.root.is_dir():
            raise UsageError(f"{self.run.root} is not a directory")
        if resume:
            job = await self.recorded_job()
            if job is not None:
                return job
        return await self.start()

    async def recorded_job(self) -> FineTuneJob | None:
        """The job ``finetune.json`` names for this provider, if it is in a resumable state."""
        state = await self.read_state()
        recorded = state.get("job_id") if state.get("provider") == self.provider_name else None
        if not isinstance(recorded, str):
            return None
        job = await self.provider.get_job(recorded)
        if job.status not in RESUMABLE_STATUSES:
            return None
        self._say(f"resuming job {job.id} ({job.status}) from {self.run.finetune_state}")
        return job

    async def chat_files(self) -> tuple[Path, Path | None]:
        """The chat training (and, if usable, validation) files, exported if missing and
        checked the way the service will; a training file it would reject raises."""
        train = self.run.dataset_file("chat", "train")
        if not train.is_file():
            examples = self.run.examples
            if not examples.is_file():
                raise UsageError(f"{self.run.root} has neither {train} nor {examples}")
            self._say(f"exporting {examples} ...")
            prepared = await prepare_dataset(
                examples, self.run.dataset, model=self.model, epochs=self.epochs
            )
            self._say(prepared.render())
            if not prepared.ok:
                raise UsageError("the exported chat files would be rejected; see above")
        report = await self._validate(train)
        if not report.ok:
            self._say(report.render())
            raise UsageError(f"{train} would be rejected by the service; see above")
        validation = self.run.dataset_file("chat", "validation")
        if not validation.is_file():
            return train, None
        checked = await self._validate(validation)
        if not checked.ok:
            # a validation file only adds metrics: train without it rather than not at all
            self._warn(f"{validation} would be rejected, training without it:")
            self._warn(checked.render())
            return train, None
        return train, validation

    async def _validate(self, path: Path) -> Any:
        return await anyio.to_thread.run_sync(
            lambda: validate_chat_jsonl(path, model=self.model, epochs=self.epochs)
        )

    async def start(self) -> FineTuneJob:
        """Upload the chat files, start a job and record it in ``finetune.json``."""
        train, validation = await self.chat_files()
        uploaded = await self.provider.upload_file(train)
        self._say(f"training file: {uploaded.id} ({'reused' if uploaded.reused else 'uploaded'})")
        validation_id = None
        if validation is not None:
            valid = await self.provider.upload_file(validation)
            validation_id = valid.id
            self._say(f"validation file: {valid.id} ({'reused' if valid.reused else 'uploaded'})")
        job = await self.provider.create_job(
            model=self.model,
            training_file=uploaded.id,
            validation_file=validation_id,
            suffix=self.suffix,
            seed=self.seed,
            hyperparameters=self.hyperparameters,
        )
        await self._write_state(
            {
                "provider": self.provider_name,
                "job_id": job.id,
                "model": self.model,
                "training_file": uploaded.id,
                "validation_file": validation_id,
                "status": job.status,
            }
        )
        self._say(f"started fine-tuning job {job.id} on {self.model}")
        return job

    async def wait(self, job: FineTuneJob, *, on_event: EventCallback | None = None) -> FineTuneJob:
        """Wait until ``job`` ends (a failed job is returned, not raised) and record its state."""
        done = await self.provider.wait(job.id, on_event=on_event, raise_on_failure=False)
        await self._write_state({**await self.read_state(), "status": done.status})
        return done

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

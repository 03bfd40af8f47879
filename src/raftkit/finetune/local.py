"""Fine-tuning an open-weight student with LoRA on this machine, behind the same job interface
as the hosted providers.

:class:`LocalLoRAProvider` keeps everything under the ``output_dir`` its caller gives:
``files/`` (uploaded JSONL files, named by content hash), ``jobs/<job id>/`` (one folder per job,
see :mod:`raftkit.students.jobdir`) and ``bases/`` (GGUF bases dequantized once). Training runs
in a child process (``python -m raftkit.students.train``) in its own session: the event loop
never waits on it, a crash in training cannot take the caller down, and — like a hosted job —
it goes on when the caller exits. ``events()``, ``wait()``, ``checkpoints()`` and ``metrics()``
read what the trainer writes.

A job's id is a hash of the base (its fingerprint), the training and validation data and the
settings that change the weights, so creating "the same" job again finds it: a running job is
returned as is, a succeeded one too, and one that was killed (SIGKILL, out-of-memory killer,
a reboot), failed or cancelled is started again and resumes from its last checkpoint.

The module is the whole ``FineTuneProvider`` surface for local jobs (files, jobs, events,
checkpoints, metrics, cancel), which is why it passes 400 lines; the on-disk protocol it shares
with the training process lives in :mod:`raftkit.students.jobdir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from raftkit.errors import UsageError
from raftkit.finetune._base import FileSource, FineTuneMethod, FineTuneProvider
from raftkit.finetune._errors import FineTuneError
from raftkit.finetune._models import (
    Checkpoint,
    FineTuneJob,
    Hyperparameters,
    JobError,
    JobEvent,
    TrainingMetrics,
)
from raftkit.finetune.metrics import parse_result_csv
from raftkit.llm.files import UploadedFile, content_hash
from raftkit.llm.polling import PollPolicy
from raftkit.students import (
    LocalTrainingConfig,
    StudentBase,
    TemplateAudit,
    audit_student,
    require_train,
    resolve_base,
)
from raftkit.students.jobdir import (
    EventWriter,
    JobDir,
    LocalJobSpec,
    LocalJobStatus,
    write_json_atomically,
)

__all__ = ["LocalLoRAProvider"]

_ACTIVE = frozenset({"validating_files", "queued", "running"})


class LocalLoRAProvider(FineTuneProvider):
    """LoRA fine-tuning on this machine (CUDA, Apple MPS or CPU) with the ``train`` extra.

    ``model`` in :meth:`create_job` is the BASE: a Hugging Face model folder, a model id in the
    local Hugging Face cache (nothing is downloaded) or a ``.gguf`` file. ``config`` holds the
    default :class:`~raftkit.students.LocalTrainingConfig`; ``Hyperparameters`` given to
    :meth:`create_job` override its epochs and batch size and scale its learning rate.
    ``cache_dir`` (default ``output_dir/bases``) keeps GGUF bases dequantized between runs.
    ``python`` is the interpreter that trains (default: this one). POSIX only.
    """

    default_poll = PollPolicy(initial=0.5, maximum=5.0, factor=1.5, timeout=None)

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        *,
        config: LocalTrainingConfig | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        python: str | None = None,
        poll: PollPolicy | None = None,
        cancel_grace: float = 30.0,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.config = config or LocalTrainingConfig()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.output_dir / "bases"
        self.python = python or sys.executable
        self.cancel_grace = cancel_grace
        if poll is not None:
            self.default_poll = poll

    def __repr__(self) -> str:
        return f"LocalLoRAProvider({str(self.output_dir)!r})"

    @property
    def files_dir(self) -> Path:
        return self.output_dir / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.output_dir / "jobs"

    def job_dir(self, job_id: str) -> JobDir:
        """The folder of a job; :class:`UsageError` for an id that is no local job."""
        if not job_id.startswith("ftjob-local-") or "/" in job_id or os.sep in job_id:
            raise UsageError(f"{job_id!r} is not a local fine-tuning job id")
        jobdir = JobDir(self.jobs_dir / job_id)
        if not jobdir.spec_path.is_file():
            raise UsageError(f"no local fine-tuning job {job_id} in {self.jobs_dir}")
        return jobdir

    # ------------------------------------------------------------------ files

    async def upload_file(
        self,
        source: FileSource,
        *,
        filename: str | None = None,
        purpose: str = "fine-tune",
    ) -> UploadedFile:
        """Keep a copy of the file under ``output_dir/files`` (named by its content hash, so an
        identical file is stored once); the job reads that copy, not the original."""
        origin: str | None = None
        if isinstance(source, bytes):
            content, name = source, filename or "data.jsonl"
        else:
            path = anyio.Path(os.fspath(source))
            if not await path.is_file():
                raise UsageError(f"{path} does not exist")
            content = await path.read_bytes()
            name = filename or path.name
            origin = str(await path.resolve())
        if not content.strip():
            raise UsageError(f"{name} is empty: there is nothing to train on")
        file_id = f"file-local-{content_hash(content)[:24]}"
        target = self.files_dir / f"{file_id}.jsonl"
        reused = target.is_file()
        if not reused:
            meta = {
                "filename": name,
                "purpose": purpose,
                "source": origin,
                "created_at": int(time.time()),
            }
            await anyio.to_thread.run_sync(
                lambda: _write_bytes_atomically(target, content, json.dumps(meta))
            )
        return UploadedFile(
            id=file_id,
            filename=name,
            purpose=purpose,
            bytes=len(content),
            status="processed",
            reused=reused,
        )

    def _file(self, file_id: str) -> Path:
        path = self.files_dir / f"{file_id}.jsonl"
        if "/" in file_id or not path.is_file():
            raise UsageError(f"no uploaded file {file_id} in {self.files_dir}; upload it first")
        return path

    async def audit_file(self, path: str | os.PathLike[str], model: str) -> TemplateAudit:
        """The chat-template audit the trainer will make of ``path`` for the BASE ``model``
        (at this provider's ``max_seq_length``), before anything is uploaded or trained."""
        return await anyio.to_thread.run_sync(
            lambda: audit_student(
                path,
                model,
                max_seq_length=self.config.max_seq_length,
                cache_dir=self.cache_dir,
            )
        )

    async def check_pairs(self, path: str | os.PathLike[str], model: str) -> int:
        """Render every preference pair of ``path`` with the BASE ``model``'s chat template,
        as DPO training will; the number of pairs, or a :class:`~raftkit.errors.DatasetError`
        naming the file and line of the first pair that cannot be trained."""
        from raftkit.students import load_tokenizer
        from raftkit.students.pairs import load_preference_pairs

        def check() -> int:
            base = resolve_base(model)
            window = base.context_window or self.config.max_seq_length
            tokenizer = load_tokenizer(base, cache_dir=self.cache_dir)
            limit = min(self.config.max_seq_length, window)
            return len(load_preference_pairs(path, tokenizer, max_tokens=limit))

        return await anyio.to_thread.run_sync(check)

    # ------------------------------------------------------------------ jobs

    def _settings(
        self,
        config: LocalTrainingConfig | None,
        hyperparameters: Hyperparameters | None,
        seed: int | None,
    ) -> LocalTrainingConfig:
        settings = config or self.config
        updates: dict[str, object] = {}
        if hyperparameters is not None:
            if hyperparameters.n_epochs is not None:
                updates["epochs"] = hyperparameters.n_epochs
            if hyperparameters.batch_size is not None:
                updates["batch_size"] = hyperparameters.batch_size
            if hyperparameters.learning_rate_multiplier is not None:
                updates["learning_rate"] = (
                    settings.learning_rate * hyperparameters.learning_rate_multiplier
                )
        if seed is not None:
            updates["seed"] = seed
        return LocalTrainingConfig.model_validate({**settings.model_dump(), **updates})

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
        config: LocalTrainingConfig | None = None,
        from_adapter: str | os.PathLike[str] | None = None,
    ) -> FineTuneJob:
        """Start training ``model`` (the BASE) on uploaded files, or find the same job.

        Checks the BASE, the files and the ``train`` extra first, so bad input raises a
        one-line :class:`UsageError` before anything is written. ``method="dpo"`` trains on
        preference pairs (the ``dpo`` or ``dpo-trl`` export) with ``beta`` (default 0.1),
        starting from a fresh adapter — the reference is the base — or from the supervised
        adapter folder ``from_adapter``, which is then the reference too.
        """
        if method == "supervised" and (beta is not None or from_adapter is not None):
            raise UsageError("beta and from_adapter are DPO settings: use them with method='dpo'")
        if beta is not None and not 0 < beta <= 2:
            raise UsageError(f"beta must be above 0 and at most 2, not {beta:g}")
        adapter = await anyio.to_thread.run_sync(lambda: _adapter(from_adapter))
        settings = self._settings(config, hyperparameters, seed)
        if method == "dpo" and settings.packing:
            raise UsageError("DPO trains on pairs of whole rows: train it with packing off")
        base = await anyio.to_thread.run_sync(lambda: resolve_base(model))
        require_train("local LoRA training", gguf=base.is_gguf)
        train_path = self._file(training_file)
        valid_path = self._file(validation_file) if validation_file else None
        preference = {"method": method, "beta": beta, "from_adapter": adapter}
        job_id = _job_id(
            base,
            training_file,
            validation_file,
            settings,
            preference if method == "dpo" else None,
        )
        jobdir = JobDir(self.jobs_dir / job_id)
        spec = LocalJobSpec(
            id=job_id,
            base=base,
            training_file=str(train_path),
            training_file_id=training_file,
            training_source=_source_of(train_path),
            validation_file=str(valid_path) if valid_path else None,
            validation_file_id=validation_file,
            config=settings,
            suffix=suffix,
            metadata=dict(metadata or {}),
            cache_dir=str(self.cache_dir),
            created_at=int(time.time()),
            raftkit_version=_version(),
            method=method,
            beta=beta,
            from_adapter=adapter,
        )
        if await anyio.to_thread.run_sync(lambda: _needs_start(jobdir, spec)):
            await self._launch(jobdir)
        return await self.get_job(job_id)

    async def _launch(self, jobdir: JobDir) -> None:
        lock = await anyio.to_thread.run_sync(jobdir.take_lock)
        try:
            status = jobdir.read_status()
            status.status, status.error, status.error_code = "queued", None, None
            jobdir.write_status(status)
            command = [
                self.python,
                "-m",
                "raftkit.students.train",
                str(jobdir.root),
                "--detach",
                "--lock-fd",
                str(lock),
            ]
            try:
                await anyio.run_process(command, pass_fds=(lock,), check=True)
            except Exception as e:
                stderr = getattr(e, "stderr", b"") or b""
                reason = stderr.decode(errors="replace").strip().splitlines()[-1:] or [str(e)]
                status.status, status.error_code = "failed", "not_started"
                status.error = f"the training process did not start: {reason[0]}"
                jobdir.write_status(status)
                raise FineTuneError(status.error) from e
        finally:
            os.close(lock)  # the trainer holds its own copy of the locked descriptor

    async def get_job(self, job_id: str) -> FineTuneJob:
        jobdir = self.job_dir(job_id)
        return await anyio.to_thread.run_sync(lambda: _job(jobdir))

    async def list_jobs(self) -> AsyncIterator[FineTuneJob]:
        def all_jobs() -> list[FineTuneJob]:
            if not self.jobs_dir.is_dir():
                return []
            found = [
                _job(JobDir(folder))
                for folder in self.jobs_dir.iterdir()
                if (folder / "job.json").is_file()
            ]
            return sorted(found, key=lambda job: (job.created_at or 0, job.id), reverse=True)

        for job in await anyio.to_thread.run_sync(all_jobs):
            yield job

    async def cancel_job(self, job_id: str) -> FineTuneJob:
        """SIGTERM to the trainer (it stops after the current micro-batch), SIGKILL after
        ``cancel_grace`` seconds; the job ends ``cancelled``."""
        jobdir = self.job_dir(job_id)
        pid = jobdir.pid()
        if jobdir.trainer_alive() and pid is not None:
            _signal(pid, signal.SIGTERM)
            if not await _until_stopped(jobdir, self.cancel_grace):
                _signal(pid, signal.SIGKILL)
                await _until_stopped(jobdir, 10.0)
        status = jobdir.read_status()
        if status.status in _ACTIVE:
            status.status, status.finished_at = "cancelled", int(time.time())
            jobdir.write_status(status)
        return await self.get_job(job_id)

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        jobdir = self.job_dir(job_id)
        events = await anyio.to_thread.run_sync(jobdir.events)
        for event in reversed(events):
            yield JobEvent(
                id=event.id,
                created_at=event.created_at,
                level=event.level,
                message=event.message,
                type=event.type,
                data=event.data,
            )

    async def checkpoints(self, job_id: str) -> AsyncIterator[Checkpoint]:
        jobdir = self.job_dir(job_id)
        for step, folder in list(jobdir.checkpoints()):
            state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
            yield Checkpoint(
                id=f"{job_id}:step-{step}",
                step=step,
                model=str(folder),
                created_at=state.get("created_at"),
                metrics={k: float(v) for k, v in (state.get("metrics") or {}).items()},
            )

    async def metrics(self, job: FineTuneJob | str) -> TrainingMetrics:
        found = job if isinstance(job, FineTuneJob) else await self.get_job(job)
        if not found.result_files:
            raise UsageError(
                f"job {found.id} has no loss curve yet (it is {found.status}); metrics come "
                "with a succeeded job"
            )
        path = Path(found.result_files[0])
        content = await anyio.Path(path).read_bytes()
        return parse_result_csv(content, file_id=str(path))

    async def deploy(self, model: FineTuneJob | str, *, name: str | None = None) -> str:
        """A local adapter is served, not deployed: raises :class:`UsageError` saying how."""
        adapter = model.fine_tuned_model if isinstance(model, FineTuneJob) else model
        base = model.model if isinstance(model, FineTuneJob) else "BASE"
        raise UsageError(
            f"a local adapter is served, not deployed: raftkit serve {base} "
            f"--adapter {name or 'raft'}={adapter}, then ask for model {name or 'raft'!r}"
        )


# ---------------------------------------------------------------------------- helpers


def _version() -> str:
    from raftkit import __version__

    return __version__


def _job_id(
    base: StudentBase,
    training_file: str,
    validation_file: str | None,
    settings: LocalTrainingConfig,
    preference: dict[str, Any] | None = None,
) -> str:
    identity: dict[str, Any] = {
        "base": base.fingerprint,
        "training_file": training_file,
        "validation_file": validation_file,
        "settings": settings.identity(),
    }
    if preference is not None:  # left out for supervised jobs, whose ids stay what they were
        identity["preference"] = preference
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"ftjob-local-{digest[:24]}"


def _adapter(folder: str | os.PathLike[str] | None) -> str | None:
    """The resolved folder of a PEFT adapter to start from; :class:`UsageError` if it is not
    one."""
    if folder is None:
        return None
    path = Path(folder).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise UsageError(f"{path} is not a LoRA adapter folder (it has no adapter_config.json)")
    return str(path.resolve())


def _source_of(stored: Path) -> str | None:
    try:
        meta = json.loads(stored.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    source = meta.get("source") if isinstance(meta, dict) else None
    return source if isinstance(source, str) else None


def _write_bytes_atomically(target: Path, content: bytes, meta: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    temporary.write_bytes(content)
    write_json_atomically(target.with_suffix(".json"), meta)
    temporary.replace(target)


def _needs_start(jobdir: JobDir, spec: LocalJobSpec) -> bool:
    """Write a new job's files; for a known job, whether it must be started again."""
    if jobdir.spec_path.is_file():
        if jobdir.trainer_alive():
            return False
        return jobdir.read_status().status != "succeeded"
    jobdir.write_spec(spec)
    jobdir.write_status(LocalJobStatus(status="queued"))
    EventWriter(jobdir).emit(
        f"created fine-tuning job {spec.id}: {_what(spec)} on {spec.base.spec}",
        type="created",
    )
    return True


def _what(spec: LocalJobSpec) -> str:
    if spec.method != "dpo":
        return f"LoRA r={spec.config.lora_r}"
    start = f"from {spec.from_adapter}" if spec.from_adapter else f"LoRA r={spec.config.lora_r}"
    return f"DPO (beta {spec.beta or 0.1:g}) {start}"


def _preference(spec: LocalJobSpec) -> dict[str, Any]:
    if spec.method != "dpo":
        return {}
    return {"method": "dpo", "beta": spec.beta or 0.1, "from_adapter": spec.from_adapter}


def _job(jobdir: JobDir) -> FineTuneJob:
    spec = jobdir.read_spec()
    status = jobdir.read_status()
    state, code, message = status.status, status.error_code, status.error
    if state in _ACTIVE and not jobdir.trainer_alive():
        latest = next(iter(jobdir.checkpoints()), None)
        resume = f"the checkpoint at step {latest[0]}" if latest else "the beginning"
        state, code = "failed", "interrupted"
        message = (
            f"the training process stopped without finishing (killed, or out of memory) after "
            f"step {status.step}; create the same job again to resume from {resume}"
        )
    succeeded = state == "succeeded"
    return FineTuneJob(
        id=spec.id,
        status=state,
        model=spec.base.spec,
        fine_tuned_model=str(jobdir.adapter_dir) if succeeded else None,
        training_file=spec.training_file_id,
        validation_file=spec.validation_file_id,
        created_at=spec.created_at,
        finished_at=status.finished_at,
        trained_tokens=status.trained_tokens or None,
        result_files=[str(jobdir.curve_csv)] if succeeded and jobdir.curve_csv.is_file() else [],
        hyperparameters=spec.config.model_dump(mode="json") | _preference(spec),
        suffix=spec.suffix,
        metadata=spec.metadata,
        seed=spec.config.seed,
        error=JobError(code=code, message=message or "") if message else None,
        raw={
            "job_dir": str(jobdir.root),
            "step": status.step,
            "total_steps": status.total_steps,
            "attempt": status.attempt,
        },
    )


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.kill(pid, signum)


async def _until_stopped(jobdir: JobDir, seconds: float) -> bool:
    """Whether the trainer let go of the job's lock within ``seconds``."""
    for _ in range(max(1, round(seconds / 0.2))):
        if not jobdir.trainer_alive():
            return True
        await anyio.sleep(0.2)
    return not jobdir.trainer_alive()

"""The job directory of a local training run: the files the training process writes and the
provider in the caller's process reads.

The two processes share nothing but these files. Every file is replaced atomically (written
beside, then renamed) except ``events.jsonl``, which is appended one line at a time; a torn last
line (a process killed mid-write) is ignored when read and cut off before the next append. A
process holds an exclusive ``flock`` on ``lock`` while it trains, so "is the trainer alive?" has
a true answer even after a SIGKILL (the kernel releases the lock) and across restarts of the
caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.students.base import StudentBase
from raftkit.students.config import LocalTrainingConfig

__all__ = [
    "CURVE_CSV",
    "CURVE_SVG",
    "EventWriter",
    "JobDir",
    "LocalJobSpec",
    "LocalJobStatus",
    "StepEvent",
    "write_json_atomically",
]

#: The loss curve's file names in a job's adapter folder (and in a run's ``finetune/``).
CURVE_CSV = "training-curve.csv"
CURVE_SVG = "training-curve.svg"

try:  # POSIX; local training needs it to tell a live trainer from a killed one
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class LocalJobSpec(BaseModel):
    """What the caller asked for (``job.json``); the training process reads only this."""

    model_config = ConfigDict(frozen=True)

    id: str
    base: StudentBase
    training_file: str
    training_file_id: str
    training_source: str | None = None
    """The path the training file was uploaded from (the split report lives beside it)."""
    validation_file: str | None = None
    validation_file_id: str | None = None
    config: LocalTrainingConfig
    suffix: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    cache_dir: str | None = None
    """Where a GGUF base is kept dequantized between runs."""
    created_at: int
    raftkit_version: str
    method: Literal["supervised", "dpo"] = "supervised"
    beta: float | None = None
    """DPO's beta (the trainer's default when None)."""
    from_adapter: str | None = None
    """DPO: a supervised adapter folder to start from (and to be the reference)."""


class LocalJobStatus(BaseModel):
    """Where the job stands (``status.json``), in OpenAI's job states."""

    status: str = "queued"
    started_at: int | None = None
    finished_at: int | None = None
    step: int = 0
    total_steps: int | None = None
    trained_tokens: int = 0
    attempt: int = 0
    error_code: str | None = None
    error: str | None = None


class StepEvent(BaseModel):
    """One line of ``events.jsonl``."""

    id: str
    created_at: int
    level: str = "info"
    message: str
    type: str = "message"
    data: dict[str, Any] = Field(default_factory=dict)


def write_json_atomically(path: Path, payload: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class JobDir:
    """Paths and file operations of one job directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def spec_path(self) -> Path:
        return self.root / "job.json"

    @property
    def status_path(self) -> Path:
        return self.root / "status.json"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.root / "lock"

    @property
    def pid_path(self) -> Path:
        return self.root / "pid"

    @property
    def log_path(self) -> Path:
        return self.root / "train.log"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return self.root / "adapter"

    @property
    def merged_dir(self) -> Path:
        return self.root / "merged"

    @property
    def base_config_dir(self) -> Path:
        return self.root / "base_config"

    # the adapter folder is the deliverable: weights, card and curve travel together. The
    # curve's names are a run directory's (RunDir.training_curve_csv/svg), which
    # FineTuneRun fills from this CSV: one pair of names wherever a curve is found.

    @property
    def curve_csv(self) -> Path:
        return self.adapter_dir / CURVE_CSV

    @property
    def curve_svg(self) -> Path:
        return self.adapter_dir / CURVE_SVG

    @property
    def card_path(self) -> Path:
        return self.root / "adapter" / "README.md"

    # ------------------------------------------------------------------ spec and status

    def read_spec(self) -> LocalJobSpec:
        try:
            return LocalJobSpec.model_validate_json(self.spec_path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise UsageError(f"no local fine-tuning job in {self.root}") from e
        except ValueError as e:
            raise UsageError(f"{self.spec_path} is damaged: {e}") from e

    def write_spec(self, spec: LocalJobSpec) -> None:
        write_json_atomically(self.spec_path, spec.model_dump_json(indent=2))

    def read_status(self) -> LocalJobStatus:
        try:
            return LocalJobStatus.model_validate_json(self.status_path.read_text("utf-8"))
        except FileNotFoundError:
            return LocalJobStatus()
        except ValueError as e:
            raise UsageError(f"{self.status_path} is damaged: {e}") from e

    def write_status(self, status: LocalJobStatus) -> None:
        write_json_atomically(self.status_path, status.model_dump_json(indent=2))

    # ------------------------------------------------------------------ events

    def events(self) -> list[StepEvent]:
        """Every complete event line, oldest first."""
        try:
            raw = self.events_path.read_bytes()
        except FileNotFoundError:
            return []
        complete = raw[: raw.rfind(b"\n") + 1]
        events = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            if line.strip():
                with contextlib.suppress(ValueError):
                    events.append(StepEvent.model_validate_json(line))
        return events

    # ------------------------------------------------------------------ liveness

    def trainer_alive(self) -> bool:
        """Whether a process holds this job's lock (a trainer is running)."""
        if fcntl is None:  # pragma: no cover
            raise UsageError("local training needs a POSIX system (Linux, macOS)")
        try:
            handle = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
        finally:
            os.close(handle)

    def take_lock(self) -> int:
        """Open and lock ``lock`` exclusively; returns the descriptor (keep it open), or raises
        :class:`UsageError` when another process holds it."""
        if fcntl is None:  # pragma: no cover
            raise UsageError("local training needs a POSIX system (Linux, macOS)")
        self.root.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(handle)
            raise UsageError(f"job {self.root.name} is already being trained") from e
        return handle

    def pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None

    # ------------------------------------------------------------------ checkpoints

    def checkpoints(self) -> Iterator[tuple[int, Path]]:
        """``(step, folder)`` of every complete checkpoint, newest first."""
        if not self.checkpoints_dir.is_dir():
            return
        found = []
        for folder in self.checkpoints_dir.iterdir():
            name = folder.name
            numbered = name.startswith("step-") and name[5:].isdigit()
            if numbered and (folder / "state.json").is_file():
                found.append((int(name[5:]), folder))
        yield from sorted(found, reverse=True)


class EventWriter:
    """Appends events to ``events.jsonl`` (one process at a time: the lock holder)."""

    def __init__(self, jobdir: JobDir) -> None:
        self.jobdir = jobdir
        path = jobdir.events_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab+") as handle:  # cut a torn last line left by a killed writer
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size:
                handle.seek(max(0, size - 65536))
                tail = handle.read()
                cut = tail.rfind(b"\n")
                keep = size - len(tail) + cut + 1 if cut >= 0 else size - len(tail)
                if keep < size:
                    handle.truncate(keep)
        self.count = len(jobdir.events())

    def emit(
        self,
        message: str,
        *,
        level: str = "info",
        type: str = "message",
        data: dict[str, Any] | None = None,
    ) -> StepEvent:
        self.count += 1
        event = StepEvent(
            id=f"ftevent-{self.jobdir.root.name[-12:]}-{self.count:06d}",
            created_at=int(time.time()),
            level=level,
            message=message,
            type=type,
            data=data or {},
        )
        with self.jobdir.events_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(event.model_dump(mode="json"), ensure_ascii=False) + "\n")
            out.flush()
        return event

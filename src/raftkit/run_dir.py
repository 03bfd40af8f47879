"""The layout of a run directory, in one place (floor 1).

A run directory is where one corpus's work accumulates, command after command::

    RUN_DIR/
      run.lock                      held by the one process writing into the run (``lock()``)
      settings.json                 the data-shaping settings the run was started with, its
                                    endpoint, and whether the simulator answered (``simulated``)
      journal.jsonl                 every paid teacher response (the journal)
      chunks.jsonl                  the corpus's chunks, in corpus order
      examples.jsonl                verified RAFT examples, in corpus order
      rejections.jsonl              questions whose answers failed verification, and why
      preferences.jsonl             preference pairs for DPO (``raftkit export --formats dpo``)
      report.json, report.md        what the generation did and cost
      report.html                   the run viewer's page (``raftkit show``)
      <name>.batch.json             the Batch API batch in flight (``generate --batch``)
      dataset/<format>/<part>.jsonl the exported splits (``raftkit export``), dataset/split.json
                                    and dataset/export.json (the system prompt and formats used)
      finetune.json                 the fine-tuning job (``raftkit finetune``), to resume it
      finetune/                     after the job: report.md, training-curve.{csv,svg}
      finetune/local/               ``finetune --provider local``: files/, jobs/<job id>/
                                    (adapter/, checkpoints/, events), bases/ (GGUF dequantized)
      eval/                         ``raftkit eval``: its own journal and report.{md,html,json},
                                    retrieved/<retriever>.jsonl (contexts a retriever returned)
      retrieval/                    ``raftkit retrieval``: pairs.jsonl, split.json, cache/,
                                    adapter-<kind>.npz, bi-encoder/, cross-encoder/,
                                    report.{md,html,json}

Every command and library function that reads or writes one of these asks :class:`RunDir`
for its path, so the layout is spelled out here and nowhere else.

One process writes into a run at a time: every command that writes holds :meth:`RunDir.lock`,
an advisory lock (``flock``) on ``run.lock`` that the kernel releases when the process ends,
however it ends, so a killed run leaves no stale lock behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from raftkit.errors import RunLockedError, UsageError

__all__ = ["RunDir"]

# Locks this process holds, by run directory: [file descriptor, depth]. A command and the
# library call it makes may both lock the same run; a second flock from this process on a
# new descriptor would refuse it, so nested locks count instead.
_held: dict[Path, list[int]] = {}
_held_guard = threading.Lock()


class RunDir(os.PathLike[str]):
    """The paths of one run directory. Naming a path creates and reads nothing; only
    :meth:`lock` (which creates the directory) and :meth:`simulated` touch the disk.

    A :class:`RunDir` is an ``os.PathLike``, so it can be passed wherever a directory is
    expected (``Journal(run)``, ``open(run.examples)``, ``Path(run)``).
    """

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # ------------------------------------------------------------------ one writer

    @property
    def lock_file(self) -> Path:
        """The file :meth:`lock` holds; it records the holder's PID and command."""
        return self.root / "run.lock"

    @contextlib.contextmanager
    def lock(self, command: str | None = None) -> Iterator[RunDir]:
        """Hold the run for this process: the one writer. Creates the directory if needed.

        Raises :class:`~raftkit.errors.RunLockedError` at once, naming the holder's PID and
        the directory, when another process holds it. The kernel releases the lock when the
        process ends (even by ``SIGKILL``). Nested calls in one process share the lock.
        """
        key = self.root.resolve()
        with _held_guard:
            held = _held.get(key)
            if held is not None:
                held[1] += 1
        if held is None:
            fd = self._acquire(command)
            with _held_guard:
                _held[key] = held = [fd, 1]
        try:
            yield self
        finally:
            with _held_guard:
                held[1] -= 1
                last = held[1] == 0
                if last:
                    del _held[key]
            if last:
                os.close(held[0])  # closing the descriptor releases the lock

    def _acquire(self, command: str | None) -> int:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except FileExistsError as e:
            raise UsageError(f"{self.root} is a file, not a run directory") from e
        except NotADirectoryError as e:
            raise UsageError(f"{self.root}: a parent of it is a file, not a directory") from e
        except PermissionError as e:
            raise UsageError(f"cannot write in {self.root}: permission denied") from e
        if not _try_lock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            pid = holder.get("pid") if isinstance(holder.get("pid"), int) else None
            who = f"process {pid}" if pid is not None else "another process"
            doing = f" ({holder['command']})" if isinstance(holder.get("command"), str) else ""
            raise RunLockedError(
                f"{self.root} is in use by {who}{doing}: one process writes into a run at a "
                "time. Wait for it to finish (or stop it), or use another run directory.",
                run_dir=str(self.root),
                pid=pid,
            )
        record: dict[str, Any] = {"pid": os.getpid()}
        if command:
            record["command"] = command
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        return fd

    def simulated(self) -> bool:
        """Whether ``settings.json`` says the simulator answered some of this run's calls.

        Every report built from the run's data says SIMULATED when this is true.
        """
        try:
            settings = json.loads(self.settings.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(settings, dict) and settings.get("simulated") is True

    # ------------------------------------------------------------------ generation

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def chunks(self) -> Path:
        return self.root / "chunks.jsonl"

    @property
    def examples(self) -> Path:
        return self.root / "examples.jsonl"

    @property
    def partial_examples(self) -> Path:
        """Examples as they are finished, in any order, while a generation runs."""
        return self.root / "examples.jsonl.partial"

    @staticmethod
    def temporary(path: Path) -> Path:
        """Where ``path`` is written before it replaces the old one (``<name>.tmp``)."""
        return path.with_name(path.name + ".tmp")

    @property
    def rejections(self) -> Path:
        return self.root / "rejections.jsonl"

    @property
    def preferences(self) -> Path:
        """Each example's rejected answers (natural or synthetic), for the DPO exports."""
        return self.root / "preferences.jsonl"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        """The page ``raftkit show`` writes to look at the run."""
        return self.root / "report.html"

    def batch_state(self, name: str) -> Path:
        """The state file of the batch called ``name`` (its id, whether it was merged)."""
        return self.root / f"{name}.batch.json"

    # ------------------------------------------------------------------ export and fine-tuning

    @property
    def dataset(self) -> Path:
        """Where ``raftkit export`` writes ``<format>/<part>.jsonl`` and ``split.json``."""
        return self.root / "dataset"

    def dataset_file(self, format: str, part: str, suffix: str = ".jsonl") -> Path:
        """One exported file: ``dataset/<format>/<part><suffix>``."""
        return self.dataset / format / f"{part}{suffix}"

    @property
    def split_report(self) -> Path:
        """The split the export made (seed, grouping, ratios): ``dataset/split.json``."""
        return self.dataset / "split.json"

    @property
    def export_manifest(self) -> Path:
        """How the export rendered its rows (system prompt, formats): ``dataset/export.json``,
        so evaluation asks the student exactly as it was trained."""
        return self.dataset / "export.json"

    @property
    def finetune_state(self) -> Path:
        """The fine-tuning job a ``raftkit finetune`` started, so a second one resumes it."""
        return self.root / "finetune.json"

    @property
    def finetune(self) -> Path:
        """What a finished fine-tune leaves: ``report.md`` and the training curve."""
        return self.root / "finetune"

    @property
    def finetune_report_md(self) -> Path:
        return self.finetune / "report.md"

    @property
    def local_training(self) -> Path:
        """The local LoRA provider's folder (``raftkit finetune --provider local``): uploaded
        files, one folder per job (adapter, checkpoints, events) and dequantized GGUF bases."""
        return self.finetune / "local"

    @property
    def training_curve_csv(self) -> Path:
        """The job's per-step loss and accuracy, as CSV."""
        return self.finetune / "training-curve.csv"

    @property
    def training_curve_svg(self) -> Path:
        """The job's per-step loss and accuracy, plotted."""
        return self.finetune / "training-curve.svg"

    # ------------------------------------------------------------------ evaluation

    @property
    def eval(self) -> Path:
        """``raftkit eval``'s directory: its own journal and ``report.{md,html,json}``."""
        return self.root / "eval"

    def retrieved_contexts(self, retriever: str) -> Path:
        """The contexts ``retriever`` returned per test question: ``eval/retrieved/<name>.jsonl``
        (the name made safe for a file name)."""
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in retriever).strip("._")
        return self.eval / "retrieved" / f"{safe or 'retriever'}.jsonl"

    # ------------------------------------------------------------------ retrieval

    @property
    def retrieval(self) -> Path:
        return self.root / "retrieval"

    @property
    def pairs(self) -> Path:
        """(question, chunk) pairs with their split."""
        return self.retrieval / "pairs.jsonl"

    @property
    def pair_split(self) -> Path:
        """The report of the pairs' split."""
        return self.retrieval / "split.json"

    @property
    def embedding_cache(self) -> Path:
        return self.retrieval / "cache"

    def adapter(self, kind: str) -> Path:
        """A trained embedding adapter: ``retrieval/adapter-<kind>.npz``."""
        return self.retrieval / f"adapter-{kind}.npz"

    @property
    def bi_encoder(self) -> Path:
        return self.retrieval / "bi-encoder"

    @property
    def cross_encoder(self) -> Path:
        return self.retrieval / "cross-encoder"

    @property
    def retrieval_report_md(self) -> Path:
        return self.retrieval / "report.md"

    @property
    def retrieval_report_html(self) -> Path:
        return self.retrieval / "report.html"

    @property
    def retrieval_report_json(self) -> Path:
        return self.retrieval / "report.json"


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; whether it was free."""
    import fcntl  # POSIX, like the journal's pread

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}

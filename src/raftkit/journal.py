"""The run journal: every paid response, appended before it is used.

A run directory holds ``journal.jsonl`` (one JSON object a line: ``key``, ``request``,
``response``) and ``settings.json`` (the settings the run was started with). Killing a run at any
point and starting it again replays every journaled response instead of paying for it again;
only calls that were in flight at the kill are repeated.

Design notes:

- The journal keeps only ``key -> (offset, length)`` in memory and reads a response back from
  disk when it is asked for, so a journal of a million responses costs tens of megabytes,
  not gigabytes.
- Each entry is written with one ``write`` of a whole line and flushed to the OS before
  :meth:`Journal.put` returns, which is what survives ``SIGKILL``. ``durable=True`` also fsyncs
  each entry (survives power loss, costs a disk flush per call).
- A torn last line (the process died mid-write) is cut off when the journal is opened.
- Resuming with other settings is refused (:class:`~raftkit.errors.ResumeMismatchError`) rather
  than mixing two runs' data silently. Settings that do not change the data (concurrency, rate
  limits, budget) may differ: callers leave them out of the settings they pass. ``simulated``
  is recorded but not compared: it is a fact about the run (the simulator answered some of its
  calls), true once and for good (:meth:`Journal.mark_simulated`).
- :meth:`Journal.put` cannot be cancelled half-way: a response that arrived is written even
  when the run is being stopped (Ctrl-C, a budget stop), so nothing paid for is lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio

from raftkit.errors import DatasetError, InputError, ResumeMismatchError
from raftkit.run_dir import RunDir

__all__ = ["Journal"]

#: Settings recorded in ``settings.json`` but not compared on resume: facts about the run.
_FACTS = frozenset({"simulated"})


class Journal:
    """An append-only store of paid responses, keyed by a hash of the request.

    Satisfies :class:`raftkit.llm.ResponseStore`, so ``client.with_store(journal)`` routes every
    chat and embedding call of a client through it.
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, durable: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.path = RunDir(run_dir).journal
        self.durable = durable
        self._index: dict[str, tuple[int, int]] = {}
        self._file: Any = None
        self._end = 0
        self._lock = anyio.Lock()
        self.replayed = 0
        self.recorded = 0

    # ------------------------------------------------------------------ lifecycle

    def open(self, settings: Mapping[str, Any] | None = None) -> Self:
        """Open (or create) the journal; with ``settings``, check them against the run's."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if settings is not None:
            self._check_settings(dict(settings))
        self._file = open(self.path, "a+b")  # noqa: SIM115 - closed in close()
        self._load()
        return self

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        if self._file is None:
            self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        if self._file is None:
            self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    # ------------------------------------------------------------------ ResponseStore

    async def get(self, key: str) -> dict[str, Any] | None:
        """The journaled response for ``key``, or ``None``."""
        where = self._index.get(key)
        if where is None:
            return None
        offset, length = where
        raw = os.pread(self._fileno(), length, offset)
        entry: dict[str, Any] = json.loads(raw)
        self.replayed += 1
        response: dict[str, Any] = entry["response"]
        return response

    async def put(self, key: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        """Append a response; it is on the OS's disk cache when this returns."""
        line = (
            json.dumps(
                {"key": key, "request": request, "response": response},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            + "\n"
        ).encode("utf-8")
        # shielded: the response was paid for, so a stop (Ctrl-C, a budget stop cancelling
        # the run) must not land between its arrival and its line on disk
        with anyio.CancelScope(shield=True):
            async with self._lock:
                if key in self._index:
                    return
                file = self._require_open()
                offset = self._end
                file.write(line)
                file.flush()
                if self.durable:
                    await anyio.to_thread.run_sync(os.fsync, file.fileno())
                self._end += len(line)
                self._index[key] = (offset, len(line) - 1)
                self.recorded += 1

    def mark_simulated(self) -> None:
        """Record in ``settings.json`` that the simulator answered some of this run's calls:
        every report on the run's data says SIMULATED from now on."""
        path = RunDir(self.run_dir).settings
        if not path.exists():
            return
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(recorded, dict) and recorded.get("simulated") is not True:
            _write_settings(path, {**recorded, "simulated": True})

    # ------------------------------------------------------------------ internals

    def _fileno(self) -> int:
        return int(self._require_open().fileno())

    def _require_open(self) -> Any:
        if self._file is None:
            raise RuntimeError("the journal is not open: use `with`/`open()` first")
        return self._file

    def _load(self) -> None:
        file = self._require_open()
        file.seek(0)
        offset = 0
        good_end = 0
        for lineno, raw in enumerate(file, start=1):
            length = len(raw)
            if not raw.endswith(b"\n"):
                break  # a torn last line: the process died while writing it
            try:
                entry = json.loads(raw)
                key = entry["key"]
            except (ValueError, KeyError, TypeError) as e:
                raise DatasetError(
                    "journal entry is not valid JSON with a key; the file was edited or "
                    "corrupted (only a torn last line is repaired automatically)",
                    path=str(self.path),
                    line=lineno,
                ) from e
            self._index[str(key)] = (offset, length - 1)
            offset += length
            good_end = offset
        if good_end != file.tell() or good_end != os.fstat(file.fileno()).st_size:
            file.truncate(good_end)
        file.seek(0, os.SEEK_END)
        self._end = good_end

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Raise as :meth:`open` would if ``settings`` differ from the run's recorded ones,
        writing nothing (a run not started yet passes): a resume that will be refused is
        refused before anything is asked of a service."""
        self._compare_settings(dict(settings))

    def _check_settings(self, settings: dict[str, Any]) -> None:
        recorded, canonical = self._compare_settings(settings)
        path = RunDir(self.run_dir).settings
        if recorded is None:
            _write_settings(path, canonical)
        elif canonical.get("simulated") is True and recorded.get("simulated") is not True:
            _write_settings(path, {**recorded, "simulated": True})

    def _compare_settings(
        self, settings: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The recorded settings (``None`` for a new run) and ``settings`` as they would be
        recorded; raises when they differ."""
        path = RunDir(self.run_dir).settings
        canonical: dict[str, Any] = json.loads(json.dumps(settings, sort_keys=True, default=str))
        if not path.exists():
            return None, canonical
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            recorded = None
        if not isinstance(recorded, dict):
            raise InputError(
                f"{path} is empty or not a JSON object, so this run's settings are unknown; "
                "restore it (it is written when a run starts), or use a new run directory"
            )
        differences = {
            name: (recorded.get(name), canonical.get(name))
            for name in sorted((set(recorded) | set(canonical)) - _FACTS)
            if recorded.get(name) != canonical.get(name)
        }
        if differences:
            lines = "\n".join(
                f"  {name}: run has {_show(old)}, now given {_show(new)}"
                for name, (old, new) in differences.items()
            )
            why = ""
            if "endpoint" in differences:
                why = (
                    " Responses are journaled per endpoint, and a run never mixes two (answers "
                    "of the simulator or another server must not pass for the teacher's)."
                )
                if "endpoint" not in recorded:
                    why += " This run was made by an earlier raftkit that did not record it."
            raise ResumeMismatchError(
                f"{self.run_dir} was started with other settings; resuming would mix two "
                f"runs' data.{why} Start a new run in another directory (raftkit generate "
                f"--out NEW_DIR), or resume with the original settings:\n{lines}",
                differences,
            )
        return recorded, canonical


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return repr(value)


def _write_settings(path: Path, settings: Mapping[str, Any]) -> None:
    tmp = RunDir.temporary(path)
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)

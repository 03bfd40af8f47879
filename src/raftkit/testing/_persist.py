"""The state directory: a simulator whose files, jobs, batches, deployments and clock outlive it.

Layout of ``SimulatorConfig.state_dir``:

- ``state.json``: one snapshot of everything (``{"format": 1, "sections": {...}}``), written
  atomically (temporary file, then rename) after a request that changed something;
- ``files/<file id>``: the bytes of each stored file, written once when the file is stored;
- ``simulator.pid`` and ``server.json`` (pid, host, port, base URL, start time): written by
  the serving simulator and removed when it stops, so ``raftkit simulator status`` and the CLI
  find a simulator running in the background;
- ``simulator.log``: what a background simulator printed.

Only what cannot be recomputed is stored: a job's request (its history is replayed from the
clock, so a job in progress when the simulator stopped continues by the clock after a restart),
a batch's answers, a deployment's request and the clock's offset from real time. Uploads in
progress, the request log, rate-limit buckets and the prompt cache are not kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "PID_FILE",
    "SERVER_FILE",
    "STATE_FILE",
    "StateDirectory",
    "process_alive",
]

FORMAT = 1
STATE_FILE = "state.json"
PID_FILE = "simulator.pid"
SERVER_FILE = "server.json"
LOG_FILE = "simulator.log"
_FILES_DIR = "files"

# directories held by a simulator of this process (a pid file cannot tell two apart)
_held: set[Path] = set()
_held_lock = threading.Lock()


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (and is not a zombie we could reap)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


class StateDirectory:
    """One simulator's state directory (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser().resolve()
        self._files = self.path / _FILES_DIR
        self._held = False

    # ---------------------------------------------------------------- ownership

    def acquire(self) -> None:
        """Claim the directory for this simulator, or raise if another one serves from it."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._files.mkdir(exist_ok=True)
        with _held_lock:
            if self.path in _held:
                raise RuntimeError(f"another simulator of this process serves from {self.path}")
            pid = self.read_pid()
            if pid is not None and pid != os.getpid() and process_alive(pid):
                raise RuntimeError(
                    f"a simulator (pid {pid}) already serves from {self.path}; "
                    "stop it first (raftkit simulator stop)"
                )
            _held.add(self.path)
            self._held = True
        _write_text(self.path / PID_FILE, f"{os.getpid()}\n")

    def announce(self, info: dict[str, Any]) -> None:
        """Write ``server.json``: where the running simulator listens."""
        _write_text(self.path / SERVER_FILE, json.dumps(info, indent=2) + "\n")

    def release(self) -> None:
        if not self._held:
            return
        for name in (SERVER_FILE, PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                if name == PID_FILE and self.read_pid() not in (None, os.getpid()):
                    continue
                (self.path / name).unlink()
        with _held_lock:
            _held.discard(self.path)
        self._held = False

    def read_pid(self) -> int | None:
        try:
            return int((self.path / PID_FILE).read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None

    # ---------------------------------------------------------------- the snapshot

    def load(self) -> dict[str, Any] | None:
        """The saved sections, or ``None`` for a new directory."""
        try:
            raw = (self.path / STATE_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            snapshot = json.loads(raw)
        except ValueError as e:
            raise RuntimeError(f"{self.path / STATE_FILE} is not JSON ({e}); move it away") from e
        if not isinstance(snapshot, dict) or snapshot.get("format") != FORMAT:
            found = snapshot.get("format") if isinstance(snapshot, dict) else None
            raise RuntimeError(
                f"{self.path / STATE_FILE} has format {found!r}, this simulator reads "
                f"format {FORMAT}; use another --state-dir"
            )
        sections = snapshot.get("sections")
        return sections if isinstance(sections, dict) else {}

    def save(self, sections: dict[str, Any]) -> None:
        _write_text(
            self.path / STATE_FILE,
            json.dumps({"format": FORMAT, "sections": sections}, ensure_ascii=False),
        )

    # ---------------------------------------------------------------- file contents

    def write_blob(self, file_id: str, content: bytes) -> None:
        target = self._files / _safe(file_id)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_bytes(content)
        temporary.replace(target)

    def read_blob(self, file_id: str) -> bytes | None:
        try:
            return (self._files / _safe(file_id)).read_bytes()
        except FileNotFoundError:
            return None

    def delete_blob(self, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._files / _safe(file_id)).unlink()


def _safe(file_id: str) -> str:
    if not file_id or "/" in file_id or "\\" in file_id or file_id.startswith("."):
        raise ValueError(f"not a file id: {file_id!r}")
    return file_id


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


Dump = Callable[[], Any]
Load = Callable[[Any], None]

"""The simulator as a background service: start it, find it, stop it.

``raftkit simulator start`` runs ``python -m raftkit.testing --state-dir DIR`` in a process of
its own, detached from the terminal, with its state (files, jobs, batches, deployments, the
clock) in ``DIR``; the CLI's client selection then talks to it when no credentials are set, so
``raftkit finetune --wait`` followed by ``raftkit jobs list`` shows the job. The state
directory is ``$RAFTKIT_SIMULATOR_DIR``, else ``$XDG_STATE_HOME/raftkit/simulator``, else
``~/.local/state/raftkit/simulator``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from raftkit.testing._persist import (
    LOG_FILE,
    PID_FILE,
    SERVER_FILE,
    process_alive,
)
from raftkit.testing._state import DEFAULT_API_KEY

__all__ = [
    "BackgroundSimulator",
    "default_state_dir",
    "find_running",
    "start_background",
    "stop_background",
]

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_LOG_TAIL = 2000


@dataclass(frozen=True)
class BackgroundSimulator:
    """A simulator serving in another process."""

    pid: int
    base_url: str
    """``http://127.0.0.1:PORT/v1`` (for OpenAI clients)."""
    azure_endpoint: str
    port: int
    state_dir: Path
    dialect: str
    started: float
    """Unix time (real) when it started."""
    api_key: str = DEFAULT_API_KEY


def default_state_dir() -> Path:
    """Where the background simulator keeps its state (see the module docstring)."""
    configured = os.environ.get("RAFTKIT_SIMULATOR_DIR")
    if configured:
        return Path(configured).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME")
    base = Path(state_home).expanduser() if state_home else Path.home() / ".local" / "state"
    return base / "raftkit" / "simulator"


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def find_running(state_dir: Path | None = None) -> BackgroundSimulator | None:
    """The simulator serving from ``state_dir`` (default: :func:`default_state_dir`), if one
    is running and answering; ``None`` otherwise (stale files are ignored)."""
    directory = Path(state_dir) if state_dir is not None else default_state_dir()
    try:
        info = json.loads((directory / SERVER_FILE).read_text(encoding="utf-8"))
        pid = int(info["pid"])
        host = str(info["host"])
        port = int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not process_alive(pid) or not _listening(host, port):
        return None
    return BackgroundSimulator(
        pid=pid,
        base_url=str(info.get("base_url") or f"http://{host}:{port}/v1"),
        azure_endpoint=str(info.get("azure_endpoint") or f"http://{host}:{port}"),
        port=port,
        state_dir=directory.resolve(),
        dialect=str(info.get("dialect") or "openai"),
        started=float(info.get("started") or 0.0),
    )


def start_background(
    state_dir: Path | None = None,
    *,
    port: int = 0,
    extra_args: tuple[str, ...] = (),
    timeout: float = _START_TIMEOUT,
) -> BackgroundSimulator:
    """Start a simulator in the background (or return the one already serving from the
    directory). ``extra_args`` go to ``python -m raftkit.testing`` (e.g. ``--dialect vllm``)."""
    directory = Path(state_dir) if state_dir is not None else default_state_dir()
    running = find_running(directory)
    if running is not None:
        return running
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (directory / SERVER_FILE).unlink()
    command = [
        sys.executable,
        "-m",
        "raftkit.testing",
        "--port",
        str(port),
        "--state-dir",
        str(directory),
        *extra_args,
    ]
    log_path = directory / LOG_FILE
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the terminal (and the command) that started it
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find_running(directory)
        if found is not None and found.pid == process.pid:
            return found
        if process.poll() is not None:
            break
        time.sleep(0.05)
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    raise RuntimeError(
        f"the background simulator did not start; the end of {log_path}:\n{_tail(log_path)}"
    )


def stop_background(state_dir: Path | None = None, *, timeout: float = _STOP_TIMEOUT) -> bool:
    """Stop the simulator serving from the directory; whether one was running."""
    directory = Path(state_dir) if state_dir is not None else default_state_dir()
    try:
        pid = int((directory / PID_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return False
    if not process_alive(pid):
        _forget(directory)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            _forget(directory)
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    _forget(directory)
    return True


def _forget(directory: Path) -> None:
    for name in (SERVER_FILE, PID_FILE):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-_LOG_TAIL:]
    except OSError:
        return "(no log)"

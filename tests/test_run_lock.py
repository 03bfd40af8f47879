"""One writer per run directory: an OS-level lock, tried with real processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from data_files import FOILBOARD
from raftkit.errors import RunLockedError, UsageError
from raftkit.run_dir import RunDir
from raftkit.testing import Simulator, SimulatorConfig

HOLDER = textwrap.dedent(
    """
    import sys, time
    from raftkit.run_dir import RunDir
    with RunDir(sys.argv[1]).lock("holder test"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def _hold(run: Path) -> subprocess.Popen[str]:
    """A process that holds the run's lock until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_process_is_refused_at_once_and_sigkill_frees_the_run(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    holder = _hold(run.root)
    try:
        started = time.monotonic()
        with pytest.raises(RunLockedError) as refused, run.lock():
            pass
        assert time.monotonic() - started < 1.0, "refused at once, not after a wait"
        assert refused.value.pid == holder.pid
        assert str(holder.pid) in str(refused.value)
        assert str(run.root) in str(refused.value)
        assert "holder test" in str(refused.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the lock with the process: no stale lock to clean up
    with run.lock("after the kill"):
        assert run.lock_file.exists()


def test_the_lock_is_shared_within_one_process_and_released_after(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with run.lock("outer"), RunDir(tmp_path / "run").lock("inner"):
        assert run.root.is_dir()
    # released: another process may take it now
    holder = _hold(run.root)
    holder.send_signal(signal.SIGKILL)
    holder.wait()


def test_a_run_directory_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"), RunDir(tmp_path / "file").lock():
        pass


def _generate(docs: Path, out: Path, base_url: str) -> list[str]:
    return [
        sys.executable, "-m", "raftkit.cli", "generate", str(docs), "--out", str(out),
        "--base-url", base_url, "--questions", "3", "--chunk-size", "128", "--quiet",
    ]  # fmt: skip


@pytest.mark.slow
def test_two_generate_processes_on_one_run_one_is_refused(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(FOILBOARD, docs)
    out = tmp_path / "run"
    # one call at a time, slowly: the first run lasts longer than the second takes to start
    with Simulator(SimulatorConfig(latency_base=0.3)) as sim:
        env = {**os.environ, "OPENAI_API_KEY": sim.api_key}
        first = subprocess.Popen(
            [*_generate(docs, out, sim.base_url), "--concurrency", "1"], env=env
        )
        deadline = time.monotonic() + 60
        while not RunDir(out).journal.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        second = subprocess.run(
            _generate(docs, out, sim.base_url), env=env, capture_output=True, text=True
        )
        assert first.poll() is None, "the first run was still going when the second gave up"
        assert first.wait(timeout=180) == 0
    assert second.returncode == 2
    assert f"process {first.pid}" in second.stderr
    assert str(out) in second.stderr
    lines = RunDir(out).journal.read_bytes().splitlines()
    keys = [line.split(b'"key":"')[1][:64] for line in lines]
    assert len(keys) == len(set(keys)), "no response journaled twice"


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "{run}", "--models", "a", "--provider", "simulator"],
        ["export", "{run}"],
        ["finetune", "{run}", "--provider", "simulator"],
        ["retrieval", "pairs", "{run}"],
    ],
)
def test_the_other_commands_writing_into_a_run_are_refused_too(
    tmp_path: Path, command: list[str]
) -> None:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.examples.write_text('{"id": "x"}\n', encoding="utf-8")  # past the "no examples" checks
    holder = _hold(run.root)
    try:
        argv = [part.format(run=run.root) for part in command]
        refused = subprocess.run(
            [sys.executable, "-m", "raftkit.cli", *argv], capture_output=True, text=True
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert refused.returncode == 2, refused.stderr
    assert f"process {holder.pid}" in refused.stderr

"""The live status line: its text, a terminal (through a pseudo-terminal), captured output."""

from __future__ import annotations

import functools
import io
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

import raftkit.cli.generate as generate_cli
from data_files import FOILBOARD
from raftkit.cli import main
from raftkit.cli._progress import StatusLine, format_duration
from raftkit.dataset import write_examples
from raftkit.llm import PollPolicy, RequestActivity
from raftkit.llm.usage import UsageLedger
from raftkit.pipeline import RaftPipeline
from raftkit.testing import Fault, Simulator
from raftkit.types import Usage

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = PollPolicy(initial=0.01, maximum=0.05, timeout=60.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(FOILBOARD, folder)
    (folder / "笔记.txt").write_text(
        "冲浪板通常由聚氨酯泡沫制成。水翼板在水面以上滑行，阻力更小。", encoding="utf-8"
    )
    return folder


# ---------------------------------------------------------------- what the line says


def test_the_line_says_progress_time_eta_money_and_what_requests_wait_on() -> None:
    clock = Clock()
    ledger = UsageLedger(max_cost_usd=5.0)
    ledger.record("gpt-4o", Usage(prompt_tokens=100_000, completion_tokens=17_000))
    spent = f"${ledger.spent_usd:,.2f} of $5.00"
    assert spent != "$0.00 of $5.00"
    activity: list[RequestActivity | None] = [None]
    status = StatusLine(
        "generate",
        stream=io.StringIO(),
        ledger=ledger,
        activity=lambda: activity[0],
        live=False,
        clock=clock,
    )
    status.update(done=10, total=40, unit="chunks", detail="examples 30")
    clock.now += 60
    status.update(done=20)
    line = status.render()
    assert line.startswith(f"generate  20/40 chunks (50%)  1m00s  ETA 2m00s  {spent}")
    assert line.endswith("| examples 30")

    activity[0] = RequestActivity(in_flight=4, oldest_in_flight_s=3.0, waiting=12, waiting_on="tpm")
    status.draw()
    assert "12 waiting on tokens/min" in status.render()
    assert "waiting on 4 requests" not in status.render()  # 3 s is not old

    activity[0] = RequestActivity(in_flight=3, oldest_in_flight_s=45.0)
    status.draw()
    assert "waiting on 3 requests for 45s" in status.render()

    activity[0] = RequestActivity(waiting=7, waiting_on="paused", paused_for_s=12.0)
    status.draw()
    assert "paused after a 429, 12s left" in status.render()


def test_a_client_that_does_not_know_its_activity_is_fine() -> None:
    status = StatusLine("eval", stream=io.StringIO(), activity=lambda: None, live=False)
    status.update(done=1, total=3, unit="answers")
    status.draw()
    assert status.render().startswith("eval  1/3 answers (33%)")


def test_a_new_phase_restarts_the_pace() -> None:
    clock = Clock()
    status = StatusLine("generate", stream=io.StringIO(), live=False, clock=clock)
    status.update(done=5, total=10, unit="chunks")
    clock.now += 10
    status.update(done=10)
    status.update(phase="batch round 1", done=0, total=100, unit="requests")
    assert "ETA" not in status.render()  # no pace known yet for the batch
    clock.now += 5
    status.update(done=50)
    assert "ETA 5s" in status.render()


def test_durations() -> None:
    assert [format_duration(s) for s in (0, 42.9, 185, 7620, -1)] == [
        "0s",
        "42s",
        "3m05s",
        "2h07m",
        "?",
    ]


async def test_plain_output_is_a_line_every_few_seconds(anyio_backend: str) -> None:
    out = io.StringIO()
    status = StatusLine("eval", stream=out, live=False, every=0.05)
    async with status.shown():
        for done in range(1, 6):
            status.update(done=done, total=5, unit="answers")
            await anyio.sleep(0.04)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) >= 3
    assert lines[-1].startswith("eval  5/5 answers (100%)")


async def test_quiet_prints_nothing(anyio_backend: str) -> None:
    out = io.StringIO()
    status = StatusLine("eval", stream=out, quiet=True, every=0.01)
    async with status.shown():
        status.update(done=1, total=1)
        await anyio.sleep(0.05)
    assert out.getvalue() == ""


async def test_the_body_s_error_comes_out_as_itself(anyio_backend: str) -> None:
    status = StatusLine("x", stream=io.StringIO(), live=False, every=0.01)
    cause = OSError("inner")
    with pytest.raises(ValueError, match="boom") as caught:
        async with status.shown():
            raise ValueError("boom") from cause
    assert caught.value.__cause__ is cause


# ---------------------------------------------------------------- through the commands


def test_generate_in_a_log_ends_with_one_plain_line(
    docs: Path, tmp_path: Path, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    generate = ["generate", str(docs), "--out", str(out), "--base-url", sim.base_url]
    assert main(generate) == 0
    err = capsys.readouterr().err
    status = [line for line in err.splitlines() if line.startswith("generate  ")]
    assert len(status) == 1  # a short run in a log: just the last state
    assert re.match(r"generate  (\d+)/\1 chunks \(100%\)  \d+s", status[0])
    assert "examples" in status[0]
    assert "\r" not in err
    # the same run again (the same endpoint: its journal answers), quietly
    assert main([*generate, "--quiet"]) == 0
    assert "generate  " not in capsys.readouterr().err


def test_eval_is_not_silent_any_more(
    docs: Path,
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    base = ["--base-url", sim.base_url]
    assert main(["generate", str(docs), "--out", str(out), "--quiet", *base]) == 0
    capsys.readouterr()
    monkeypatch.setenv("RAFTKIT_STATUS_EVERY", "0.01")
    sim.add_random_fault(Fault.latency(0.05), 1.0)
    argv = ["eval", str(out), "--models", "gpt-4o-mini,gpt-4o", "--split", "train", "--limit", "4"]
    assert main([*argv, *base]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("eval  ")]
    assert len(lines) >= 2
    assert lines[-1].startswith("eval  8/8 answers (100%)")


def test_generate_batch_shows_the_batch_id_and_state(
    docs: Path,
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(
        generate_cli, "RaftPipeline", functools.partial(RaftPipeline, batch_poll=FAST)
    )
    monkeypatch.setenv("RAFTKIT_STATUS_EVERY", "0.01")
    out = tmp_path / "run"
    argv = ["generate", str(docs), "--out", str(out), "--batch", "--base-url", sim.base_url]
    assert main(argv) == 0
    err = capsys.readouterr().err
    batch_lines = [x for x in err.splitlines() if x.startswith("generate batch round 1")]
    assert batch_lines, err
    assert re.search(
        r"requests .*\| batch batch_\w+ (validating|in_progress|finalizing|completed)",
        batch_lines[-1],
    )


def test_finetune_wait_shows_the_job_and_its_steps(
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from finetune_support import example

    run = tmp_path / "run"
    run.mkdir()
    write_examples(run / "examples.jsonl", [example(n) for n in range(150)])
    monkeypatch.setenv("RAFTKIT_STATUS_EVERY", "0.01")
    argv = ["finetune", str(run), "--model", "gpt-4.1-nano", "--wait", "--epochs", "1"]
    assert main([*argv, "--poll-interval", "0.02", "--base-url", sim.base_url]) == 0
    captured = capsys.readouterr()
    lines = [x for x in captured.err.splitlines() if x.startswith("finetune ftjob-")]
    assert lines, captured.err
    assert any(re.search(r" running .*\d+/\d+ steps", x) for x in lines)
    assert re.search(r"succeeded → ft:gpt-4\.1-nano:", lines[-1])
    assert "Step 1/" in captured.out  # the events are printed as lines of their own


# ---------------------------------------------------------------- a real terminal


def _through_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``raftkit argv`` with stderr on a pseudo-terminal; its exit code and what it drew."""
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "raftkit", *argv],
        env={**env, "PYTHONPATH": f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}"},
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        elif child.poll() is not None:
            break
    os.close(master)
    return child.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_on_a_terminal_the_line_is_redrawn_in_place(docs: Path, tmp_path: Path) -> None:
    with Simulator() as sim:
        sim.add_random_fault(Fault.latency(0.5), 1.0)  # a run long enough to be redrawn
        env = {**os.environ, "OPENAI_API_KEY": sim.api_key, "COLUMNS": "200"}
        argv = ["generate", str(docs), "--out", str(tmp_path / "run"), "--questions", "2"]
        code, drawn = _through_a_terminal([*argv, "--base-url", sim.base_url], env)
    assert code == 0, drawn
    frames = [f for f in drawn.split("\r\x1b[K") if f.startswith("generate")]
    assert len(frames) >= 2  # redrawn in place, not appended
    assert any(re.search(r"\d+/\d+ chunks", f) for f in frames)
    assert re.search(r"(\d+)/\1 chunks \(100%\)", frames[-1])

"""The command line against the simulator: generate, dry run, eval, and a killed eval resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_files import FOILBOARD
from raftkit.cli import main
from raftkit.testing import Simulator, SimulatorConfig


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(FOILBOARD, folder)
    (folder / "笔记.txt").write_text(
        "冲浪板通常由聚氨酯泡沫制成。水翼板在水面以上滑行，阻力更小。", encoding="utf-8"
    )
    return folder


def test_generate_with_no_credentials_uses_the_simulator_and_says_so(
    docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    code = main(["generate", str(docs), "--out", str(tmp_path / "run"), "--questions", "2"])
    captured = capsys.readouterr()
    assert code == 0
    assert "SIMULATOR" in captured.err
    assert "SIMULATED" in captured.out
    assert (tmp_path / "run" / "examples.jsonl").stat().st_size > 0


def test_dry_run_prints_an_estimate_and_pays_nothing(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", str(docs), "--out", str(tmp_path / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out
    assert "teacher calls" in out
    assert not (tmp_path / "run").exists()


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", str(tmp_path), "--models", "a", "--provider", "simulator"])
    assert code == 2
    assert "examples.jsonl" in capsys.readouterr().err


def test_eval_writes_reports(
    docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    with Simulator() as sim:
        monkeypatch.setenv("OPENAI_API_KEY", sim.api_key)
        base = ["--base-url", sim.base_url]
        assert main(["generate", str(docs), "--out", str(run), "--quiet", *base]) == 0
        code = main(
            ["eval", str(run), "--models", "gpt-4o-mini,gpt-4o", "--split", "validation", *base]
        )
    assert code == 0
    report = json.loads((run / "eval" / "report.json").read_text(encoding="utf-8"))
    assert report
    html = (run / "eval" / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html
    assert "no detectable difference" in (run / "eval" / "report.md").read_text(encoding="utf-8")
    assert "replayed" in capsys.readouterr().err


def _journal_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_a_killed_evaluation_resumes_without_paying_again(docs: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # models "a" and "b" are not in the simulator's catalog
    with Simulator(SimulatorConfig(latency_base=0.05, accept_unknown_models=True)) as sim:
        env = {**os.environ, "OPENAI_API_KEY": sim.api_key}
        base = ["--base-url", sim.base_url]
        generate = [sys.executable, "-m", "raftkit.cli", "generate", str(docs), "--out", str(run)]
        subprocess.run([*generate, "--quiet", "--questions", "10", *base], env=env, check=True)
        evaluate = [
            sys.executable, "-m", "raftkit.cli", "eval", str(run), "--models", "a,b",
            "--split", "train", "--concurrency", "2", *base,
        ]  # fmt: skip
        sim.clear_requests()
        journal = run / "eval" / "journal.jsonl"

        process = subprocess.Popen(evaluate, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _journal_lines(journal) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        at_kill = _journal_lines(journal)
        subprocess.run(evaluate, env=env, check=True, stdout=subprocess.DEVNULL)
        calls = len([r for r in sim.requests if r.path.endswith("/chat/completions")])

    answers = _journal_lines(journal)
    assert 0 < at_kill < answers
    # Only calls in flight at the kill (at most the concurrency) were paid twice.
    assert answers <= calls <= answers + 2

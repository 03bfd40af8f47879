"""``raftkit export | validate | finetune | jobs`` in-process against a running simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import raftkit.cli
from finetune_support import example
from raftkit.dataset import write_examples
from raftkit.testing import FineTuningSettings, Simulator

FAIL_MARKER = FineTuningSettings().fail_jobs_with


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch, raftkit_simulator: Simulator) -> Simulator:
    monkeypatch.setenv("OPENAI_API_KEY", raftkit_simulator.api_key)
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return raftkit_simulator


def run_dir(tmp_path: Path, *, extra: str = "") -> Path:
    directory = tmp_path / "run"
    directory.mkdir()
    write_examples(directory / "examples.jsonl", [example(n, extra=extra) for n in range(150)])
    return directory


def sim_args(sim: Simulator) -> list[str]:
    return ["--base-url", sim.base_url]


def test_export_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = run_dir(tmp_path)
    assert raftkit.cli.main(["export", str(directory), "--formats", "chat", "completion"]) == 0
    train = directory / "dataset" / "chat" / "train.jsonl"
    assert train.is_file()
    assert (directory / "dataset" / "completion" / "train.jsonl").is_file()
    assert "chat train:" in capsys.readouterr().out
    assert raftkit.cli.main(["validate", str(train)]) == 0
    assert "OK" in capsys.readouterr().out
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"messages": []}\nnot json\n', encoding="utf-8")
    assert raftkit.cli.main(["validate", str(broken)]) == 1
    assert "REJECTED" in capsys.readouterr().out
    assert raftkit.cli.main(["validate", str(tmp_path / "missing.jsonl")]) == 2


def test_finetune_waits_prints_events_and_metrics(
    tmp_path: Path, openai_env: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = openai_env
    directory = run_dir(tmp_path)
    argv = ["finetune", str(directory), "--model", "gpt-4o-mini", "--epochs", "2"]
    code = raftkit.cli.main(
        [*argv, "--suffix", "raft", "--wait", "--poll-interval", "0.02", *sim_args(sim)]
    )
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    state = json.loads((directory / "finetune.json").read_text())
    assert state["provider"] == "openai"
    assert state["status"] == "succeeded"
    assert f"started fine-tuning job {state['job_id']}" in out
    assert "Fine-tuning job started" in out
    assert "The job has successfully completed" in out
    assert "fine-tuned model: ft:gpt-4o-mini:" in out
    assert "metrics:" in out
    assert "train loss" in out

    # run again: the recorded job is resumed, nothing is uploaded or started
    code = raftkit.cli.main([*argv, "--wait", "--poll-interval", "0.02", *sim_args(sim)])
    again = capsys.readouterr().out
    assert code == 0
    assert f"resuming job {state['job_id']}" in again
    jobs = [r for r in sim.requests if r.method == "POST" and r.path == "/v1/fine_tuning/jobs"]
    assert len(jobs) == 1
    uploads = [r for r in sim.requests if r.method == "POST" and r.path == "/v1/files"]
    assert len(uploads) == 2  # train and validation, once each

    assert raftkit.cli.main(["jobs", "list", *sim_args(sim)]) == 0
    assert state["job_id"] in capsys.readouterr().out
    assert raftkit.cli.main(["jobs", "show", state["job_id"], *sim_args(sim)]) == 0
    shown = capsys.readouterr().out
    assert "succeeded" in shown
    assert "n_epochs=2" in shown
    assert "metrics:" in shown
    # a finished job cannot be cancelled: the service's refusal is the exit status (3)
    assert raftkit.cli.main(["jobs", "cancel", state["job_id"], *sim_args(sim)]) == 3
    assert "already succeeded" in capsys.readouterr().err


def test_finetune_failure_reaches_the_user(
    tmp_path: Path, openai_env: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert FAIL_MARKER is not None
    directory = run_dir(tmp_path, extra=FAIL_MARKER)
    argv = ["finetune", str(directory), "--wait", "--poll-interval", "0.02", "--epochs", "1"]
    assert raftkit.cli.main([*argv, *sim_args(openai_env)]) == 1
    captured = capsys.readouterr()
    assert "failed" in captured.out
    assert "training_failed" in captured.err
    assert "failure marker" in captured.err


def test_finetune_without_wait_and_cancel(
    tmp_path: Path, openai_env: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    from raftkit.testing import configure_fine_tuning

    configure_fine_tuning(openai_env.state, FineTuningSettings(running_seconds=30.0))
    directory = run_dir(tmp_path)
    assert raftkit.cli.main(["finetune", str(directory), *sim_args(openai_env)]) == 0
    job_id = json.loads((directory / "finetune.json").read_text())["job_id"]
    assert f"raftkit jobs show {job_id}" in capsys.readouterr().out
    assert raftkit.cli.main(["jobs", "cancel", job_id, *sim_args(openai_env)]) == 0
    assert f"job {job_id}: cancelled" in capsys.readouterr().out
    assert raftkit.cli.main(["jobs", "show", *sim_args(openai_env)]) == 2


def test_finetune_on_azure_deploys_the_model(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    raftkit_simulator: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = raftkit_simulator
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", sim.azure_endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", sim.api_key)
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    monkeypatch.setenv("AZURE_MANAGEMENT_TOKEN", "arm-token")
    directory = run_dir(tmp_path)
    argv = ["finetune", str(directory), "--provider", "azure", "--epochs", "1", "--wait"]
    argv += ["--model", "gpt-4o-mini"]
    arm = ["--deployment", "raft-student", "--subscription", "sub-1", "--resource-group", "rg"]
    arm += ["--account", "acct", "--management-url", sim.management_endpoint]
    code = raftkit.cli.main([*argv, "--poll-interval", "0.02", *arm])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "deployed gpt-4o-mini.ft-" in captured.out
    assert "as raft-student (Succeeded)" in captured.out
    puts = [r for r in sim.requests if r.method == "PUT" and r.path.endswith("/raft-student")]
    assert len(puts) == 1
    assert puts[0].json["properties"]["model"]["name"].startswith("gpt-4o-mini.ft-")
    assert json.loads((directory / "finetune.json").read_text())["provider"] == "azure"

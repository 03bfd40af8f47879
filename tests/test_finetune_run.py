"""FineTuneRun: the resumable fine-tuning of a run directory, as a library."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from finetune_support import example
from raftkit.cli import main
from raftkit.dataset import write_examples
from raftkit.errors import UsageError
from raftkit.finetune import FineTuneJob, Hyperparameters, OpenAIFineTuneProvider
from raftkit.finetune_run import TAG_KEY, FineTuneRun
from raftkit.llm import OpenAIClient, PollPolicy
from raftkit.run_dir import RunDir
from raftkit.testing import Fault, Simulator

SRC = Path(__file__).resolve().parents[1] / "src"

FAST = PollPolicy(initial=0.01, maximum=0.05, timeout=30.0)


async def test_export_upload_start_wait_then_resume(
    anyio_backend: str, raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    write_examples(run.examples, [example(n) for n in range(150)])
    said: list[str] = []
    async with (
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
        OpenAIFineTuneProvider(client, poll=FAST) as provider,
    ):

        def finetuning() -> FineTuneRun:
            return FineTuneRun(
                run,
                provider,
                provider_name="openai",
                hyperparameters=Hyperparameters(n_epochs=1),
                say=said.append,
            )

        job = await finetuning().start_or_resume()
        assert run.dataset_file("chat", "train").is_file()  # exported on the way
        assert said[0] == f"exporting {run.examples} ..."
        assert f"started fine-tuning job {job.id} on gpt-4o-mini" in said
        state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
        assert (state["provider"], state["job_id"]) == ("openai", job.id)

        done = await finetuning().wait(job)
        assert done.status == "succeeded"
        assert json.loads(run.finetune_state.read_text(encoding="utf-8"))["status"] == "succeeded"

        # a second run resumes the recorded job: nothing is uploaded or started again
        again = await finetuning().start_or_resume()
        assert again.id == job.id
        assert said[-1] == f"resuming job {job.id} (succeeded) from {run.finetune_state}"
        # a job recorded for another service is not resumed through this one
        other = FineTuneRun(run, provider, provider_name="azure", say=said.append)
        assert await other.recorded_job() is None
        with pytest.raises(UsageError, match="deploying is for Azure"):
            await finetuning().deploy(done, management=None, account=None, name="x")  # type: ignore[arg-type]
    jobs = [r for r in sim.requests if r.method == "POST" and r.path == "/v1/fine_tuning/jobs"]
    assert len(jobs) == 1


async def test_a_run_without_examples_is_refused(
    anyio_backend: str, raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    async with (
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
        OpenAIFineTuneProvider(client, poll=FAST) as provider,
    ):
        with pytest.raises(UsageError, match="has neither"):
            await FineTuneRun(tmp_path, provider, provider_name="openai").start_or_resume()
        with pytest.raises(UsageError, match="is not a directory"):
            await FineTuneRun(
                tmp_path / "missing", provider, provider_name="openai"
            ).start_or_resume()


# ---------------------------------------------------------------- job creation is idempotent


def posted_jobs(sim: Simulator) -> int:
    return sum(
        1 for r in sim.requests if r.method == "POST" and r.path.endswith("fine_tuning/jobs")
    )


async def test_a_reply_lost_in_transit_makes_no_second_job(
    anyio_backend: str, raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    write_examples(run.examples, [example(n) for n in range(150)])
    said: list[str] = []
    # the server creates the job, then the connection breaks before the reply leaves
    sim.add_fault(Fault.lost_reply(path="/fine_tuning/jobs"))
    async with (
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
        OpenAIFineTuneProvider(client, poll=FAST) as provider,
    ):
        job = await FineTuneRun(run, provider, provider_name="openai", say=said.append).start()
        assert f"the reply was lost, but job {job.id} was created; resuming it" in said
        assert job.metadata[TAG_KEY].startswith("rk-")
        jobs = [j async for j in provider.list_jobs()]
    assert [j.id for j in jobs] == [job.id]
    assert posted_jobs(sim) == 1  # the lost POST was not sent again
    state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
    assert state["job_id"] == job.id
    assert "pending" not in state


def test_a_process_killed_waiting_for_the_reply_pays_for_one_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    write_examples(run.examples, [example(n) for n in range(150)])
    with Simulator() as sim:
        sim.add_fault(Fault.lost_reply(60.0, path="/fine_tuning/jobs"))
        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OPENAI_API_KEY": sim.api_key,
        }
        argv = ["finetune", str(run.root), "--epochs", "1", "--base-url", sim.base_url]
        child = subprocess.Popen(
            [sys.executable, "-m", "raftkit", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while posted_jobs(sim) == 0:  # the job exists; its reply is held
                assert child.poll() is None, "the child ended before creating the job"
                assert time.monotonic() < deadline, "the job was never created"
                time.sleep(0.05)
            child.kill()
        finally:
            child.wait(timeout=60)
        state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
        assert "job_id" not in state
        assert state["pending"]["tag"].startswith("rk-")

        monkeypatch.setenv("OPENAI_API_KEY", sim.api_key)
        assert main([*argv, "--wait", "--poll-interval", "0.02"]) == 0
        out = capsys.readouterr().out
        job_id = json.loads(run.finetune_state.read_text(encoding="utf-8"))["job_id"]
        assert f"found job {job_id}" in out
        assert "created by an interrupted start" in out
        assert posted_jobs(sim) == 1
        assert f"job {job_id}: succeeded" in out


def test_on_azure_the_suffix_carries_the_tag(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    raftkit_simulator: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = raftkit_simulator
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", sim.azure_endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", sim.api_key)
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    write_examples(run.examples, [example(n) for n in range(150)])
    sim.add_fault(Fault.lost_reply(path="/fine_tuning/jobs"))
    argv = ["finetune", str(run.root), "--provider", "azure", "--epochs", "1"]
    assert main([*argv, "--poll-interval", "0.02"]) == 0
    assert "the reply was lost, but job" in capsys.readouterr().out
    posted = [r for r in sim.requests if r.method == "POST" and "fine_tuning/jobs" in r.path]
    assert len(posted) == 1
    assert "metadata" not in posted[0].json  # Azure's job API has none
    assert posted[0].json["suffix"].startswith("raftkit-")
    state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
    assert posted[0].json["suffix"] == f"raftkit-{state['tag'][3:]}"


# ---------------------------------------------------------------- after the job


async def test_the_model_name_and_the_training_curve_are_saved(
    anyio_backend: str, raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    write_examples(run.examples, [example(n) for n in range(150)])
    recorded_when_seen: list[str | None] = []

    def on_job(job: FineTuneJob) -> None:
        if job.fine_tuned_model:
            state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
            recorded_when_seen.append(state.get("fine_tuned_model"))

    async with (
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
        OpenAIFineTuneProvider(client, poll=FAST) as provider,
    ):
        finetuning = FineTuneRun(
            run, provider, provider_name="openai", hyperparameters=Hyperparameters(n_epochs=2)
        )
        job = await finetuning.start_or_resume()
        done = await finetuning.wait(job, on_job=on_job)
    assert done.status == "succeeded"
    assert done.fine_tuned_model
    # recorded before the caller heard of it, i.e. on the poll that named it
    assert recorded_when_seen
    assert recorded_when_seen[0] == done.fine_tuned_model
    state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
    assert state["fine_tuned_model"] == done.fine_tuned_model
    assert state["training_curve"] == {
        "csv": str(run.training_curve_csv),
        "svg": str(run.training_curve_svg),
    }
    summary = finetuning.summary
    assert summary is not None
    assert summary.metrics is not None
    rows = list(csv.DictReader(io.StringIO(run.training_curve_csv.read_text(encoding="utf-8"))))
    assert len(rows) == len(summary.metrics.steps) > 1
    assert [int(r["step"]) for r in rows] == sorted(int(r["step"]) for r in rows)
    assert all(float(r["train_loss"]) > 0 for r in rows)
    svg = ElementTree.fromstring(run.training_curve_svg.read_text(encoding="utf-8"))
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert lines, "no curve drawn"
    points = lines[0].attrib["points"].split()
    assert len(points) == len(rows)
    report = run.finetune_report_md.read_text(encoding="utf-8")
    assert done.fine_tuned_model in report
    assert "](training-curve.svg)" in report
    assert "](training-curve.csv)" in report

"""``raftkit finetune RUN --provider local``: the fine-tuning workflow (``FineTuneRun``) with the
local LoRA provider on the real SmolLM2-135M — what it records and writes, a rerun, SIGKILL and
a rerun that resumes, ``raftkit jobs --run`` — and its one-line errors.

The trained run is the session's shared one (``trained`` in conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from raftkit.cli import main
from raftkit.finetune import FineTuneJob, JobEvent, LocalLoRAProvider, parse_result_csv
from raftkit.run_dir import RunDir
from raftkit.students.jobdir import JobDir
from students_support import TINY_FLAGS, Trained, requires_student, smollm_gguf


def _gguf() -> str:
    gguf = smollm_gguf()
    assert gguf is not None
    return str(gguf.resolve())


def _argv(run: Path, *flags: str) -> list[str]:
    return ["finetune", str(run), "--provider", "local", "--model", _gguf(), *flags]


@requires_student()
def test_the_command_trains_records_the_adapter_and_writes_the_curve(trained: Trained) -> None:
    run = RunDir(trained.run)
    state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
    assert (state["provider"], state["model"], state["status"]) == ("local", _gguf(), "succeeded")
    adapter = Path(state["fine_tuned_model"])
    assert adapter == Path(str(trained.job.fine_tuned_model))
    assert adapter.is_relative_to(run.local_training / "jobs")
    assert (adapter / "adapter_model.safetensors").is_file()
    # one pair of names: the run's curve is the adapter's, byte for byte
    assert run.training_curve_csv.read_bytes() == (adapter / "training-curve.csv").read_bytes()
    rows = parse_result_csv(run.training_curve_csv.read_text(encoding="utf-8")).steps
    assert [r.step for r in rows] == [1, 2, 3]
    assert all("tokens_per_second" in r.extra and "learning_rate" in r.extra for r in rows)
    assert ET.fromstring(run.training_curve_svg.read_text(encoding="utf-8")).tag.endswith("svg")
    summary = run.finetune_report_md.read_text(encoding="utf-8")
    assert str(adapter) in summary
    assert "training-curve.svg" in summary
    out = trained.stdout
    assert "template audit of" in out  # checked with the student's template before training
    assert "step 3/3: train loss" in out  # the trainer's events, streamed
    assert f"fine-tuned model: {adapter}" in out
    assert f"raftkit serve --run {trained.run}" in out
    assert "--model tuned=@finetuned@http://127.0.0.1:8000/v1" in out
    # stderr is no terminal here: the status line is written as a plain line at the end
    assert re.search(r"3/3 steps.*train loss \d+\.\d{3}", trained.stderr), trained.stderr


@requires_student()
def test_running_it_again_finds_the_finished_job(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = sorted(p.name for p in (trained.out / "jobs").iterdir())
    assert main([*_argv(trained.run, *TINY_FLAGS), "--wait", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"resuming job {trained.job.id} (succeeded)" in out
    assert sorted(p.name for p in (trained.out / "jobs").iterdir()) == jobs


@requires_student()
def test_jobs_lists_and_shows_the_local_jobs_of_a_run(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "list", "--run", str(trained.run)]) == 0
    listed = capsys.readouterr().out
    assert re.search(rf"{trained.job.id}\s+succeeded\s+{re.escape(_gguf())}", listed)
    assert main(["jobs", "show", trained.job.id, "--run", str(trained.run)]) == 0
    shown = capsys.readouterr().out
    assert "step: 3 of 3 (attempt 1)" in shown
    assert f"job folder: {trained.job.raw['job_dir']}" in shown
    assert "training succeeded" in shown
    assert "metrics: 3 steps, train loss" in shown
    assert main(["jobs", "show", trained.job.id]) == 2
    assert "is a local job: add --run RUN_DIR" in capsys.readouterr().err


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@requires_student()
@pytest.mark.slow
def test_sigkill_then_the_same_command_resumes_from_the_checkpoint(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    shutil.copyfile(RunDir(trained.run).examples, run.examples)
    shutil.copytree(RunDir(trained.run).dataset, run.dataset)
    flags = [f for f in TINY_FLAGS if not f.startswith(("--max-steps", "--batch", "--save"))]
    argv = _argv(
        run.root,
        *flags,
        "--max-steps=4",
        "--batch-size=1",
        "--save-every=1",
        "--seed=1",
        "--cache-dir",
        str(trained.out / "bases"),  # the shared run's dequantized base: a quick load
        "--wait",
        "--quiet",
    )
    command = subprocess.Popen(
        [sys.executable, "-m", "raftkit.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    jobs = run.local_training / "jobs"

    def checkpointed() -> bool:
        assert command.poll() is None, "the command ended before a checkpoint"
        return any(jobs.glob("*/checkpoints/step-*/state.json"))

    _until(checkpointed, 600, "a checkpoint")
    jobdir = JobDir(next(jobs.iterdir()))
    pid = jobdir.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the trainer and the command, as a crash would
    command.kill()
    command.wait()
    _until(lambda: not jobdir.trainer_alive(), 30, "the killed trainer to let go")
    saved = next(jobdir.checkpoints())[0]
    killed = json.loads(run.finetune_state.read_text(encoding="utf-8"))
    assert killed["job_id"] == jobdir.root.name

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"create the same job again to resume from the checkpoint at step {saved}" in out
    assert f"resumed from the checkpoint at step {saved}" in out

    async def read() -> tuple[FineTuneJob, list[JobEvent]]:
        async with LocalLoRAProvider(run.local_training) as provider:
            job = await provider.get_job(jobdir.root.name)
            return job, [e async for e in provider.events(job.id)][::-1]

    done, events = anyio.run(read)
    assert done.status == "succeeded", done.error
    assert done.raw["attempt"] == 2
    resumed = next(i for i, e in enumerate(events) if e.type == "resume")
    assert events[resumed].data["step"] == saved
    after = [e.data["step"] for e in events[resumed:] if e.type == "metrics"]
    assert after == list(range(saved + 1, 5))
    curve = parse_result_csv(run.training_curve_csv.read_text(encoding="utf-8"))
    assert [s.step for s in curve.steps] == [1, 2, 3, 4]
    state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
    assert (state["status"], state["fine_tuned_model"]) == ("succeeded", done.fine_tuned_model)


# ---------------------------------------------------------------------------- one-line errors
# (nothing here loads a model: each is refused before the BASE is looked at)


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_run_without_a_train_split_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    err = _one_line_error(_argv(run.root), capsys)
    assert f"has neither {run.dataset_file('chat', 'train')} nor {run.examples}" in err
    run.dataset_file("chat", "train").parent.mkdir(parents=True)
    run.dataset_file("chat", "train").write_text("\n", encoding="utf-8")
    err = _one_line_error(_argv(run.root), capsys)
    assert "has no rows: the run has no train split to fine-tune on" in err
    assert not run.finetune_state.exists()
    assert not run.local_training.exists()


def test_local_training_needs_a_base_and_valid_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    err = _one_line_error(["finetune", str(run), "--provider", "local"], capsys)
    assert "--provider local needs --model BASE" in err
    err = _one_line_error([*_argv(run), "--lora-r", "0"], capsys)
    assert "--lora-r: Input should be greater than or equal to 1" in err
    err = _one_line_error([*_argv(run), "--warmup-ratio", "1.5"], capsys)
    assert "--warmup-ratio" in err
    # local DPO needs the run's preference pairs, and names the command that writes them
    err = _one_line_error([*_argv(run), "--method", "dpo"], capsys)
    assert "dpo/train.jsonl" in err
    assert "--formats dpo" in err
    # the inventory of fine-tuned models is a hosted service's
    err = _one_line_error(["jobs", "inventory", "--run", str(run)], capsys)
    assert "lists a service's fine-tuned models: drop --run" in err
    assert not (run / "finetune").exists()

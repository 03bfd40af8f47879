"""``raftkit finetune RUN --provider local --method dpo``: a simulator-generated run's preference
pairs (``raftkit export --formats dpo``) trained into a LoRA adapter of the real SmolLM2-135M by
the command line — from the run's supervised adapter (``--from-adapter @finetuned``) and from a
fresh one — and the one-line errors of a run without pairs. Train and validation files are cut
to their shortest pairs so a CPU step stays short."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

import raftkit.cli
from raftkit.finetune import parse_result_csv
from raftkit.llm import OpenAIClient
from raftkit.pipeline import RaftConfig, RaftPipeline
from raftkit.run_dir import RunDir
from raftkit.students.jobdir import JobDir
from raftkit.testing import Simulator
from students_support import Trained, requires_student, shortest_rows, smollm_gguf

pytestmark = [requires_student()]

NOTES = (
    "Bats are the only mammals capable of true flight. Their wings are modified forelimbs.\n\n"
    "Most small bats hunt insects at night. They find their prey by echolocation.\n\n"
    "Vampire bats feed on blood. They share meals with roost mates that failed to feed.\n\n"
    "Foilboards rise above the water on a hydrofoil. The foil lifts the board at low speed.\n"
)
FLAGS = (
    "--batch-size=2",
    "--gradient-accumulation-steps=1",
    "--learning-rate=3e-3",
    "--lr-schedule=constant",
    "--warmup-ratio=0",
    "--lora-r=8",
    "--lora-dropout=0",
    "--save-every=10",
    "--beta=0.5",
    "--wait",
)


def _simulated_run(sim: Simulator, root: Path) -> RunDir:
    docs = root / "docs"
    docs.mkdir()
    (docs / "bats.txt").write_text(NOTES, encoding="utf-8")
    run = RunDir(root / "run")
    sim.misbehave("invented_quote", times=2)

    async def go() -> None:
        async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
            config = RaftConfig(
                questions_per_chunk=2, chunk_size=24, chunk_overlap=0, distractors=1
            )
            await RaftPipeline(client, config).run(docs, run.root, simulated_teacher=True)

    anyio.run(go)
    return run


def _curve(run: RunDir) -> list[dict[str, float]]:
    rows = parse_result_csv(run.training_curve_csv.read_text(encoding="utf-8")).steps
    return [{"step": r.step, "loss": r.train_loss or 0.0, **r.extra} for r in rows]


def test_dpo_from_the_runs_adapter_and_from_a_fresh_one(
    trained: Trained,
    tmp_path: Path,
    raftkit_simulator: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = raftkit_simulator
    monkeypatch.setenv("OPENAI_API_KEY", sim.api_key)
    run = _simulated_run(sim, tmp_path)
    every = len(run.examples.read_text(encoding="utf-8").splitlines())  # a pair for each
    export = ["export", str(run.root), "--formats", "dpo", "--preference-pairs", str(every)]
    assert raftkit.cli.main([*export, "--base-url", sim.base_url]) == 0
    for part, count in (("train", 2), ("validation", 1)):
        path = run.dataset_file("dpo", part)
        assert path.is_file(), (part, capsys.readouterr())
        path.write_text(shortest_rows(path, count), encoding="utf-8")
    # the session's supervised run is this run's too: @finetuned names its adapter
    shutil.copyfile(RunDir(trained.run).finetune_state, run.finetune_state)
    capsys.readouterr()

    gguf = str(smollm_gguf())
    argv = ["finetune", str(run.root), "--provider", "local", "--method", "dpo", "--model", gguf]
    argv += ["--cache-dir", str(trained.out / "bases"), *FLAGS]  # the dequantized base, reused
    assert raftkit.cli.main([*argv, "--max-steps=2", "--from-adapter", "@finetuned"]) == 0
    out = capsys.readouterr()
    assert "preference pairs: 2 in " in out.out
    assert re.search(r"2/2 steps.*reward margin -?\d+\.\d{3}", out.err), out.err  # status
    assert "step 2/2: train loss" in out.out
    assert "reward margin" in out.out
    state = json.loads(run.finetune_state.read_text(encoding="utf-8"))
    adapter = Path(state["fine_tuned_model"])
    assert (state["method"], state["status"]) == ("dpo", "succeeded")
    assert state["from_adapter"] == str(trained.job.fine_tuned_model)
    assert (adapter / "adapter_model.safetensors").is_file()
    card = (adapter / "README.md").read_text(encoding="utf-8")
    assert "by DPO on preference pairs" in card
    assert "| beta | 0.5 |" in card
    curve = _curve(run)
    # the reference is the adapter it started from: the first step compares it with itself
    # (up to the noise of that adapter's own LoRA dropout, 0.05, active in the policy only)
    assert curve[0]["loss"] == pytest.approx(math.log(2), abs=0.05)
    assert {"chosen_reward", "rejected_reward", "reward_margin"} <= set(curve[0])
    spec = JobDir(adapter.parent).read_spec()
    assert (spec.method, spec.beta, spec.from_adapter) == ("dpo", 0.5, state["from_adapter"])

    # the same command again finds the finished job: @finetuned still means its start
    assert raftkit.cli.main([*argv, "--max-steps=2", "--from-adapter", "@finetuned"]) == 0
    assert f"resuming job {state['job_id']} (succeeded)" in capsys.readouterr().out

    # a fresh adapter: the reference is the base with the adapter switched off
    assert raftkit.cli.main([*argv, "--max-steps=3", "--new"]) == 0
    capsys.readouterr()
    fresh = json.loads(run.finetune_state.read_text(encoding="utf-8"))
    assert fresh["job_id"] != state["job_id"]
    assert "from_adapter" not in fresh
    curve = _curve(run)
    assert [c["step"] for c in curve] == [1, 2, 3]
    assert curve[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert curve[-1]["reward_margin"] > curve[0]["reward_margin"]
    assert curve[-1]["loss"] < curve[0]["loss"]


def test_a_run_without_pairs_or_adapter_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    gguf = str(smollm_gguf())
    argv = ["finetune", str(run.root), "--provider", "local", "--model", gguf]
    assert raftkit.cli.main([*argv, "--method", "dpo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"raftkit finetune: {run.dataset_file('dpo', 'train')} does not exist"), (
        err
    )
    assert "raftkit export" in err
    assert len(err.splitlines()) == 1
    assert raftkit.cli.main([*argv, "--method", "dpo", "--from-adapter", "@finetuned"]) == 2
    err = capsys.readouterr().err.strip()
    assert "records no finished local supervised adapter" in err
    assert len(err.splitlines()) == 1
    assert raftkit.cli.main([*argv, "--from-adapter", str(tmp_path)]) == 2
    assert "--from-adapter is for --provider local --method dpo" in capsys.readouterr().err
    assert raftkit.cli.main([*argv, "--method", "dpo", "--from-adapter", str(tmp_path)]) == 2
    assert "is not a LoRA adapter folder" in capsys.readouterr().err


@pytest.mark.anyio
async def test_the_provider_refuses_what_dpo_cannot_train(
    tmp_path: Path, anyio_backend: str
) -> None:
    from raftkit.errors import UsageError
    from raftkit.finetune import LocalLoRAProvider
    from raftkit.students import LocalTrainingConfig

    async with LocalLoRAProvider(tmp_path) as provider:
        refused: dict[str, dict[str, Any]] = {
            "with packing off": {"method": "dpo", "config": LocalTrainingConfig(packing=True)},
            "above 0 and at most 2": {"method": "dpo", "beta": 3.0},
            "DPO settings": {"beta": 0.1},
            "is not a LoRA adapter folder": {"method": "dpo", "from_adapter": tmp_path},
        }
        for said, fields in refused.items():
            with pytest.raises(UsageError, match=said):
                await provider.create_job(model="BASE", training_file="file-x", **fields)
    assert not (tmp_path / "jobs").exists()  # nothing written

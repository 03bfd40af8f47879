"""FineTuneRun: the resumable fine-tuning of a run directory, as a library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_support import example
from raftkit.dataset import write_examples
from raftkit.errors import UsageError
from raftkit.finetune import Hyperparameters, OpenAIFineTuneProvider
from raftkit.finetune_run import FineTuneRun
from raftkit.llm import OpenAIClient, PollPolicy
from raftkit.run_dir import RunDir
from raftkit.testing import Simulator

pytestmark = pytest.mark.anyio

FAST = PollPolicy(initial=0.01, maximum=0.05, timeout=30.0)


async def test_export_upload_start_wait_then_resume(
    raftkit_simulator: Simulator, tmp_path: Path
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
    raftkit_simulator: Simulator, tmp_path: Path
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

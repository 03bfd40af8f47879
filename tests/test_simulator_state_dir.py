"""A simulator that behaves like a service: state on disk, restarts, the background CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from openapi_schemas import validate
from raftkit.testing import Simulator, SimulatorConfig
from raftkit.testing._finetune import FineTuningSettings, configure_fine_tuning
from raftkit.testing.service import default_state_dir, find_running, stop_background
from simulator_support import chat, chat_body, openai_client, poll, sft_jsonl, upload

pytestmark = pytest.mark.anyio

MANAGEMENT = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"
    "/deployments"
)


def batch_input() -> bytes:
    line = {
        "custom_id": "q1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": chat_body("gpt-4o-mini", "<DOCUMENT>The sky is blue.</DOCUMENT> Colour?"),
    }
    return (json.dumps(line) + "\n").encode()


async def test_files_jobs_batches_deployments_and_clock_outlive_a_restart(
    tmp_path: Path,
) -> None:
    config = SimulatorConfig(state_dir=tmp_path)
    async with Simulator(config) as first:
        first.set_time("2026-12-20T08:00:00Z")
        # a long job: still running when the simulator stops
        configure_fine_tuning(first.state, FineTuningSettings(running_seconds=3600.0))
        async with openai_client(first) as client:
            training = await upload(client, sft_jsonl())
            job = (
                await client.post(
                    "/fine_tuning/jobs",
                    json={"model": "gpt-4o-mini", "training_file": training["id"]},
                )
            ).json()
            batch_file = await upload(client, batch_input(), "batch")
            batch = (
                await client.post(
                    "/batches",
                    json={
                        "input_file_id": batch_file["id"],
                        "endpoint": "/v1/chat/completions",
                        "completion_window": "24h",
                    },
                )
            ).json()
            done_batch = await poll(
                lambda: _get(client, f"/batches/{batch['id']}"),
                lambda b: b["status"] == "completed",
            )
            running = await poll(
                lambda: _get(client, f"/fine_tuning/jobs/{job['id']}"),
                lambda j: j["status"] == "running",
            )
            early_events = await _get(client, f"/fine_tuning/jobs/{job['id']}/events")
        first.register_model("house-model")
        async with httpx.AsyncClient(
            base_url=first.azure_endpoint, headers={"Authorization": "Bearer t"}
        ) as arm:
            put = await arm.put(
                f"{MANAGEMENT}/prod",
                params={"api-version": "2024-10-01"},
                json={"sku": {"name": "Standard"}, "properties": {"model": {"name": "gpt-4o"}}},
            )
            assert put.status_code == 201
    assert running["status"] == "running"
    assert (tmp_path / "state.json").is_file()
    assert not (tmp_path / "simulator.pid").exists()  # released on stop

    async with Simulator(SimulatorConfig(state_dir=tmp_path)) as second:
        assert second.now().date().isoformat() == "2026-12-20"
        async with openai_client(second) as client:
            content = await client.get(f"/files/{training['id']}/content")
            assert content.content == sft_jsonl()
            resumed = await _get(client, f"/fine_tuning/jobs/{job['id']}")
            validate("FineTuningJob", resumed)
            assert resumed["status"] == "running"
            events = await _get(client, f"/fine_tuning/jobs/{job['id']}/events")
            # the history is replayed with the same ids
            assert events["data"][-len(early_events["data"]) :] == early_events["data"]
            second.advance_time(3600)  # the job continues by the clock
            succeeded = await _get(client, f"/fine_tuning/jobs/{job['id']}")
            assert succeeded["status"] == "succeeded"
            tuned = succeeded["fine_tuned_model"]
            assert (await chat(second, chat_body(tuned, "Hello?"))).status_code == 200
            again = await _get(client, f"/batches/{batch['id']}")
            assert again["output_file_id"] == done_batch["output_file_id"]
            output = await client.get(f"/files/{again['output_file_id']}/content")
            assert json.loads(output.text.splitlines()[0])["custom_id"] == "q1"
            listed = {m["id"] for m in (await client.get("/models")).json()["data"]}
            assert {"house-model", tuned} <= listed
        assert second.state.deployment_model("prod") == "gpt-4o"


async def _get(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(path)).json()
    return body


def test_one_directory_serves_one_simulator(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(state_dir=tmp_path)):
        assert (tmp_path / "simulator.pid").read_text().strip() == str(os.getpid())
        server = json.loads((tmp_path / "server.json").read_text())
        assert server["pid"] == os.getpid()
        with pytest.raises(RuntimeError, match="another simulator of this process"):
            Simulator(SimulatorConfig(state_dir=tmp_path)).start()
    (tmp_path / "state.json").write_text('{"format": 99}')
    with pytest.raises(RuntimeError, match="has format 99"):
        Simulator(SimulatorConfig(state_dir=tmp_path)).start()
    assert not (tmp_path / "simulator.pid").exists()


def test_the_default_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAFTKIT_SIMULATOR_DIR", str(tmp_path / "mine"))
    assert default_state_dir() == tmp_path / "mine"
    monkeypatch.delenv("RAFTKIT_SIMULATOR_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_state_dir() == tmp_path / "state" / "raftkit" / "simulator"
    assert find_running(tmp_path / "nothing") is None
    assert stop_background(tmp_path / "nothing") is False


def _raftkit(
    *args: str, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftkit.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def _chat_run(run: Path) -> None:
    """A run directory with upload-ready chat files, as ``raftkit export`` writes them."""
    chat_dir = run / "dataset" / "chat"
    chat_dir.mkdir(parents=True)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"<DOCUMENT>Fact {i}.</DOCUMENT> Question {i}?"},
                {
                    "role": "assistant",
                    "content": f"##begin_quote##Fact {i}.##end_quote##\n<ANSWER>: {i}",
                },
            ]
        }
        for i in range(12)
    ]
    (chat_dir / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.mark.slow
def test_a_background_simulator_keeps_jobs_between_commands(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT")
    }
    env["RAFTKIT_SIMULATOR_DIR"] = str(state)
    run = tmp_path / "run"
    _chat_run(run)
    try:
        started = _raftkit("simulator", "start", env=env)
        assert "started" in started.stdout
        status = _raftkit("simulator", "status", env=env)
        assert "simulator running" in status.stdout
        running = find_running(state)
        assert running is not None
        tuned = _raftkit("finetune", str(run), "--wait", "--poll-interval", "0.05", env=env)
        assert "using the background simulator" in tuned.stderr
        recorded = json.loads((run / "finetune.json").read_text())
        listed = _raftkit("jobs", "list", env=env)
        assert recorded["job_id"] in listed.stdout
        assert "succeeded" in listed.stdout
        shown = _raftkit("jobs", "show", recorded["job_id"], env=env)
        assert "succeeded" in shown.stdout

        # stop and start again: the job is still there
        assert "stopped" in _raftkit("simulator", "stop", env=env).stdout
        assert _raftkit("simulator", "status", env=env, check=False).returncode == 1
        _raftkit("simulator", "start", env=env)
        assert recorded["job_id"] in _raftkit("jobs", "list", env=env).stdout
    finally:
        stop_background(state)
    assert find_running(state) is None

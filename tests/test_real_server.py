"""A real OpenAI-compatible server with a real model: ``raftkit serve --run`` serving SmolLM2-135M
and the session's tiny LoRA adapter (``trained`` in conftest.py), then

- the generation's teacher path against it (``raftkit generate --base-url``): whatever a 135 M
  model writes, the run ends with its report — rejections are fine, a crash is not — and the
  structured-output fallback engages, since this server does text only;
- ``raftkit eval`` comparing base and base+adapter at that one URL (``@base``, ``@finetuned``)
  on the run's test split, with bootstrap intervals.

Inputs are tiny and completions short: these run on a CPU in the test suite.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from raftkit.cli import main
from raftkit.run_dir import RunDir
from students_support import Trained, requires_student, smollm_gguf

pytestmark = [requires_student(), pytest.mark.slow]

DOCUMENT = """\
# Bats

Bats are the only mammals capable of true flight. Their wings are thin membranes of skin
stretched between long finger bones. Most bats are active at night and rest during the day
hanging upside down in caves, trees or buildings.

Many bats find their food by echolocation: they call at a high pitch and listen to the echoes
that come back from insects and obstacles. A single little brown bat can catch hundreds of
mosquitoes in an hour.
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _base_name() -> str:
    gguf = smollm_gguf()
    assert gguf is not None
    return str(gguf.resolve())  # `raftkit finetune` records an existing BASE as absolute


@pytest.fixture(scope="module")
def server(trained: Trained) -> Iterator[str]:
    """``raftkit serve --run RUN`` in a process of its own; its base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "raftkit.cli", "serve", "--run", str(trained.run)]
    command += ["--port", str(port), "--max-tokens-default", "64"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"raftkit serve ended: {output[-2000:]}")
            assert time.monotonic() < deadline, "raftkit serve did not come up"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


def test_serve_run_serves_the_recorded_base_and_adapter(server: str) -> None:
    names = [m["id"] for m in httpx.get(f"{server}/models").json()["data"]]
    assert names == [_base_name(), "raft"]


def test_generation_with_the_served_model_as_teacher(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bats.md").write_text(DOCUMENT, encoding="utf-8")
    out = RunDir(tmp_path / "run")
    command = [
        sys.executable, "-m", "raftkit.cli", "generate", str(docs), "--out", str(out.root),
        "--base-url", server, "--teacher-model", _base_name(),
        "--questions", "1", "--distractors", "1", "--chunk-size", "160", "--chunk-overlap", "0",
        "--question-max-tokens", "40", "--answer-max-tokens", "96",
        "--max-answer-attempts", "1", "--quiet", "-v",
    ]  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": "unused"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    log = done.stdout + done.stderr
    assert "Traceback" not in log, log[-4000:]
    report: dict[str, Any] = json.loads(out.report_json.read_text(encoding="utf-8"))
    # the one chunk was worked through, whatever the model wrote
    assert report["chunks"] == 1
    assert report["chunks_done"] == 1, log[-4000:]
    if report["examples"]:
        assert done.returncode == 0, log[-4000:]
    else:  # a 135 M teacher may give nothing usable: that may end non-zero, but is no crash
        assert done.returncode in (0, 1), log[-4000:]
    # this server does text only: json_schema, then json_object, were refused once each
    for refused, then in (("json_schema", "json_object"), ("json_object", "prompt")):
        assert f"refuses structured output as {refused} for model" in log
        assert f"asking in {then} mode from now on" in log
    assert report["structured_modes"] == {_base_name(): "prompt"}, report


def test_eval_compares_base_and_adapter_with_intervals(
    server: str, trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    run = RunDir(trained.run)
    argv = ["eval", str(run.root), "--limit", "3", "--max-tokens", "24", "--quiet"]
    argv += ["--model", f"base=@base@{server}", "--model", f"tuned=@finetuned@{server}"]
    assert main(argv) == 0
    report: dict[str, Any] = json.loads((run.eval / "report.json").read_text(encoding="utf-8"))
    assert report["models"] == ["base", "tuned"]
    assert report["n_questions"] == 3
    details = report["model_details"]
    assert (details["base"]["endpoint"], details["tuned"]["endpoint"]) == (server, server)
    answered = [r for r in report["results"] if r["status"] == "answered"]
    assert len(answered) == 6
    assert {r["model"] for r in answered} == {"base", "tuned"}
    summaries = {s["metric"]["name"]: s for s in report["summaries"] if s["setting"] == "dataset"}
    for metric in ("format_adherence", "token_f1"):
        summary = summaries[metric]
        for model in summary["models"]:
            low, mean, high = model["ci_low"], model["mean"], model["ci_high"]
            assert all(math.isfinite(x) for x in (low, mean, high))
            assert low <= mean <= high
        versus = summary["versus_baseline"]["tuned"]
        assert versus["verdict"]
        assert versus["ci_low"] <= versus["difference"] <= versus["ci_high"]

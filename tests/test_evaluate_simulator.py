"""End to end over real HTTP: the evaluation run, the judge and the ragas metrics against the
loopback simulator through raftkit's OpenAIClient, with every non-loopback connection refused.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkit.evaluate import (
    BUILTIN_METRICS,
    JudgeCorrectness,
    ModelSpec,
    RaftEvaluator,
    render_html,
    render_markdown,
    write_report,
)
from raftkit.evaluate.ragas_adapter import RAGAS_METRIC_NAMES, ragas_metrics
from raftkit.llm import OpenAIClient
from raftkit.testing import Simulator
from raftkit.types import ContextDocument, RaftExample

pytestmark = pytest.mark.anyio


def _is_loopback(host: object) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


@pytest.fixture
def outside_traffic(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuses, and records, every lookup or connection to a host other than loopback.

    Recording matters: ragas' telemetry swallows its own errors, so a refusal alone could go
    unnoticed.
    """
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(address, tuple) and not _is_loopback(host):
            attempts.append(str(host))
            raise ConnectionRefusedError(f"test forbids connecting to {host}")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not _is_loopback(name):
            attempts.append(str(name))
            raise socket.gaierror(f"test forbids resolving {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert attempts == [], f"connections outside loopback were attempted: {attempts}"


def _examples() -> list[RaftExample]:
    facts = [
        (
            "bats",
            "What is the only mammal capable of true flight?",
            "Bats are the only mammals capable of true flight.",
            "bats",
        ),
        (
            "surf",
            "Where did surfing originate?",
            "Surfing originated in ancient Polynesia.",
            "Polynesia",
        ),
        ("zh", "蝙蝠主要吃什么？", "大多数蝙蝠以昆虫为食。", "昆虫"),
    ]
    examples = []
    for key, question, fact, answer in facts:
        docs = [
            ContextDocument(
                chunk_id="d#0", position=0, is_oracle=False, text="Waves break on reefs."
            ),
            ContextDocument(chunk_id=f"{key}#1", position=1, is_oracle=True, text=fact),
        ]
        examples.append(
            RaftExample(
                id=f"ex-{key}",
                question_id=f"q-{key}",
                question=question,
                chunk_id=f"{key}#1",
                document_id=key,
                documents=docs,
                oracle_present=True,
                cot_answer=f"##begin_quote##{fact}##end_quote## <ANSWER>: {answer}",
                final_answer=answer,
            )
        )
    return examples


async def test_evaluation_with_judge_over_http(
    anyio_backend: str,
    raftkit_simulator: Simulator,
    outside_traffic: list[str],
    tmp_path: Path,
) -> None:
    sim = raftkit_simulator
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        judge = JudgeCorrectness(client, model="gpt-4o-mini")
        report = await RaftEvaluator(
            [*BUILTIN_METRICS, judge], settings=("dataset", "oracle_only"), n_resamples=500
        ).evaluate(
            _examples(),
            [ModelSpec("base", client, "gpt-4o-mini"), ModelSpec("tuned", client, "gpt-4.1-mini")],
        )
        written = await write_report(report, tmp_path)
    assert all(r.status == "answered" for r in report.results)
    assert len(report.results) == 2 * 2 * 3
    judged = [r.scores["judge_correctness"] for r in report.results]
    assert all(0.0 <= v <= 1.0 for v in judged)
    assert all(r.notes.get("judge_correctness") for r in report.results)
    for r in report.results:
        assert r.response is not None
        assert not math.isnan(r.scores["format_adherence"])
    assert report.comparison("judge_correctness", "tuned").n == 3
    paths = [r.path for r in sim.requests]
    assert paths.count("/v1/chat/completions") == 2 * 2 * 3 * 2  # answers, then judge grades
    # the prompt the models saw is RAFT's format
    prompts = [
        str(r.json["messages"][-1]["content"])
        for r in sim.requests
        if r.path == "/v1/chat/completions" and "<DOCUMENT>" in str(r.json["messages"])
    ]
    assert len(prompts) == 2 * 2 * 3
    distractor = "<DOCUMENT>Waves break on reefs.</DOCUMENT>\n<DOCUMENT>"
    assert sum(p.startswith(distractor) for p in prompts) == 2 * 3  # the dataset setting
    assert "tuned" in render_markdown(report)
    assert "<svg" in render_html(report)
    assert written["html"].stat().st_size > 0


@pytest.mark.extra("ragas")
async def test_ragas_metrics_over_http(
    anyio_backend: str, raftkit_simulator: Simulator, outside_traffic: list[str]
) -> None:
    sim = raftkit_simulator
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        metrics = ragas_metrics(
            client,
            model="gpt-4o-mini",
            embedding_model="text-embedding-3-small",
            max_tokens=8192,  # the simulator fills every schema field; leave it room
        )
        report = await RaftEvaluator(metrics, n_resamples=300).evaluate(
            _examples(), [ModelSpec("base", client, "gpt-4o-mini")]
        )
    assert [m.name for m in report.metrics] == list(RAGAS_METRIC_NAMES)
    for name in RAGAS_METRIC_NAMES:
        summary = report.summary(name).models[0]
        assert summary.n_measured + summary.n_not_measured == 3
        # whatever ragas could not measure says why; the rest are real scores
        for r in report.results:
            value = r.scores[name]
            if math.isnan(value):
                assert r.notes.get(name)
            else:
                assert -1.0 <= value <= 1.0 + 1e-9
    paths = {r.path for r in sim.requests}
    assert paths == {"/v1/chat/completions", "/v1/embeddings"}
    measured = sum(report.summary(n).models[0].n_measured for n in RAGAS_METRIC_NAMES)
    assert measured > 0

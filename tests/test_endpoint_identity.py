"""Simulated responses never become real data: endpoint identity in journal keys and settings,
the simulator's mark on its responses, and SIMULATED at the top of every report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from data_files import FOILBOARD
from raftkit.cli import main
from raftkit.cli._clients import SIMULATOR_IDENTITY
from raftkit.errors import ResumeMismatchError
from raftkit.evaluate import EvaluationReport, render_html, render_markdown
from raftkit.journal import Journal
from raftkit.llm import AzureOpenAIClient, EndpointIdentity, OpenAIClient, UsageLedger
from raftkit.llm._transport import SIMULATOR_HEADER
from raftkit.pipeline import RaftConfig, RaftPipeline
from raftkit.retrieval.report import RetrievalReport
from raftkit.run_dir import RunDir
from raftkit.run_report import RunReport
from raftkit.testing import Simulator
from raftkit.testing._app import SIMULATOR_HEADER as SIMULATOR_SENDS

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "蝙蝠 fly?"}]


def test_the_identity_is_host_and_path_never_a_credential() -> None:
    plain = EndpointIdentity.from_url("openai", "https://api.openai.com/v1/")
    assert plain == EndpointIdentity(provider="openai", host="api.openai.com", path="/v1")
    # a key in the URL (user info, query) and the default port change nothing
    assert EndpointIdentity.from_url("openai", "https://u:sk-SECRET@API.openai.com:443/v1") == plain
    tagged = EndpointIdentity.from_url("openai", "https://api.openai.com/v1?api-key=sk-SECRET")
    assert tagged == plain
    assert "SECRET" not in json.dumps(tagged.model_dump())
    local = EndpointIdentity.from_url("openai", "http://127.0.0.1:8000/v1")
    assert local.host == "127.0.0.1:8000"
    assert str(local) == "openai 127.0.0.1:8000/v1"


async def test_journal_keys_include_the_endpoint_but_not_the_key(anyio_backend: str) -> None:
    async with (
        OpenAIClient(base_url="http://127.0.0.1:9/v1", api_key="sk-one") as first,
        OpenAIClient(base_url="http://127.0.0.1:9/v1", api_key="sk-two") as same_server,
        OpenAIClient(base_url="http://127.0.0.1:10/v1", api_key="sk-one") as other_server,
        OpenAIClient(
            base_url="http://127.0.0.1:11/v1", api_key="k", endpoint_identity=SIMULATOR_IDENTITY
        ) as simulator,
        AzureOpenAIClient(
            endpoint="https://r.openai.azure.com", api_key="k", api_version="2024-10-21"
        ) as azure,
        AzureOpenAIClient(
            endpoint="https://r.openai.azure.com", api_key="k", api_version="2025-04-01-preview"
        ) as newer_azure,
    ):
        key = first.chat_request(MESSAGES, model="m").key(0)
        assert same_server.chat_request(MESSAGES, model="m").key(0) == key
        assert other_server.chat_request(MESSAGES, model="m").key(0) != key
        assert simulator.chat_request(MESSAGES, model="m").key(0) != key
        assert simulator.endpoint_identity.provider == "simulator"
        azure_key = azure.chat_request(MESSAGES, model="dep").key(0)
        assert newer_azure.chat_request(MESSAGES, model="dep").key(0) != azure_key
        assert azure.endpoint_identity.api_version == "2024-10-21"


async def test_a_response_journaled_from_the_simulator_is_not_replayed_elsewhere(
    anyio_backend: str, tmp_path: Path
) -> None:
    def real_server(request: httpx.Request) -> httpx.Response:
        body = {
            "id": "chatcmpl-real",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "real"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
        return httpx.Response(200, json=body)

    with Journal(tmp_path).open() as journal:
        async with (
            Simulator() as sim,
            OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as c,
        ):
            simulated = await c.with_store(journal).chat(MESSAGES, model="gpt-4o-mini")
        transport = httpx.AsyncClient(transport=httpx.MockTransport(real_server))
        async with OpenAIClient(
            base_url="https://api.openai.com/v1", api_key="sk-real", http_client=transport
        ) as real:
            answered = await real.with_store(journal).chat(MESSAGES, model="gpt-4o-mini")
        await transport.aclose()
    assert not answered.from_journal, "the real endpoint's call is paid, not a replay"
    assert answered.text == "real" != simulated.text
    assert len(journal) == 2


async def test_the_simulator_marks_its_responses_and_the_ledger_counts_them(
    anyio_backend: str,
) -> None:
    assert SIMULATOR_SENDS == SIMULATOR_HEADER  # the wire contract, named on both sides
    ledger = UsageLedger()
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, ledger=ledger) as client,
    ):
        await client.chat(MESSAGES, model="gpt-4o-mini")
        await client.embed(["a", "b"], model="text-embedding-3-small")
        response = await client.request("GET", "models")
    assert response.headers[SIMULATOR_HEADER] == "1"
    assert ledger.report().simulated_responses == 3

    plain = UsageLedger()
    transport = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"data": []}))
    )
    async with OpenAIClient(api_key="sk-x", ledger=plain, http_client=transport) as client:
        await client.request("GET", "models")
    await transport.aclose()
    assert plain.report().simulated_responses == 0


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(FOILBOARD, docs)
    return docs


def test_a_simulated_run_records_it_and_refuses_a_real_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    docs, out = _docs(tmp_path), tmp_path / "run"
    assert main(["generate", str(docs), "--out", str(out), "--questions", "1", "--quiet"]) == 0
    run = RunDir(out)
    settings = json.loads(run.settings.read_text(encoding="utf-8"))
    assert settings["simulated"] is True
    assert settings["endpoint"] == {
        "provider": "simulator",
        "host": "127.0.0.1",
        "path": "/v1",
        "api_version": None,
    }
    report = run.report_md.read_text(encoding="utf-8").splitlines()
    assert report[2].startswith("> **SIMULATED**"), "the first thing the report says"
    assert json.loads(run.report_json.read_text(encoding="utf-8"))["simulated_teacher"] is True
    journaled = len(run.journal.read_bytes().splitlines())

    # a second run of the simulator (a new port) resumes: nothing is paid again
    assert main(["generate", str(docs), "--out", str(out), "--questions", "1", "--quiet"]) == 0
    assert json.loads(run.report_json.read_text(encoding="utf-8"))["teacher_calls_paid"] == 0
    capsys.readouterr()

    # a "real" teacher (another server) on the same run is refused, with the way out
    with Simulator() as real:
        monkeypatch.setenv("OPENAI_API_KEY", real.api_key)
        code = main(
            [
                "generate",
                str(docs),
                "--out",
                str(out),
                "--questions",
                "1",
                "--quiet",
                "--base-url",
                real.base_url,
            ]
        )
        assert not real.requests, "nothing was sent to the new endpoint"
    err = capsys.readouterr().err
    assert code == 2
    assert "endpoint" in err
    assert "--out NEW_DIR" in err
    assert '"provider": "simulator"' in err
    assert '"provider": "openai"' in err
    assert len(run.journal.read_bytes().splitlines()) == journaled


async def test_a_library_run_against_the_simulator_is_marked_simulated(
    anyio_backend: str, tmp_path: Path
) -> None:
    docs = _docs(tmp_path)
    async with Simulator() as sim, OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as c:
        # not told it is simulated: it learns it from the responses
        report = await RaftPipeline(c, RaftConfig(questions_per_chunk=1)).run(docs, tmp_path / "r")
    assert report.simulated_teacher
    assert RunDir(tmp_path / "r").simulated()
    # with the endpoint moved, the run is refused rather than mixed
    async with Simulator() as sim, OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as c:
        with pytest.raises(ResumeMismatchError) as refused:
            await RaftPipeline(c, RaftConfig(questions_per_chunk=1)).run(docs, tmp_path / "r")
    assert set(refused.value.differences) == {"endpoint"}


def _evaluation(simulated: bool) -> EvaluationReport:
    return EvaluationReport(
        baseline="a",
        models=["a"],
        settings=["dataset"],
        metrics=[],
        confidence=0.95,
        n_resamples=10,
        seed=0,
        n_questions=0,
        summaries=[],
        results=[],
        simulated=simulated,
    )


def test_every_report_says_simulated_at_the_top() -> None:
    generation = RunReport(source="d", run_dir="r", teacher_model="m", simulated_teacher=True)
    assert generation.markdown().splitlines()[2].startswith("> **SIMULATED**")
    assert "SIMULATED" not in RunReport(source="d", run_dir="r", teacher_model="m").markdown()

    evaluation = _evaluation(True)
    assert render_markdown(evaluation).splitlines()[2].startswith("> **SIMULATED**")
    html = render_html(evaluation)
    assert html.index("SIMULATED") < html.index("<p>Baseline")
    assert json.loads(evaluation.model_dump_json())["simulated"] is True
    assert "SIMULATED" not in render_markdown(_evaluation(False))

    retrieval: dict[str, Any] = {"baseline": "base", "metrics": ["hit@1"], "rows": []}
    marked = RetrievalReport(**retrieval, simulated=True)
    assert marked.markdown().splitlines()[2].startswith("> **SIMULATED**")
    assert marked.html().index("SIMULATED") < marked.html().index("<p>Questions")
    assert json.loads(marked.model_dump_json())["simulated"] is True
    assert "SIMULATED" not in RetrievalReport(**retrieval).markdown()


def test_the_commands_after_a_simulated_run_say_simulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    docs, out = _docs(tmp_path), tmp_path / "run"
    (docs / "notes.md").write_text(
        "# 冲浪\n\n冲浪是在海浪上滑行的运动。冲浪板有长板和短板。\n\n"
        "Kiteboarding uses a large kite to pull the rider across the water.\n",
        encoding="utf-8",
    )
    generate = ["generate", str(docs), "--out", str(out), "--questions", "4", "--quiet"]
    assert main([*generate, "--chunk-size", "64", "--chunk-overlap", "0"]) == 0
    run = RunDir(out)

    simulator = ["--provider", "simulator"]
    assert (
        main(
            [
                "eval",
                str(out),
                "--models",
                "gpt-4.1-mini,gpt-4.1-nano",
                "--split",
                "train",
                *simulator,
            ]
        )
        == 0
    )
    assert (run.eval / "report.md").read_text("utf-8").splitlines()[2].startswith("> **SIMULATED**")
    assert "SIMULATED" in (run.eval / "report.html").read_text("utf-8")
    assert json.loads((run.eval / "report.json").read_text("utf-8"))["simulated"] is True

    embeddings = ["--embedding-model", "text-embedding-3-small", *simulator]
    assert main(["retrieval", "evaluate", str(out), "--split", "train", *embeddings]) == 0
    assert run.retrieval_report_md.read_text("utf-8").splitlines()[2].startswith("> **SIMULATED**")
    assert "SIMULATED" in run.retrieval_report_html.read_text("utf-8")
    assert json.loads(run.retrieval_report_json.read_text("utf-8"))["simulated"] is True

    capsys.readouterr()
    assert main(["export", str(out)]) == 0
    assert capsys.readouterr().out.startswith("> **SIMULATED**")
    assert main(["finetune", str(out), *simulator]) == 0
    assert capsys.readouterr().out.startswith("> **SIMULATED**")
    assert json.loads(run.finetune_state.read_text("utf-8"))["simulated"] is True

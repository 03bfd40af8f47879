"""BatchRunner against the simulator: journal keys equal to online keys, restart without a
second submission, answers merged into a Journal, failed lines reported, batch prices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from finetune_support import Recorder, form_fields
from openapi_schemas import validate, validate_azure
from raftkit.batch import BatchFailedError, BatchRunner, DeferredCalls
from raftkit.errors import WaitTimeoutError
from raftkit.journal import Journal
from raftkit.llm import (
    AzureOpenAIClient,
    Deferred,
    DeferringStore,
    OpenAIClient,
    PollPolicy,
    PriceTable,
    UsageLedger,
    request_key,
)
from raftkit.llm.usage import BATCH_DISCOUNT
from raftkit.testing import BatchSettings, Simulator, configure_batches

pytestmark = pytest.mark.anyio

FAST = PollPolicy(initial=0.01, maximum=0.05, timeout=30.0)
MODEL = "gpt-4o-mini"
AZURE_SPEC = "azure/azure-authoring-preview-2025-04-01.json"


def questions() -> list[list[dict[str, str]]]:
    return [
        [
            {"role": "system", "content": "Answer from the context."},
            {"role": "user", "content": text},
        ]
        for text in (
            "Context: Bats are the only mammals capable of true flight. Q: Which mammals fly?",
            "上下文：长城位于中国北方。问题：长城在哪里？",
            "Context: Pandas eat bamboo. Q: What do pandas eat?",
        )
    ]


def posts(sim: Simulator, suffix: str) -> list[Any]:
    return [r for r in sim.requests if r.method == "POST" and r.path.endswith(suffix)]


async def test_batch_answers_replay_online_from_the_journal(
    raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    journal = Journal(tmp_path).open()
    ledger = UsageLedger()
    recorder = Recorder()
    async with (
        recorder.client() as http,
        OpenAIClient(
            base_url=sim.base_url, api_key=sim.api_key, ledger=ledger, http_client=http
        ) as client,
    ):
        runner = BatchRunner(client, journal, run_dir=tmp_path, poll=FAST)
        requests = [
            runner.chat_request(m, model=MODEL, temperature=0.0, max_tokens=200, sample=s)
            for m in questions()
            for s in (0, 1)
        ]
        # the same request twice is one line, one answer
        result = await runner.run([*requests, requests[0]])
        assert result.requested == 6
        assert result.submitted == 6
        assert result.stored == 6
        assert not result.failures
        assert result.status == "completed"

        # the online client of the same requests pays nothing: every answer is in the journal
        online = client.with_store(journal)
        for messages in questions():
            for sample in (0, 1):
                reply = await online.chat(
                    messages, model=MODEL, temperature=0.0, max_tokens=200, sample=sample
                )
                assert reply.from_journal
                assert reply.text
        chats = [r for r in sim.requests if r.path == "/v1/chat/completions"]
        assert chats == []

        # the ledger bills the batch at the batch price
        usage = ledger.model_usage(MODEL)
        assert usage.batch_calls == 6
        assert usage.calls == 6
        prices = PriceTable()
        lines = [
            json.loads(line)
            for line in (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        from raftkit.llm import usage_from_body

        expected = 0.0
        for line in lines:
            cost = prices.cost(MODEL, usage_from_body(line["response"]))  # type: ignore[arg-type]
            assert cost is not None
            expected += cost * BATCH_DISCOUNT
        assert usage.cost_usd == pytest.approx(expected)
        assert result.cost_usd == pytest.approx(expected)

        # run again: everything is stored, nothing is sent
        again = await BatchRunner(client, journal, run_dir=tmp_path, poll=FAST).run(requests)
        assert again.already_stored == 6
        assert again.submitted == 0
    journal.close()
    assert len(posts(sim, "/v1/batches")) == 1

    # what was sent and answered, against the spec
    for exchange in recorder.find("POST", "/v1/files"):
        validate("CreateFileRequest", form_fields(exchange))
        validate("OpenAIFile", exchange.response)
    for exchange in recorder.find("GET", "/v1/files"):
        validate("ListFilesResponse", exchange.response)
    polls = [e for e in recorder.exchanges if e.method == "GET" and "/v1/batches/" in e.path]
    assert polls
    for exchange in [*recorder.find("POST", "/v1/batches"), *polls]:
        validate("Batch", exchange.response)
    created = posts(sim, "/v1/batches")[0].json
    validate("CreateBatchRequest", created)
    assert created["endpoint"] == "/v1/chat/completions"
    assert created["completion_window"] == "24h"
    state = json.loads((tmp_path / "teacher.batch.json").read_text())
    assert state["merged"] is True
    assert state["batch_id"]
    from raftkit.testing._files import file_store

    content = file_store(sim.state).get(state["input_file_id"])
    assert content is not None
    assert content.purpose == "batch"
    for raw in content.content.decode("utf-8").splitlines():
        line = json.loads(raw)
        assert line["method"] == "POST"
        assert line["url"] == "/v1/chat/completions"
        validate("CreateChatCompletionRequest", line["body"])
        path = "chat/completions"
        assert line["custom_id"] in {
            request_key("POST", path, r.body, r.sample, endpoint=client.endpoint_identity)
            for r in requests
        }


async def test_keys_equal_the_online_keys_of_the_client(tmp_path: Path) -> None:
    async with (
        OpenAIClient(base_url="http://127.0.0.1:9/v1", api_key="k") as openai,
        AzureOpenAIClient(
            endpoint="https://r.example", api_key="k", api_version="2024-10-21"
        ) as az,
    ):
        messages = questions()[0]
        on_openai = BatchRunner(openai, Journal(tmp_path), run_dir=tmp_path)
        request = on_openai.chat_request(messages, model=MODEL, max_tokens=50, seed=3, sample=2)
        body = {"model": MODEL, "messages": messages, "max_tokens": 50, "seed": 3}
        assert on_openai.key(request) == request_key(
            "POST", "chat/completions", body, 2, endpoint=openai.endpoint_identity
        )
        on_azure = BatchRunner(az, Journal(tmp_path), run_dir=tmp_path)
        request = on_azure.chat_request(messages, model="teacher", max_tokens=50)
        assert request.body["model"] == "teacher"  # a batch line names its deployment
        without_model = {"messages": messages, "max_completion_tokens": 50}
        assert on_azure.key(request) == request_key(
            "POST",
            "deployments/teacher/chat/completions",
            without_model,
            0,
            endpoint=az.endpoint_identity,
        )
        assert on_azure.endpoint == "/chat/completions"


async def test_a_restarted_run_polls_the_existing_batch(
    raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    configure_batches(sim.state, BatchSettings(in_progress_seconds=0.6))
    journal = Journal(tmp_path).open()
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        impatient = BatchRunner(
            client,
            journal,
            run_dir=tmp_path,
            poll=PollPolicy(initial=0.01, maximum=0.01, timeout=0.05),
        )
        requests = [impatient.chat_request(m, model=MODEL) for m in questions()]
        with pytest.raises(WaitTimeoutError) as caught:
            await impatient.run(requests)
        state = json.loads((tmp_path / "teacher.batch.json").read_text())
        assert state["merged"] is False
        assert state["batch_id"] == caught.value.resource_id

        # the process "restarts": a new runner finds the batch id and polls it
        resumed = await BatchRunner(client, journal, run_dir=tmp_path, poll=FAST).run(requests)
    journal.close()
    assert resumed.resumed
    assert resumed.batch_id == state["batch_id"]
    assert resumed.stored == 3
    assert not resumed.failures
    assert len(posts(sim, "/v1/batches")) == 1
    assert len(posts(sim, "/v1/files")) == 1
    journaled = (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(journaled) == 3


async def test_a_lost_state_file_adopts_the_live_batch(
    raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    configure_batches(sim.state, BatchSettings(in_progress_seconds=0.6))
    journal = Journal(tmp_path).open()
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        impatient = BatchRunner(
            client, journal, run_dir=tmp_path, poll=PollPolicy(0.01, 0.01, timeout=0.05)
        )
        requests = [impatient.chat_request(m, model=MODEL) for m in questions()]
        with pytest.raises(WaitTimeoutError):
            await impatient.run(requests)
        # killed between creating the batch and writing its id down
        (tmp_path / "teacher.batch.json").unlink()
        result = await BatchRunner(client, journal, run_dir=tmp_path, poll=FAST).run(requests)
    journal.close()
    assert result.stored == 3
    assert len(posts(sim, "/v1/batches")) == 1


async def test_failed_lines_are_reported_not_stored(
    raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    journal = Journal(tmp_path).open()
    ledger = UsageLedger()
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, ledger=ledger) as client:
        runner = BatchRunner(client, journal, run_dir=tmp_path, poll=FAST)
        good = runner.chat_request(questions()[0], model=MODEL)
        bad = runner.chat_request(questions()[1], model=MODEL, temperature=7.5)
        result = await runner.run([good, bad])
        assert result.stored == 1
        assert len(result.failures) == 1
        failure = result.failures[0]
        assert failure.key == runner.key(bad)
        assert failure.status_code == 400
        assert "temperature" in failure.message
        assert await journal.get(runner.key(bad)) is None
        assert await journal.get(runner.key(good)) is not None
    journal.close()
    assert ledger.model_usage(MODEL).batch_calls == 1


async def test_a_failed_batch_raises_with_the_reasons(
    raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    journal = Journal(tmp_path).open()
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        runner = BatchRunner(client, journal, run_dir=tmp_path, poll=FAST)
        # one batch may use one model: the service fails the whole input file
        requests = [
            runner.chat_request(questions()[0], model=MODEL),
            runner.chat_request(questions()[1], model="gpt-4o"),
        ]
        with pytest.raises(BatchFailedError, match="one model"):
            await runner.run(requests)
    journal.close()


async def test_azure_batch_keys_match_deployment_calls(
    raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    journal = Journal(tmp_path).open()
    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint, api_key=sim.api_key, api_version="2025-04-01-preview"
    ) as client:
        runner = BatchRunner(client, journal, run_dir=tmp_path, poll=FAST, name="azure")
        requests = [runner.chat_request(m, model="teacher-deployment") for m in questions()]
        result = await runner.run(requests)
        assert result.stored == 3
        online = client.with_store(journal)
        for messages in questions():
            reply = await online.chat(messages, model="teacher-deployment")
            assert reply.from_journal
    journal.close()
    created = posts(sim, "/openai/batches")
    assert len(created) == 1
    assert created[0].json["endpoint"] == "/chat/completions"
    validate_azure("BatchCreateRequest", created[0].json, spec=AZURE_SPEC)
    assert not [r for r in sim.requests if r.path.endswith("/chat/completions")]


async def test_a_cancelled_batch_merges_what_it_finished(
    raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    configure_batches(sim.state, BatchSettings(in_progress_seconds=5.0))
    journal = Journal(tmp_path).open()
    results = []
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        runner = BatchRunner(client, journal, run_dir=tmp_path, poll=FAST)
        requests = [runner.chat_request(m, model=MODEL) for m in questions()]

        async def run() -> None:
            results.append(await runner.run(requests))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            for _ in range(1000):  # the runner writes its state once the batch exists
                if runner.state_path.exists():
                    break
                await anyio.sleep(0.01)
            batch_id = json.loads(runner.state_path.read_text())["batch_id"]
            cancelling = await runner.cancel(batch_id)
            assert cancelling["status"] == "cancelling"
    journal.close()
    result = results[0]
    assert result.status == "cancelled"
    assert result.stored + len(result.failures) == 3
    assert result.failures
    assert all("cancelled" in f.message for f in result.failures)


async def test_a_deferred_call_passes_through_a_plug_in_that_catches_exception(
    tmp_path: Path,
) -> None:
    messages = questions()[0]
    journal = Journal(tmp_path).open()
    # nothing listens on port 9: a deferred call never reaches the network
    async with OpenAIClient(base_url="http://127.0.0.1:9/v1", api_key="k") as client:
        calls = DeferredCalls(client, journal)
        assert isinstance(calls, DeferringStore)

        async def careless_plug_in() -> str:
            try:
                return (await calls.client.chat(messages, model=MODEL, max_tokens=20)).text
            except Exception:  # a plug-in's catch-all must not swallow the deferral
                return "swallowed"

        with pytest.raises(Deferred):
            await careless_plug_in()
        request = client.chat_request(messages, model=MODEL, max_tokens=20)
        assert list(calls.pending) == [request.key(0)]
        assert calls.pending[request.key(0)].body == {"model": MODEL, **request.body}
    journal.close()


def test_the_old_finetune_names_still_resolve_with_a_warning() -> None:
    import raftkit.batch
    import raftkit.finetune

    for name in ("BatchFailedError", "BatchLineFailure", "BatchRequest", "BatchResult"):
        with pytest.warns(DeprecationWarning, match=f"raftkit.batch.{name}"):
            assert getattr(raftkit.finetune, name) is getattr(raftkit.batch, name)
    with pytest.warns(DeprecationWarning, match="raftkit.batch.BatchRunner"):
        from raftkit.finetune import BatchRunner as Old
    assert Old is BatchRunner
    # batching teacher calls is not fine-tuning
    assert not issubclass(BatchFailedError, raftkit.finetune.FineTuneError)

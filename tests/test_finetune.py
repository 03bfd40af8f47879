"""raftkit.finetune against the simulator over real HTTP: the whole lifecycle on OpenAI and
Azure, every request checked against the official specs, failures, dropped connections,
deduplicated uploads and the multipart uploads flow."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from finetune_support import Recorder, form_fields, training_jsonl
from openapi_schemas import validate, validate_azure
from raftkit.errors import APIConnectionError, NotFoundError, UsageError
from raftkit.finetune import (
    AzureAccount,
    AzureFineTuneProvider,
    AzureManagementClient,
    FileRejectedError,
    FineTuneJob,
    FineTuneJobFailedError,
    FineTuneProvider,
    Hyperparameters,
    JobEvent,
    OpenAIFineTuneProvider,
    PollPolicy,
    WaitTimeoutError,
    parse_result_csv,
)
from raftkit.finetune import __all__ as finetune_all
from raftkit.llm import AzureOpenAIClient, OpenAIClient, RetryPolicy
from raftkit.testing import Fault, FineTuningSettings, Simulator
from raftkit.testing._files import parse_multipart

pytestmark = pytest.mark.anyio

AZURE_API_VERSION = "2025-04-01-preview"
AZURE_SPEC = "azure/azure-authoring-preview-2025-04-01.json"
FAST = PollPolicy(initial=0.01, maximum=0.05, timeout=30.0)
FAIL_MARKER = FineTuningSettings().fail_jobs_with
ACCOUNT = AzureAccount(subscription_id="sub-1", resource_group="rg-raft", account_name="acct")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def openai_client(sim: Simulator, http: httpx.AsyncClient, **kw: Any) -> OpenAIClient:
    return OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, http_client=http, **kw)


def azure_client(sim: Simulator, http: httpx.AsyncClient, **kw: Any) -> AzureOpenAIClient:
    return AzureOpenAIClient(
        endpoint=sim.azure_endpoint,
        api_key=sim.api_key,
        api_version=AZURE_API_VERSION,
        http_client=http,
        **kw,
    )


# ---------------------------------------------------------------------------- the package


def test_public_names_are_exported() -> None:
    import raftkit.finetune as package

    assert sorted(finetune_all) == sorted(set(finetune_all))
    for name in finetune_all:
        assert hasattr(package, name), name
    assert issubclass(OpenAIFineTuneProvider, FineTuneProvider)
    assert issubclass(AzureFineTuneProvider, FineTuneProvider)


# ---------------------------------------------------------------------------- OpenAI


async def test_openai_lifecycle_end_to_end(
    raftkit_simulator: Simulator, recorder: Recorder
) -> None:
    sim = raftkit_simulator
    events: list[JobEvent] = []
    async with (
        recorder.client() as http,
        openai_client(sim, http) as client,
        OpenAIFineTuneProvider(client, poll=FAST) as provider,
    ):
        train = await provider.upload_file(training_jsonl(), filename="train.jsonl")
        valid = await provider.upload_file(training_jsonl(4), filename="validation.jsonl")
        assert train.purpose == "fine-tune"
        assert not train.reused
        assert train.filename.startswith("train-")
        assert train.filename.endswith(".jsonl")
        job = await provider.create_job(
            model="gpt-4o-mini",
            training_file=train.id,
            validation_file=valid.id,
            suffix="raft",
            seed=7,
            hyperparameters=Hyperparameters(n_epochs=2, batch_size=2, learning_rate_multiplier=0.5),
        )
        assert job.status in {"validating_files", "queued", "running"}
        done = await provider.wait(job.id, on_event=events.append)
        assert done.status == "succeeded"
        assert done.fine_tuned_model
        assert done.hyperparameters["n_epochs"] == 2
        assert done.fine_tuned_model.startswith("ft:gpt-4o-mini:")

        # every event once, oldest first, and exactly the job's events
        listed = [e async for e in provider.events(job.id)]
        assert [e.id for e in events] == [e.id for e in reversed(listed)]
        assert any("successfully completed" in e.message for e in events)

        checkpoints = [c async for c in provider.checkpoints(job.id)]
        assert checkpoints
        assert all(c.model.startswith(done.fine_tuned_model) for c in checkpoints)

        metrics = await provider.metrics(done)
        assert metrics.steps
        assert metrics.steps[0].step == 1
        assert metrics.last("train_loss") is not None
        assert metrics.last("valid_loss") is not None
        assert metrics.steps[-1].train_loss < metrics.steps[0].train_loss  # type: ignore[operator]

        model = await provider.deploy(done)
        assert model == done.fine_tuned_model
        answer = await client.chat([{"role": "user", "content": "Where is it?"}], model=model)
        assert answer.model == model
        assert answer.text

        listed_jobs = [j async for j in provider.list_jobs()]
        assert job.id in {j.id for j in listed_jobs}

    # the requests raftkit sent, against the official spec
    for exchange in recorder.find("POST", "/files"):
        validate("CreateFileRequest", form_fields(exchange))
        validate("OpenAIFile", exchange.response)
    created = recorder.find("POST", "/fine_tuning/jobs")
    assert len(created) == 1
    sent = json.loads(created[0].body)
    validate("CreateFineTuningJobRequest", sent)
    assert sent["method"] == {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {"n_epochs": 2, "batch_size": 2, "learning_rate_multiplier": 0.5}
        },
    }
    validate("FineTuningJob", created[0].response)
    for exchange in recorder.find("GET", f"/fine_tuning/jobs/{job.id}"):
        validate("FineTuningJob", exchange.response)
    for exchange in recorder.find("GET", "/events"):
        validate("ListFineTuningJobEventsResponse", exchange.response)
    for exchange in recorder.find("GET", "/checkpoints"):
        validate("ListFineTuningJobCheckpointsResponse", exchange.response)
    for exchange in recorder.find("GET", "/fine_tuning/jobs"):
        validate("ListPaginatedFineTuningJobsResponse", exchange.response)


async def test_identical_uploads_are_reused(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    content = training_jsonl()
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        provider = OpenAIFineTuneProvider(client)
        first = await provider.upload_file(content, filename="train.jsonl")
        # a fresh provider (a restarted run) finds it on the service, not in memory
        again = await OpenAIFineTuneProvider(client).upload_file(content, filename="train.jsonl")
        other = await provider.upload_file(training_jsonl(13), filename="train.jsonl")
        forced = await OpenAIFineTuneProvider(client, dedupe=False).upload_file(
            content, filename="train.jsonl"
        )
    assert again.id == first.id
    assert again.reused
    assert other.id != first.id
    assert not other.reused
    assert forced.id != first.id
    posts = [r for r in sim.requests if r.method == "POST" and r.path == "/v1/files"]
    assert len(posts) == 3


async def test_large_files_go_through_the_uploads_api(
    raftkit_simulator: Simulator, recorder: Recorder
) -> None:
    sim = raftkit_simulator
    content = training_jsonl(40)
    async with recorder.client() as http, openai_client(sim, http) as client:
        provider = OpenAIFineTuneProvider(client, uploads_threshold=1000, part_bytes=700)
        uploaded = await provider.upload_file(content, filename="big.jsonl")
        stored = await provider.files.content(uploaded.id)
    assert stored == content
    assert uploaded.bytes == len(content)
    assert uploaded.purpose == "fine-tune"
    assert not recorder.find("POST", "/v1/files")
    created = recorder.find("POST", "/uploads")
    validate("CreateUploadRequest", json.loads(created[0].body))
    validate("Upload", created[0].response)
    parts = recorder.find("POST", "/parts")
    assert len(parts) == -(-len(content) // 700)
    for part in parts:
        assert set(parse_multipart(part.body, part.content_type)) == {"data"}
        validate("UploadPart", part.response)
    completed = recorder.find("POST", "/complete")
    sent = json.loads(completed[0].body)
    validate("CompleteUploadRequest", sent)
    assert sent["md5"] == hashlib.md5(content).hexdigest()
    assert sent["part_ids"] == [p.response["id"] for p in parts]
    validate("Upload", completed[0].response)


async def test_a_failed_job_raises_with_the_services_reason(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    assert FAIL_MARKER is not None
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        provider = OpenAIFineTuneProvider(client, poll=FAST)
        train = await provider.upload_file(training_jsonl(extra=FAIL_MARKER), filename="t.jsonl")
        job = await provider.create_job(model="gpt-4o-mini", training_file=train.id)
        with pytest.raises(FineTuneJobFailedError) as caught:
            await provider.wait(job.id)
        returned = await provider.wait(job.id, raise_on_failure=False)
        with pytest.raises(UsageError, match="no result file"):
            await provider.metrics(returned)
    assert caught.value.job.status == "failed"
    assert "training_failed" in str(caught.value)
    assert "failure marker" in str(caught.value)
    assert returned.error is not None
    assert "failure marker" in returned.error.message


async def test_wait_survives_dropped_connections_and_resumes_by_id(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        provider = OpenAIFineTuneProvider(client, poll=FAST)
        train = await provider.upload_file(training_jsonl(), filename="train.jsonl")
        job = await provider.create_job(model="gpt-4o-mini", training_file=train.id)
    # a new process: another client and provider know only the job id; its polls lose their
    # connection more often than the request path retries (two attempts per call)
    sim.add_fault(Fault.drop(path="/fine_tuning/jobs"), times=5)
    seen: list[str] = []
    quick = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02)
    async with OpenAIClient(
        base_url=sim.base_url, api_key=sim.api_key, retry=quick, timeout=5
    ) as client:
        restarted = OpenAIFineTuneProvider(client, poll=FAST)
        done = await restarted.wait(job.id, on_event=lambda e: seen.append(e.id))
    assert done.status == "succeeded"
    assert sim.pending_faults == 0
    dropped = [r for r in sim.requests if r.status == 0 and "/fine_tuning/jobs" in r.path]
    assert len(dropped) == 5
    assert len(seen) == len(set(seen))


async def test_cancel_and_wait_returns_the_cancelled_job(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    from raftkit.testing import configure_fine_tuning

    configure_fine_tuning(sim.state, FineTuningSettings(running_seconds=30.0))
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        provider = OpenAIFineTuneProvider(client, poll=FAST)
        train = await provider.upload_file(training_jsonl(), filename="train.jsonl")
        job = await provider.create_job(model="gpt-4o-mini", training_file=train.id)
        cancelled = await provider.cancel_job(job.id)
        waited = await provider.wait(job.id)
    assert cancelled.status == "cancelled"
    assert waited.status == "cancelled"
    assert waited.fine_tuned_model is None


async def test_events_are_followed_across_pages(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        provider = OpenAIFineTuneProvider(client, poll=FAST)
        provider.page_size = 2
        train = await provider.upload_file(training_jsonl(), filename="train.jsonl")
        jobs = [
            await provider.create_job(model="gpt-4o-mini", training_file=train.id) for _ in range(3)
        ]
        events: list[JobEvent] = []
        await provider.wait(jobs[0].id, on_event=events.append)
        listed = [e async for e in provider.events(jobs[0].id)]
        all_jobs = [j.id async for j in provider.list_jobs()]
    assert len(listed) > 2 * provider.page_size
    assert [e.id for e in events] == [e.id for e in reversed(listed)]
    assert set(all_jobs) >= {j.id for j in jobs}
    pages = [r for r in sim.requests if r.path.endswith("/events") and "after" in r.query]
    assert pages


# ---------------------------------------------------------------------------- Azure


async def test_azure_lifecycle_end_to_end(
    raftkit_simulator_factory: Callable[..., Simulator], recorder: Recorder
) -> None:
    # chat allows only the base model, so the fine-tuned one answers only once it is deployed
    sim = raftkit_simulator_factory(chat_models=frozenset({"gpt-4o-mini"}))
    tokens: list[str] = []

    def token() -> str:
        tokens.append("arm-token")
        return "arm-token"

    async with (
        recorder.client() as http,
        azure_client(sim, http) as client,
        AzureManagementClient(
            token_provider=token, base_url=sim.management_endpoint, http_client=http
        ) as management,
        AzureFineTuneProvider(
            client,
            management=management,
            account=ACCOUNT,
            capacity=2,
            poll=FAST,
            file_poll=FAST,
            deployment_poll=FAST,
        ) as provider,
    ):
        train = await provider.upload_file(training_jsonl(), filename="train.jsonl")
        assert train.status == "processed"
        job = await provider.create_job(
            model="gpt-4o-mini",
            training_file=train.id,
            suffix="raft",
            hyperparameters=Hyperparameters(n_epochs=1),
        )
        events: list[JobEvent] = []
        done = await provider.wait(job.id, on_event=events.append)
        assert done.status == "succeeded"
        assert done.fine_tuned_model
        assert next(e.message for e in events).startswith("Created fine-tuning job")
        metrics = await provider.metrics(done)
        assert metrics.steps
        assert metrics.last("train_loss") is not None

        with pytest.raises(NotFoundError):
            await client.chat([{"role": "user", "content": "hi"}], model="raft-student")
        name = await provider.deploy(done, name="raft-student")
        assert name == "raft-student"
        deployment = await provider.get_deployment(name)
        assert deployment.provisioning_state == "Succeeded"
        assert deployment.model == done.fine_tuned_model
        assert deployment.capacity == 2
        answer = await client.chat([{"role": "user", "content": "长城有多长？"}], model=name)
        assert answer.text
        assert await provider.delete_deployment(name)
        with pytest.raises(NotFoundError):
            await provider.get_deployment(name)

    assert tokens  # the token provider was asked, and the token never reached a log
    puts = recorder.find("PUT", "/deployments/raft-student")
    assert json.loads(puts[0].body) == {
        "sku": {"name": "standard", "capacity": 2},
        "properties": {
            "model": {"format": "OpenAI", "name": done.fine_tuned_model, "version": "1"}
        },
    }
    assert puts[0].path.startswith(
        "/subscriptions/sub-1/resourceGroups/rg-raft/providers/Microsoft.CognitiveServices"
        "/accounts/acct/deployments/"
    )
    arm = [r for r in sim.requests if r.path.startswith("/subscriptions/")]
    assert arm
    assert all(r.query.get("api-version") == "2023-05-01" for r in arm)
    assert all("authorization" not in r.headers for r in arm)
    created = recorder.find("POST", "/openai/fine_tuning/jobs")
    validate_azure("FineTuningJobCreation", json.loads(created[0].body), spec=AZURE_SPEC)
    validate_azure("FineTuningJob", created[0].response, spec=AZURE_SPEC)
    for exchange in recorder.find("GET", "/events"):
        validate_azure("FineTuningJobEventList", exchange.response, spec=AZURE_SPEC)
    for exchange in recorder.find("GET", f"/openai/files/{train.id}"):
        validate_azure("File", exchange.response, spec=AZURE_SPEC)


async def test_azure_rejected_file_names_the_file(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    bad = b'{"messages": [{"role": "user", "content": "no answer"}]}\nnot json at all\n'
    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint, api_key=sim.api_key, api_version=AZURE_API_VERSION
    ) as client:
        provider = AzureFineTuneProvider(client, file_poll=FAST)
        with pytest.raises(FileRejectedError) as caught:
            await provider.upload_file(bad, filename="broken.jsonl")
    error = caught.value
    assert error.filename.startswith("broken-")
    assert error.file_id.startswith("file-")
    assert error.details is not None
    assert "Line 2" in error.details
    assert error.file_id in str(error)
    assert "Line 2" in str(error)


async def test_azure_deploy_without_management_is_a_usage_error(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint, api_key=sim.api_key, api_version=AZURE_API_VERSION
    ) as client:
        provider = AzureFineTuneProvider(client)
        with pytest.raises(UsageError, match="AzureManagementClient"):
            await provider.deploy("gpt-4o-mini.ft-abc")


async def test_azure_v1_surface_and_failed_deployment() -> None:
    """Deployment states come from ARM; a Failed one raises, naming the deployment."""
    states = iter(["Creating", "Creating", "Failed"])

    def arm(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer t0k"
        assert request.url.params["api-version"] == "2024-10-01"
        state = "Creating" if request.method == "PUT" else next(states)
        body = {
            "name": "student",
            "sku": {"name": "standard", "capacity": 1},
            "properties": {"model": {"name": "m.ft-1"}, "provisioningState": state},
        }
        return httpx.Response(201 if request.method == "PUT" else 200, json=body)

    from raftkit.finetune import DeploymentFailedError

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(arm)) as http,
        AzureManagementClient(
            token_provider=lambda: "t0k",
            base_url="https://management.example",
            api_version="2024-10-01",
            http_client=http,
        ) as management,
        AzureOpenAIClient(endpoint="https://r.example", api_key="k", v1=True) as client,
    ):
        provider = AzureFineTuneProvider(
            client, management=management, account=ACCOUNT, deployment_poll=FAST
        )
        with pytest.raises(DeploymentFailedError, match=r"student.*Failed"):
            await provider.deploy("m.ft-1", name="student")
        assert "t0k" not in repr(management)


# ---------------------------------------------------------------------------- wait, by hand


class ScriptedProvider(OpenAIFineTuneProvider):
    """Job states from a script: unknown states, connection failures, a final state."""

    def __init__(self, script: list[str | Exception]) -> None:
        self.script = script
        self.polls = 0
        self.default_poll = FAST

    async def get_job(self, job_id: str) -> FineTuneJob:
        step = self.script[min(self.polls, len(self.script) - 1)]
        self.polls += 1
        if isinstance(step, Exception):
            raise step
        return FineTuneJob(id=job_id, status=step, model="m")

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        for n in range(min(self.polls, 3), 0, -1):  # newest first, growing
            yield JobEvent(id=f"ev-{n}", created_at=n, level="info", message=f"event {n}")


async def test_wait_tolerates_unknown_states_and_connection_errors() -> None:
    provider = ScriptedProvider(
        ["queued", "paused_for_review", APIConnectionError("reset"), "running", "succeeded"]
    )
    events: list[str] = []

    async def record(event: JobEvent) -> None:
        events.append(event.id)

    job = await provider.wait("ftjob-1", on_event=record)
    assert job.status == "succeeded"
    assert events == ["ev-1", "ev-2", "ev-3"]


async def test_wait_gives_up_at_its_deadline() -> None:
    provider = ScriptedProvider(["mystery_state"])
    with pytest.raises(WaitTimeoutError) as caught:
        await provider.wait("ftjob-2", poll=PollPolicy(initial=0.01, maximum=0.01, timeout=0.05))
    assert caught.value.last_status == "mystery_state"
    assert "wait() on its id again" in str(caught.value)


async def test_wait_does_not_swallow_non_transient_errors() -> None:
    provider = ScriptedProvider([NotFoundError("no such job", status_code=404)])
    with pytest.raises(NotFoundError):
        await provider.wait("ftjob-3")


# ---------------------------------------------------------------------------- result files


def test_result_csv_of_openai_and_azure() -> None:
    openai_csv = (
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
        "1,2.5,0.4,,\n2,1.5,0.6,1.7,0.55\n"
    )
    parsed = parse_result_csv(openai_csv.encode(), file_id="file-1")
    assert [s.step for s in parsed.steps] == [1, 2]
    assert parsed.steps[0].valid_loss is None
    assert parsed.last("valid_accuracy") == 0.55
    assert parsed.final is not None
    azure_csv = (
        "step,train_loss,train_mean_token_accuracy,valid_loss,validation_mean_token_accuracy,"
        "full_valid_loss,full_valid_mean_token_accuracy\n"
        "2,0.9,0.7,1.0,0.66,1.1,0.65\n1,1.2,0.5,,,,\n"
    )
    azure = parse_result_csv(azure_csv)
    assert [s.step for s in azure.steps] == [1, 2]
    assert azure.steps[1].train_accuracy == 0.7
    assert azure.steps[1].valid_accuracy == 0.66
    assert azure.last("full_valid_loss") == 1.1
    assert "2 steps" in azure.render()
    with pytest.raises(Exception, match="step"):
        parse_result_csv("loss\n1.0\n")

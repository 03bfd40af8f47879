"""The simulator's fine-tuning side over real HTTP: files, uploads, fine-tuning jobs, batches
and Azure management deployments, checked against the official schemas and with the official
``openai`` package as an independent client."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import openai
import pytest

from openapi_schemas import validate, validate_azure
from raftkit.testing import Simulator
from raftkit.testing._batches import BatchSettings, configure_batches
from raftkit.testing._deployments import DeploymentSettings, configure_deployments
from raftkit.testing._files import (
    FileSettings,
    configure_files,
    inspect_training_data,
    parse_multipart,
)
from raftkit.testing._finetune import FineTuningSettings, configure_fine_tuning

pytestmark = pytest.mark.anyio

AZURE_2024 = "azure/azure-authoring-preview-2024-10-01.json"
AZURE_2025 = "azure/azure-authoring-preview-2025-04-01.json"
AZURE_VERSIONS = {"2024-10-01-preview": AZURE_2024, "2025-04-01-preview": AZURE_2025}
FAIL_MARKER = FineTuningSettings().fail_jobs_with
OPENAI_STATES = ["validating_files", "queued", "running", "succeeded"]
AZURE_STATES = ["created", "pending", "running", "succeeded"]
MANAGEMENT = (
    "/subscriptions/sub-1/resourceGroups/rg-raft/providers/Microsoft.CognitiveServices"
    "/accounts/acct-raft/deployments"
)


def example(question: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Answer from the documents."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def training_jsonl(count: int = 6, *, extra: str = "") -> bytes:
    records = [
        example("Where is the Eiffel Tower?", "It is in Paris."),
        example("长城有多长？", "长城的总长度超过两万公里。"),
    ]
    lines = [json.dumps(records[i % 2], ensure_ascii=False) for i in range(count)]
    if extra:
        lines.append(json.dumps(example(extra, "Noted."), ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def openai_client(sim: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=sim.base_url,
        headers={"Authorization": f"Bearer {sim.api_key}"},
        timeout=10,
    )


def azure_client(sim: Simulator, api_version: str = "2024-10-01-preview") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{sim.azure_endpoint}/openai",
        headers={"api-key": sim.api_key},
        params={"api-version": api_version},
        timeout=10,
    )


def sdk(sim: Simulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0)


async def upload(
    client: httpx.AsyncClient, content: bytes, purpose: str, name: str = "data.jsonl"
) -> dict[str, Any]:
    response = await client.post(
        "/files", files={"file": (name, content, "application/jsonl")}, data={"purpose": purpose}
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def poll(
    fetch: Callable[[], Awaitable[dict[str, Any]]],
    done: Callable[[dict[str, Any]], bool],
) -> list[dict[str, Any]]:
    """Every distinct state seen until ``done``; a deadline, not a timing assertion."""
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        while True:
            current = await fetch()
            seen.append(current)
            if done(current):
                return seen
            await anyio.sleep(0.01)


class ManualClock:
    """Replaces the simulator's clock so a test decides when time passes."""

    def __init__(self, sim: Simulator) -> None:
        self.now = sim.state.clock()
        sim.state.clock = self

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        # a hair more, so float rounding never leaves a boundary just out of reach
        self.now += seconds + 1e-6


def in_order(observed: list[str], expected: list[str]) -> bool:
    """``observed`` (with repeats) walks ``expected`` forwards only."""
    positions = [expected.index(status) for status in observed]
    return positions == sorted(positions)


# ---------------------------------------------------------------- pure helpers


async def test_multipart_parser_keeps_binary_and_cjk_names_intact() -> None:
    payload = bytes(range(256)) * 3 + "长城\r\n--not-a-boundary".encode()
    request = httpx.Request(
        "POST",
        "http://x/",
        files={"file": ("训练.jsonl", payload, "application/octet-stream")},
        data={"purpose": "fine-tune"},
    )
    body = request.read()
    parts = parse_multipart(body, request.headers["content-type"])
    assert parts["file"].data == payload
    assert parts["file"].filename == "训练.jsonl"
    assert parts["purpose"].data == b"fine-tune"
    with pytest.raises(ValueError, match="multipart"):
        parse_multipart(body, "application/json")


async def test_training_data_inspection_names_the_bad_lines() -> None:
    good = inspect_training_data(training_jsonl(4))
    assert (good.examples, good.problem) == (4, None)
    assert good.tokens > 0
    broken = b'{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n\n[1]\n'
    report = inspect_training_data(broken)
    assert report.problem is not None
    assert "Line 1: the example has no assistant message" in report.problem
    assert "Line 2: not valid JSON" in report.problem
    assert "Line 4: expected a JSON object" in report.problem
    assert inspect_training_data(b"").problem == "The training file has no examples."
    assert "not UTF-8" in str(inspect_training_data(b"\xff\xfe").problem)


# ---------------------------------------------------------------- files and uploads


async def test_files_round_trip_on_openai(raftkit_simulator: Simulator) -> None:
    data = training_jsonl()
    async with openai_client(raftkit_simulator) as client:
        created = await upload(client, data, "fine-tune", "训练数据.jsonl")
        validate("OpenAIFile", created)
        assert created["status"] == "processed"
        assert created["bytes"] == len(data)
        assert created["filename"] == "训练数据.jsonl"
        batch_file = await upload(client, b'{"custom_id": "a"}\n', "batch")

        listing = (await client.get("/files")).json()
        validate("ListFilesResponse", listing)
        assert [f["id"] for f in listing["data"]] == [batch_file["id"], created["id"]]
        only_fine_tune = (await client.get("/files", params={"purpose": "fine-tune"})).json()
        assert [f["id"] for f in only_fine_tune["data"]] == [created["id"]]
        first_page = (await client.get("/files", params={"limit": 1, "order": "asc"})).json()
        assert first_page["has_more"] is True
        assert first_page["data"][0]["id"] == created["id"]

        retrieved = (await client.get(f"/files/{created['id']}")).json()
        validate("OpenAIFile", retrieved)
        content = await client.get(f"/files/{created['id']}/content")
        assert content.content == data

        deleted = (await client.delete(f"/files/{created['id']}")).json()
        validate("DeleteFileResponse", deleted)
        assert deleted == {"id": created["id"], "object": "file", "deleted": True}
        missing = await client.get(f"/files/{created['id']}")
        assert missing.status_code == 404
        validate("ErrorResponse", missing.json())

        no_purpose = await client.post("/files", files={"file": ("a.jsonl", b"{}")})
        assert no_purpose.status_code == 400
        assert no_purpose.json()["error"]["param"] == "purpose"


async def test_large_files_must_use_the_uploads_flow(raftkit_simulator: Simulator) -> None:
    configure_files(raftkit_simulator.state, FileSettings(max_file_bytes=64))
    data = training_jsonl(5)
    assert len(data) > 64
    async with openai_client(raftkit_simulator) as client:
        too_big = await client.post(
            "/files", files={"file": ("big.jsonl", data)}, data={"purpose": "fine-tune"}
        )
        assert too_big.status_code == 413
        validate("ErrorResponse", too_big.json())
        assert "/uploads" in too_big.json()["error"]["message"]

        request = {
            "filename": "big.jsonl",
            "purpose": "fine-tune",
            "bytes": len(data),
            "mime_type": "text/jsonl",
        }
        validate("CreateUploadRequest", request)
        created = (await client.post("/uploads", json=request)).json()
        validate("Upload", created)
        assert created["status"] == "pending"
        pieces = [data[:100], data[100:200], data[200:]]
        part_ids = []
        for piece in pieces:
            response = await client.post(
                f"/uploads/{created['id']}/parts", files={"data": ("blob", piece)}
            )
            assert response.status_code == 200, response.text
            validate("UploadPart", response.json())
            part_ids.append(response.json()["id"])

        wrong_md5 = await client.post(
            f"/uploads/{created['id']}/complete", json={"part_ids": part_ids, "md5": "0" * 32}
        )
        assert wrong_md5.status_code == 400
        short = await client.post(
            f"/uploads/{created['id']}/complete", json={"part_ids": part_ids[:2]}
        )
        assert short.status_code == 400
        assert "bytes" in short.json()["error"]["message"]

        completed = await client.post(
            f"/uploads/{created['id']}/complete",
            json={"part_ids": part_ids, "md5": hashlib.md5(data).hexdigest()},
        )
        assert completed.status_code == 200, completed.text
        body = completed.json()
        validate("Upload", body)
        assert body["status"] == "completed"
        validate("OpenAIFile", body["file"])
        content = await client.get(f"/files/{body['file']['id']}/content")
        assert content.content == data

        again = await client.post(f"/uploads/{created['id']}/parts", files={"data": ("b", b"x")})
        assert again.status_code == 400

        other = (await client.post("/uploads", json=request)).json()
        cancelled = (await client.post(f"/uploads/{other['id']}/cancel")).json()
        validate("Upload", cancelled)
        assert cancelled["status"] == "cancelled"


async def test_openai_package_uploads_in_chunks(raftkit_simulator: Simulator) -> None:
    data = training_jsonl(40)
    async with sdk(raftkit_simulator) as client:
        result = await client.uploads.upload_file_chunked(
            file=data,
            filename="chunked.jsonl",
            bytes=len(data),
            mime_type="text/jsonl",
            purpose="fine-tune",
            part_size=512,
        )
        assert result.status == "completed"
        assert result.file is not None
        content = await client.files.content(result.file.id)
        assert content.read() == data


@pytest.mark.parametrize("api_version", sorted(AZURE_VERSIONS))
async def test_azure_files_are_processed_before_use(
    raftkit_simulator: Simulator, api_version: str
) -> None:
    spec = AZURE_VERSIONS[api_version]
    clock = ManualClock(raftkit_simulator)
    settings = FileSettings()
    async with azure_client(raftkit_simulator, api_version) as client:
        good = await upload(client, training_jsonl(), "fine-tune")
        broken = await upload(client, b'{"messages": "nope"}\n{not json\n', "fine-tune")

        async def fetch(file_id: str) -> dict[str, Any]:
            response = await client.get(f"/files/{file_id}")
            body: dict[str, Any] = response.json()
            validate_azure("File", body, spec=spec)
            return body

        for created in (good, broken):
            validate_azure("File", created, spec=spec)
            assert created["status"] == "pending"
        clock.advance(settings.azure_pending_seconds)
        assert (await fetch(good["id"]))["status"] == "running"
        assert (await fetch(broken["id"]))["status"] == "running"
        clock.advance(settings.azure_processing_seconds)
        assert (await fetch(good["id"]))["status"] == "processed"
        final = await fetch(broken["id"])
        assert final["status"] == "error"
        assert "Line 1" in final["status_details"]
        assert "Line 2: not valid JSON" in final["status_details"]

        job = await client.post(
            "/fine_tuning/jobs", json={"model": "gpt-4o-mini", "training_file": broken["id"]}
        )
        assert job.status_code == 400
        validate_azure("ErrorResponse", job.json(), spec=spec)
        assert job.json()["error"]["code"] == "jsonlValidationFailed"

        listing = (await client.get("/files")).json()
        validate_azure("FileList", listing, spec=spec)
        assert {f["id"] for f in listing["data"]} == {good["id"], broken["id"]}
        deleted = (await client.delete(f"/files/{good['id']}")).json()
        validate_azure("FileDelete", deleted, spec=spec)
        missing = await client.get(f"/files/{good['id']}")
        assert missing.status_code == 404
        validate_azure("ErrorResponse", missing.json(), spec=spec)


async def test_azure_v1_surface_speaks_openai_file_states(raftkit_simulator: Simulator) -> None:
    clock = ManualClock(raftkit_simulator)
    async with httpx.AsyncClient(
        base_url=f"{raftkit_simulator.azure_endpoint}/openai/v1",
        headers={"api-key": raftkit_simulator.api_key},
    ) as client:
        created = await upload(client, training_jsonl(), "fine-tune")
        validate("OpenAIFile", created)
        assert created["status"] == "uploaded"

        async def fetch() -> dict[str, Any]:
            body: dict[str, Any] = (await client.get(f"/files/{created['id']}")).json()
            validate("OpenAIFile", body)
            return body

        clock.advance(FileSettings().azure_pending_seconds)
        assert (await fetch())["status"] == "uploaded"
        clock.advance(FileSettings().azure_processing_seconds)
        assert (await fetch())["status"] == "processed"


# ---------------------------------------------------------------- fine-tuning jobs


@pytest.mark.raftkit_simulator(chat_models=frozenset({"gpt-4o-mini"}))
async def test_fine_tuning_job_lifecycle_on_openai(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with openai_client(sim) as client:
        training = await upload(client, training_jsonl(8), "fine-tune")
        validation = await upload(client, training_jsonl(2), "fine-tune")
        request = {
            "model": "gpt-4o-mini",
            "training_file": training["id"],
            "validation_file": validation["id"],
            "suffix": "raft",
            "seed": 7,
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 2}},
            },
        }
        validate("CreateFineTuningJobRequest", request)
        created = await client.post("/fine_tuning/jobs", json=request)
        assert created.status_code == 200, created.text
        job = created.json()
        validate("FineTuningJob", job)
        assert job["hyperparameters"]["n_epochs"] == 3
        assert job["hyperparameters"]["batch_size"] == 2
        assert job["seed"] == 7

        async def fetch() -> dict[str, Any]:
            body: dict[str, Any] = (await client.get(f"/fine_tuning/jobs/{job['id']}")).json()
            validate("FineTuningJob", body)
            return body

        history = await poll(fetch, lambda b: b["status"] in ("succeeded", "failed"))
        assert in_order([b["status"] for b in history], OPENAI_STATES)
        final = history[-1]
        assert final["status"] == "succeeded"
        assert final["error"] is None
        model = final["fine_tuned_model"]
        assert re.fullmatch(r"ft:gpt-4o-mini:raftkit-simulator:raft:[0-9a-f]{8}", model)
        assert final["trained_tokens"] == inspect_training_data(training_jsonl(8)).tokens * 3
        assert final["finished_at"] >= final["created_at"]

        events = (await client.get(f"/fine_tuning/jobs/{job['id']}/events?limit=100")).json()
        validate("ListFineTuningJobEventsResponse", events)
        messages = [e["message"] for e in events["data"]]
        assert messages[0] == "The job has successfully completed"
        assert messages[-1] == f"Created fine-tuning job: {job['id']}"
        steps = [e for e in events["data"] if e["type"] == "metrics"]
        assert steps
        assert re.fullmatch(
            r"Step \d+/12: training loss=\d+\.\d\d, validation loss=\d+\.\d\d", steps[0]["message"]
        )
        assert steps[0]["data"]["step"] == 12  # newest first
        first_page = (await client.get(f"/fine_tuning/jobs/{job['id']}/events?limit=3")).json()
        assert first_page["has_more"] is True
        after = first_page["data"][-1]["id"]
        second_page = (
            await client.get(f"/fine_tuning/jobs/{job['id']}/events?limit=3&after={after}")
        ).json()
        assert [e["id"] for e in first_page["data"] + second_page["data"]] == [
            e["id"] for e in events["data"][:6]
        ]

        checkpoints = (await client.get(f"/fine_tuning/jobs/{job['id']}/checkpoints")).json()
        validate("ListFineTuningJobCheckpointsResponse", checkpoints)
        assert [c["step_number"] for c in checkpoints["data"]] == [12, 8, 4]
        for checkpoint in checkpoints["data"]:
            name = checkpoint["fine_tuned_model_checkpoint"]
            assert name == f"{model}:ckpt-step-{checkpoint['step_number']}"
            assert "valid_loss" in checkpoint["metrics"]

        results = await client.get(f"/files/{final['result_files'][0]}/content")
        rows = results.text.splitlines()
        assert rows[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
        assert len(rows) == 13
        result_file = (await client.get(f"/files/{final['result_files'][0]}")).json()
        validate("OpenAIFile", result_file)
        assert result_file["purpose"] == "fine-tune-results"

        chat = await client.post(
            "/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "Hello?"}]},
        )
        assert chat.status_code == 200, chat.text
        validate("CreateChatCompletionResponse", chat.json())
        checkpoint_chat = await client.post(
            "/chat/completions",
            json={
                "model": checkpoints["data"][-1]["fine_tuned_model_checkpoint"],
                "messages": [{"role": "user", "content": "你好？"}],
            },
        )
        assert checkpoint_chat.status_code == 200


@pytest.mark.raftkit_simulator(chat_models=frozenset({"gpt-4o-mini"}))
async def test_fine_tuned_model_is_unknown_until_the_job_succeeds(
    raftkit_simulator: Simulator,
) -> None:
    ManualClock(raftkit_simulator)  # time stands still: the job never finishes
    async with openai_client(raftkit_simulator) as client:
        training = await upload(client, training_jsonl(), "fine-tune")
        job = (
            await client.post(
                "/fine_tuning/jobs",
                json={"model": "gpt-4o-mini", "training_file": training["id"], "suffix": "x"},
            )
        ).json()
        expected = f"ft:gpt-4o-mini:raftkit-simulator:x:{job['id'].removeprefix('ftjob-')[:8]}"
        chat = await client.post(
            "/chat/completions",
            json={"model": expected, "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert chat.status_code == 404
        assert chat.json()["error"]["code"] == "model_not_found"


async def test_openai_package_drives_jobs_and_cancels_one(raftkit_simulator: Simulator) -> None:
    async with sdk(raftkit_simulator) as client:
        training = await client.files.create(
            file=("train.jsonl", training_jsonl()), purpose="fine-tune"
        )
        assert training.status == "processed"
        job = await client.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=training.id,
            hyperparameters={"n_epochs": 2},
            suffix="sdk",
        )
        with anyio.fail_after(20):
            while job.status not in ("succeeded", "failed", "cancelled"):
                await anyio.sleep(0.01)
                job = await client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "succeeded"
        assert job.fine_tuned_model is not None
        assert job.fine_tuned_model.startswith("ft:gpt-4o-mini:raftkit-simulator:sdk:")

        events = await client.fine_tuning.jobs.list_events(job.id, limit=5)
        assert events.data[0].message == "The job has successfully completed"
        every_event = [event async for event in client.fine_tuning.jobs.list_events(job.id)]
        assert every_event[-1].message.startswith("Created fine-tuning job")
        assert len({e.id for e in every_event}) == len(every_event) > 5

        checkpoints = await client.fine_tuning.jobs.checkpoints.list(job.id)
        assert [c.step_number for c in checkpoints.data] == [12, 6]

        configure_fine_tuning(raftkit_simulator.state, FineTuningSettings(queued_seconds=60))
        slow = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
        cancelled = await client.fine_tuning.jobs.cancel(slow.id)
        assert cancelled.status == "cancelled"
        assert cancelled.fine_tuned_model is None
        with pytest.raises(openai.BadRequestError):
            await client.fine_tuning.jobs.cancel(slow.id)
        slow_events = await client.fine_tuning.jobs.list_events(slow.id)
        assert slow_events.data[0].message == "Fine-tuning job cancelled"

        listed = [j.id async for j in client.fine_tuning.jobs.list(limit=1)]
        assert listed == [slow.id, job.id]
        with pytest.raises(openai.NotFoundError):
            await client.fine_tuning.jobs.retrieve("ftjob-missing")


async def test_a_marked_training_file_makes_the_job_fail(raftkit_simulator: Simulator) -> None:
    assert FAIL_MARKER is not None
    async with openai_client(raftkit_simulator) as client:
        training = await upload(client, training_jsonl(6, extra=FAIL_MARKER), "fine-tune")
        job = (
            await client.post(
                "/fine_tuning/jobs",
                json={
                    "model": "gpt-4o-mini",
                    "training_file": training["id"],
                    "hyperparameters": {"n_epochs": 2},
                },
            )
        ).json()

        async def fetch() -> dict[str, Any]:
            body: dict[str, Any] = (await client.get(f"/fine_tuning/jobs/{job['id']}")).json()
            validate("FineTuningJob", body)
            return body

        history = await poll(fetch, lambda b: b["status"] in ("succeeded", "failed"))
        final = history[-1]
        assert final["status"] == "failed"
        assert final["fine_tuned_model"] is None
        assert final["error"]["code"] == "training_failed"
        assert final["error"]["param"] is None
        assert FAIL_MARKER in final["error"]["message"]
        events = (await client.get(f"/fine_tuning/jobs/{job['id']}/events")).json()
        assert events["data"][0]["level"] == "error"
        assert events["data"][0]["message"] == final["error"]["message"]


async def test_invalid_training_data_fails_the_job_at_validation(
    raftkit_simulator: Simulator,
) -> None:
    broken = b'{"messages": [{"role": "user", "content": "no answer"}]}\n'
    async with openai_client(raftkit_simulator) as client:
        training = await upload(client, broken, "fine-tune")
        assert training["status"] == "processed"  # OpenAI reports bad data on the job
        job = (
            await client.post(
                "/fine_tuning/jobs", json={"model": "gpt-4o-mini", "training_file": training["id"]}
            )
        ).json()

        async def fetch() -> dict[str, Any]:
            body: dict[str, Any] = (await client.get(f"/fine_tuning/jobs/{job['id']}")).json()
            validate("FineTuningJob", body)
            return body

        final = (await poll(fetch, lambda b: b["status"] in ("succeeded", "failed")))[-1]
        assert final["status"] == "failed"
        assert final["error"]["code"] == "invalid_training_file"
        assert final["error"]["param"] == "training_file"
        assert "Line 1: the example has no assistant message" in final["error"]["message"]
        checkpoints = (await client.get(f"/fine_tuning/jobs/{job['id']}/checkpoints")).json()
        validate("ListFineTuningJobCheckpointsResponse", checkpoints)
        assert checkpoints["data"] == []


async def test_bad_job_requests_are_rejected(raftkit_simulator: Simulator) -> None:
    configure_fine_tuning(
        raftkit_simulator.state, FineTuningSettings(fine_tunable_models=frozenset({"gpt-4o-mini"}))
    )
    async with openai_client(raftkit_simulator) as client:
        training = await upload(client, training_jsonl(), "fine-tune")
        batch_file = await upload(client, b"{}\n", "batch")
        cases: list[tuple[dict[str, Any], str]] = [
            ({"training_file": training["id"]}, "model"),
            ({"model": "gpt-4o", "training_file": training["id"]}, "model"),
            ({"model": "gpt-4o-mini"}, "training_file"),
            ({"model": "gpt-4o-mini", "training_file": "file-nope"}, "training_file"),
            ({"model": "gpt-4o-mini", "training_file": batch_file["id"]}, "training_file"),
            (
                {
                    "model": "gpt-4o-mini",
                    "training_file": training["id"],
                    "hyperparameters": {"n_epochs": 51},
                },
                "hyperparameters.n_epochs",
            ),
            (
                {
                    "model": "gpt-4o-mini",
                    "training_file": training["id"],
                    "method": {"type": "reinforcement", "reinforcement": {}},
                },
                "method.type",
            ),
            (
                {"model": "gpt-4o-mini", "training_file": training["id"], "suffix": "s" * 65},
                "suffix",
            ),
        ]
        for body, param in cases:
            response = await client.post("/fine_tuning/jobs", json=body)
            assert response.status_code == 400, (body, response.text)
            validate("ErrorResponse", response.json())
            assert response.json()["error"]["param"] == param


@pytest.mark.parametrize("api_version", sorted(AZURE_VERSIONS))
async def test_fine_tuning_job_lifecycle_on_azure(
    raftkit_simulator: Simulator, api_version: str
) -> None:
    spec = AZURE_VERSIONS[api_version]
    async with azure_client(raftkit_simulator, api_version) as client:
        training = await upload(client, training_jsonl(), "fine-tune")
        created = await client.post(
            "/fine_tuning/jobs",
            json={
                "model": "gpt-4o-mini-2024-07-18",
                "training_file": training["id"],
                "suffix": "raft",
                "hyperparameters": {"n_epochs": 1},
            },
        )
        assert created.status_code == 201, created.text
        job = created.json()
        validate_azure("FineTuningJob", job, spec=spec)

        async def fetch() -> dict[str, Any]:
            body: dict[str, Any] = (await client.get(f"/fine_tuning/jobs/{job['id']}")).json()
            validate_azure("FineTuningJob", body, spec=spec)
            return body

        history = await poll(fetch, lambda b: b["status"] in ("succeeded", "failed"))
        assert in_order([b["status"] for b in history], AZURE_STATES)
        final = history[-1]
        assert final["status"] == "succeeded"
        short = job["id"].removeprefix("ftjob-")
        assert final["fine_tuned_model"] == f"gpt-4o-mini-2024-07-18.ft-{short}-raft"
        assert "organization_id" not in final
        assert final["organisation_id"] == "org-raftkit-simulator"

        events = (await client.get(f"/fine_tuning/jobs/{job['id']}/events")).json()
        validate_azure("FineTuningJobEventList", events, spec=spec)
        checkpoints = (await client.get(f"/fine_tuning/jobs/{job['id']}/checkpoints")).json()
        validate_azure("FineTuningJobCheckpointList", checkpoints, spec=spec)
        assert len(checkpoints["data"]) == 1
        listing = (await client.get("/fine_tuning/jobs")).json()
        validate_azure("FineTuningJobList", listing, spec=spec)

        deleted = await client.delete(f"/fine_tuning/jobs/{job['id']}")
        assert deleted.status_code == 204
        gone = await client.get(f"/fine_tuning/jobs/{job['id']}")
        assert gone.status_code == 404
        validate_azure("ErrorResponse", gone.json(), spec=spec)
        assert gone.json()["error"]["code"] == "notFound"


async def test_openai_package_speaks_to_the_azure_surface(raftkit_simulator: Simulator) -> None:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=raftkit_simulator.azure_endpoint,
        api_key=raftkit_simulator.api_key,
        api_version="2025-04-01-preview",
        max_retries=0,
    ) as client:
        training = await client.files.create(
            file=("train.jsonl", training_jsonl()), purpose="fine-tune"
        )
        with anyio.fail_after(20):
            while training.status != "processed":
                await anyio.sleep(0.01)
                training = await client.files.retrieve(training.id)
        job = await client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
        with anyio.fail_after(20):
            while job.status not in ("succeeded", "failed", "cancelled"):
                await anyio.sleep(0.01)
                job = await client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "succeeded"
        assert job.fine_tuned_model is not None
        assert ".ft-" in job.fine_tuned_model


@pytest.mark.parametrize("surface", ["openai", "azure"])
async def test_job_states_follow_the_clock(raftkit_simulator: Simulator, surface: str) -> None:
    clock = ManualClock(raftkit_simulator)
    settings = FineTuningSettings()
    names = OPENAI_STATES if surface == "openai" else AZURE_STATES
    make = openai_client if surface == "openai" else azure_client
    async with make(raftkit_simulator) as client:
        training = await upload(client, training_jsonl(4), "fine-tune")
        clock.advance(1.0)  # past Azure's file processing
        created = await client.post(
            "/fine_tuning/jobs",
            json={
                "model": "gpt-4o-mini",
                "training_file": training["id"],
                "hyperparameters": {"n_epochs": 1, "batch_size": 1},
            },
        )
        job = created.json()

        async def status() -> str:
            body = (await client.get(f"/fine_tuning/jobs/{job['id']}")).json()
            if surface == "openai":
                validate("FineTuningJob", body)
            else:
                validate_azure("FineTuningJob", body, spec=AZURE_2024)
            return str(body["status"])

        assert job["status"] == names[0]
        clock.advance(settings.validating_seconds)
        assert await status() == names[1]
        clock.advance(settings.queued_seconds)
        assert await status() == names[2]
        clock.advance(settings.running_seconds / 2)
        events = (await client.get(f"/fine_tuning/jobs/{job['id']}/events")).json()
        steps = [e["data"]["step"] for e in events["data"] if e["type"] == "metrics"]
        assert steps == [2, 1]  # half of the 4 steps, newest first
        clock.advance(settings.running_seconds / 2)
        assert await status() == names[3]


# ---------------------------------------------------------------- batches


def batch_line(custom_id: str, content: str, model: str = "gpt-4o-mini") -> str:
    return json.dumps(
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": content}]},
        },
        ensure_ascii=False,
    )


async def run_batch(
    client: httpx.AsyncClient, lines: list[str], *, endpoint: str = "/v1/chat/completions"
) -> list[dict[str, Any]]:
    source = await upload(client, ("\n".join(lines) + "\n").encode(), "batch")
    created = await client.post(
        "/batches",
        json={"input_file_id": source["id"], "endpoint": endpoint, "completion_window": "24h"},
    )
    assert created.status_code in (200, 201), created.text
    batch = created.json()

    async def fetch() -> dict[str, Any]:
        body: dict[str, Any] = (await client.get(f"/batches/{batch['id']}")).json()
        return body

    return await poll(fetch, lambda b: b["status"] in ("completed", "failed", "cancelled"))


async def jsonl(client: httpx.AsyncClient, file_id: str) -> list[dict[str, Any]]:
    text = (await client.get(f"/files/{file_id}/content")).text
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.raftkit_simulator(chat_models=frozenset({"gpt-4o-mini"}))
async def test_batch_lifecycle_answers_every_line(raftkit_simulator: Simulator) -> None:
    lines = [
        batch_line("en", "Where is the Eiffel Tower?"),
        batch_line("zh", "长城有多长？"),
        json.dumps(
            {
                "custom_id": "bad-body",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": []},
            }
        ),
    ]
    async with openai_client(raftkit_simulator) as client:
        history = await run_batch(client, lines)
        for state in history:
            validate("Batch", state)
        statuses = [b["status"] for b in history]
        assert in_order(statuses, ["validating", "in_progress", "finalizing", "completed"])
        final = history[-1]
        assert final["status"] == "completed"
        assert final["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
        assert final["created_at"] <= final["in_progress_at"] <= final["completed_at"]
        assert final["usage"]["total_tokens"] > 0
        counts = [b["request_counts"]["completed"] + b["request_counts"]["failed"] for b in history]
        assert counts == sorted(counts)

        output = await jsonl(client, final["output_file_id"])
        assert [line["custom_id"] for line in output] == ["en", "zh"]
        for line in output:
            assert line["response"]["status_code"] == 200
            assert line["error"] is None
            validate("CreateChatCompletionResponse", line["response"]["body"])
        errors = await jsonl(client, final["error_file_id"])
        assert [line["custom_id"] for line in errors] == ["bad-body"]
        assert errors[0]["response"]["status_code"] == 400
        validate("ErrorResponse", errors[0]["response"]["body"])
        output_file = (await client.get(f"/files/{final['output_file_id']}")).json()
        validate("OpenAIFile", output_file)
        assert output_file["purpose"] == "batch_output"

        listing = (await client.get("/batches")).json()
        validate("ListBatchesResponse", listing)
        assert [b["id"] for b in listing["data"]] == [final["id"]]


async def test_batch_of_embeddings(raftkit_simulator: Simulator) -> None:
    lines = [
        json.dumps(
            {
                "custom_id": f"e{i}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "text-embedding-3-small", "input": text, "dimensions": 8},
            },
            ensure_ascii=False,
        )
        for i, text in enumerate(["Paris", "巴黎"])
    ]
    async with openai_client(raftkit_simulator) as client:
        final = (await run_batch(client, lines, endpoint="/v1/embeddings"))[-1]
        validate("Batch", final)
        assert final["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
        for line in await jsonl(client, final["output_file_id"]):
            validate("CreateEmbeddingResponse", line["response"]["body"])
            assert len(line["response"]["body"]["data"][0]["embedding"]) == 8


async def test_malformed_batch_input_fails_the_batch(raftkit_simulator: Simulator) -> None:
    lines = [
        batch_line("a", "One?"),
        "{not json",
        batch_line("a", "Duplicate id?"),
        json.dumps({"custom_id": "b", "method": "GET", "url": "/v1/chat/completions", "body": {}}),
    ]
    async with openai_client(raftkit_simulator) as client:
        history = await run_batch(client, lines)
        final = history[-1]
        validate("Batch", final)
        assert final["status"] == "failed"
        assert "failed_at" in final
        assert "output_file_id" not in final
        codes = [(e["code"], e["line"]) for e in final["errors"]["data"]]
        assert codes == [
            ("invalid_json_line", 2),
            ("duplicate_custom_id", 3),
            ("invalid_method", 4),
        ]

        wrong_purpose = await upload(client, training_jsonl(), "fine-tune")
        response = await client.post(
            "/batches",
            json={
                "input_file_id": wrong_purpose["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        assert response.status_code == 400
        validate("ErrorResponse", response.json())
        assert response.json()["error"]["param"] == "input_file_id"


async def test_openai_package_creates_and_cancels_batches(raftkit_simulator: Simulator) -> None:
    content = ("\n".join(batch_line(f"q{i}", f"Question {i}?") for i in range(3)) + "\n").encode()
    async with sdk(raftkit_simulator) as client:
        source = await client.files.create(file=("in.jsonl", content), purpose="batch")
        batch = await client.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        with anyio.fail_after(20):
            while batch.status not in ("completed", "failed", "cancelled"):
                await anyio.sleep(0.01)
                batch = await client.batches.retrieve(batch.id)
        assert batch.status == "completed"
        assert batch.request_counts is not None
        assert batch.request_counts.completed == 3
        assert batch.output_file_id is not None
        output = (await client.files.content(batch.output_file_id)).text
        assert sorted(json.loads(line)["custom_id"] for line in output.splitlines()) == [
            "q0",
            "q1",
            "q2",
        ]

        configure_batches(raftkit_simulator.state, BatchSettings(validating_seconds=60))
        slow = await client.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        cancelling = await client.batches.cancel(slow.id)
        assert cancelling.status == "cancelling"
        with anyio.fail_after(20):
            while slow.status != "cancelled":
                await anyio.sleep(0.01)
                slow = await client.batches.retrieve(slow.id)
        assert slow.cancelled_at is not None
        assert slow.output_file_id is None
        with pytest.raises(openai.BadRequestError):
            await client.batches.cancel(slow.id)
        listed = [b.id async for b in client.batches.list(limit=1)]
        assert listed == [slow.id, batch.id]


async def test_batch_progress_follows_the_clock(raftkit_simulator: Simulator) -> None:
    clock = ManualClock(raftkit_simulator)
    settings = BatchSettings()
    lines = [batch_line(f"q{i}", f"Question {i}?") for i in range(4)]
    async with openai_client(raftkit_simulator) as client:
        source = await upload(client, ("\n".join(lines) + "\n").encode(), "batch")
        created = await client.post(
            "/batches",
            json={
                "input_file_id": source["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        batch = created.json()

        async def fetch() -> dict[str, Any]:
            body: dict[str, Any] = (await client.get(f"/batches/{batch['id']}")).json()
            validate("Batch", body)
            return body

        validate("Batch", batch)
        assert batch["status"] == "validating"
        clock.advance(settings.validating_seconds)
        state = await fetch()
        assert (state["status"], state["request_counts"]["completed"]) == ("in_progress", 0)
        clock.advance(settings.in_progress_seconds / 2)
        state = await fetch()
        assert (state["status"], state["request_counts"]["completed"]) == ("in_progress", 2)
        clock.advance(settings.in_progress_seconds / 2)
        state = await fetch()
        assert state["status"] == "finalizing"
        assert "output_file_id" in state
        clock.advance(settings.finalizing_seconds)
        state = await fetch()
        assert state["status"] == "completed"
        assert state["request_counts"] == {"total": 4, "completed": 4, "failed": 0}

        # a cancelled batch keeps what it had processed
        second = (
            await client.post(
                "/batches",
                json={
                    "input_file_id": source["id"],
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            )
        ).json()
        clock.advance(settings.validating_seconds + settings.in_progress_seconds * 3 / 4)
        cancelling = (await client.post(f"/batches/{second['id']}/cancel")).json()
        validate("Batch", cancelling)
        assert cancelling["status"] == "cancelling"
        clock.advance(settings.cancelling_seconds)
        cancelled = (await client.get(f"/batches/{second['id']}")).json()
        validate("Batch", cancelled)
        assert cancelled["status"] == "cancelled"
        assert cancelled["request_counts"] == {"total": 4, "completed": 3, "failed": 0}
        output = await jsonl(client, cancelled["output_file_id"])
        assert [line["custom_id"] for line in output] == ["q0", "q1", "q2"]


# ---------------------------------------------------------------- Azure deployments


def arm_headers(token: str = "entra-token") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.raftkit_simulator(chat_models=frozenset({"gpt-4o-mini"}))
async def test_deploying_a_fine_tuned_model_on_azure(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    clock = ManualClock(sim)
    provisioning = DeploymentSettings().provisioning_seconds
    version = {"api-version": "2023-05-01"}
    async with azure_client(sim) as client:
        training = await upload(client, training_jsonl(), "fine-tune")
        clock.advance(1.0)
        job = (
            await client.post(
                "/fine_tuning/jobs", json={"model": "gpt-4o-mini", "training_file": training["id"]}
            )
        ).json()
        clock.advance(1.0)
        final = await _json(client.get(f"/fine_tuning/jobs/{job['id']}"))
        assert final["status"] == "succeeded"
        model = final["fine_tuned_model"]

    async with httpx.AsyncClient(base_url=sim.azure_endpoint, timeout=10) as arm:
        url = f"{MANAGEMENT}/raft-student"
        body = {
            "sku": {"name": "Standard", "capacity": 2},
            "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}},
        }
        unauthenticated = await arm.put(url, params=version, json=body)
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error"]["code"] == "AuthenticationFailed"
        no_version = await arm.put(url, headers=arm_headers(), json=body)
        assert no_version.status_code == 400
        unknown = await arm.put(
            f"{MANAGEMENT}/ghost",
            params=version,
            headers=arm_headers(),
            json={**body, "properties": {"model": {"format": "OpenAI", "name": "x.ft-123"}}},
        )
        assert unknown.status_code == 400
        assert unknown.json()["error"]["code"] == "DeploymentModelNotFound"

        created = await arm.put(url, params=version, headers=arm_headers(), json=body)
        assert created.status_code == 201, created.text
        resource = created.json()
        assert resource["name"] == "raft-student"
        assert resource["type"] == "Microsoft.CognitiveServices/accounts/deployments"
        assert resource["id"] == url
        assert resource["properties"]["provisioningState"] == "Creating"
        assert resource["properties"]["model"]["name"] == model

        chat_body = {"messages": [{"role": "user", "content": "Where is the Eiffel Tower?"}]}
        chat_url = "/openai/deployments/raft-student/chat/completions"
        chat_params = {"api-version": "2024-10-21"}
        chat_headers = {"api-key": sim.api_key}
        early = await arm.post(chat_url, params=chat_params, headers=chat_headers, json=chat_body)
        assert early.status_code == 404  # not routed to the model before provisioning finishes

        still = await _json(arm.get(url, params=version, headers=arm_headers()))
        assert still["properties"]["provisioningState"] == "Creating"
        clock.advance(provisioning)
        done = await _json(arm.get(url, params=version, headers=arm_headers()))
        assert done["properties"]["provisioningState"] == "Succeeded"
        chat = await arm.post(chat_url, params=chat_params, headers=chat_headers, json=chat_body)
        assert chat.status_code == 200, chat.text
        validate_azure("createChatCompletionResponse", chat.json())
        assert chat.json()["model"] == model

        listing = (await arm.get(MANAGEMENT, params=version, headers=arm_headers())).json()
        assert [d["name"] for d in listing["value"]] == ["raft-student"]

        deleted = await arm.delete(url, params=version, headers=arm_headers())
        assert deleted.status_code == 200
        gone = await arm.get(url, params=version, headers=arm_headers())
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "DeploymentNotFound"
        again = await arm.delete(url, params=version, headers=arm_headers())
        assert again.status_code == 204


async def test_management_token_can_be_pinned(raftkit_simulator: Simulator) -> None:
    configure_deployments(raftkit_simulator.state, DeploymentSettings(token="the-token"))
    body = {
        "sku": {"name": "GlobalStandard", "capacity": 1},
        "properties": {"model": {"format": "OpenAI", "name": "gpt-4o-mini"}},
    }
    async with httpx.AsyncClient(base_url=raftkit_simulator.azure_endpoint) as arm:
        url = f"{MANAGEMENT}/base"
        wrong = await arm.put(
            url, params={"api-version": "2023-05-01"}, headers=arm_headers("other"), json=body
        )
        assert wrong.status_code == 401
        right = await arm.put(
            url, params={"api-version": "2023-05-01"}, headers=arm_headers("the-token"), json=body
        )
        assert right.status_code == 201


@pytest.mark.raftkit_simulator(chat_models=frozenset({"gpt-4o-mini"}))
async def test_azure_batch_uses_deployment_names(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.register_deployment("batch-deploy", "gpt-4o-mini")
    line = {
        "custom_id": "only",
        "method": "POST",
        "url": "/chat/completions",
        "body": {"model": "batch-deploy", "messages": [{"role": "user", "content": "Hi?"}]},
    }
    async with azure_client(raftkit_simulator, "2025-04-01-preview") as client:
        history = await run_batch(client, [json.dumps(line)], endpoint="/chat/completions")
        for state in history:
            validate_azure("Batch", state, spec=AZURE_2025)
        final = history[-1]
        assert final["status"] == "completed"
        output = await jsonl(client, final["output_file_id"])
        assert output[0]["response"]["body"]["model"] == "gpt-4o-mini"
        broken = await run_batch(client, ["{oops"], endpoint="/chat/completions")
        validate_azure("Batch", broken[-1], spec=AZURE_2025)
        assert broken[-1]["status"] == "failed"
        # the authoring spec has a single error object here, its line a string
        assert broken[-1]["errors"]["data"]["line"] == "1"
        listing = (await client.get("/batches")).json()
        validate_azure("BatchesList", listing, spec=AZURE_2025)
        assert len(listing["data"]) == 2


async def _json(response: Awaitable[httpx.Response]) -> dict[str, Any]:
    body: dict[str, Any] = (await response).json()
    return body

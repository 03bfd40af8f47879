"""Hosted fine-tuning as of the end of 2026: cut-off dates, DPO jobs, Azure training types and
deployment types, over real HTTP."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import openai
import pytest

from openapi_schemas import validate, validate_azure
from raftkit.testing import Simulator
from raftkit.testing._files import inspect_training_data
from simulator_support import (
    azure_client,
    chat,
    chat_body,
    openai_client,
    poll,
    preference_jsonl,
    raft_prompt,
    sft_jsonl,
    upload,
)

pytestmark = pytest.mark.anyio

AZURE_2025 = "azure/azure-authoring-preview-2025-04-01.json"
AZURE_2024 = "azure/azure-authoring-preview-2024-10-01.json"
MANAGEMENT = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a"
    "/deployments"
)


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    async def fetch() -> dict[str, Any]:
        body: dict[str, Any] = (await client.get(f"/fine_tuning/jobs/{job_id}")).json()
        return body

    return await poll(fetch, lambda b: b["status"] in ("succeeded", "failed", "cancelled"))


# ---------------------------------------------------------------- the cut-off


async def test_openai_refuses_new_jobs_from_its_cutoff(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with openai_client(sim) as client:
        training = await upload(client, sft_jsonl())
        sim.set_time("2027-01-05T23:59:00Z")
        before = await client.post(
            "/fine_tuning/jobs", json={"model": "gpt-4o-mini", "training_file": training["id"]}
        )
        assert before.status_code == 200, before.text
        sim.set_time("2027-01-06")
        after = await client.post(
            "/fine_tuning/jobs", json={"model": "gpt-4o-mini", "training_file": training["id"]}
        )
        assert after.status_code == 400
        validate("ErrorResponse", after.json())
        error = after.json()["error"]
        assert error["code"] == "fine_tuning_unavailable"
        assert "2027-01-06" in error["message"]
        # what is running goes on, and existing jobs can still be read
        job = await finished(client, before.json()["id"])
        assert job["status"] == "succeeded"
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError, match="no new fine-tuning jobs"):
            await sdk.fine_tuning.jobs.create(model="gpt-4.1-nano", training_file=training["id"])


async def test_azure_has_no_cutoff_unless_configured(raftkit_simulator_factory: Any) -> None:
    free: Simulator = raftkit_simulator_factory()
    free.set_time("2027-03-01")
    async with azure_client(free) as client:
        training = await upload(client, sft_jsonl())
        await poll(
            lambda: _file(client, training["id"]), lambda f: f["status"] in ("processed", "error")
        )
        created = await client.post(
            "/fine_tuning/jobs", json={"model": "gpt-4.1-nano", "training_file": training["id"]}
        )
        assert created.status_code == 201, created.text
        # gpt-4o-mini is shut down by now: not available for fine-tuning on any provider
        gone = await client.post(
            "/fine_tuning/jobs", json={"model": "gpt-4o-mini", "training_file": training["id"]}
        )
        assert gone.status_code == 400
        validate_azure("ErrorResponse", gone.json(), spec=AZURE_2025)
        assert "shut down on 2027-01-14" in gone.json()["error"]["message"]

    closed: Simulator = raftkit_simulator_factory(
        fine_tuning_cutoffs={"openai": None, "azure": date(2027, 2, 1)}
    )
    closed.set_time("2027-02-02")
    async with azure_client(closed) as client:
        refused = await client.post(
            "/fine_tuning/jobs", json={"model": "gpt-4.1-nano", "training_file": "file-x"}
        )
        assert refused.status_code == 400
        validate_azure("ErrorResponse", refused.json(), spec=AZURE_2025)
        assert (
            "Azure OpenAI accepts no new fine-tuning jobs since 2027-02-01"
            in (refused.json()["error"]["message"])
        )


async def _file(client: httpx.AsyncClient, file_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/files/{file_id}")).json()
    return body


async def test_models_that_cannot_be_fine_tuned(raftkit_simulator: Simulator) -> None:
    async with openai_client(raftkit_simulator) as client:
        training = await upload(client, sft_jsonl())
        preferences = await upload(client, preference_jsonl())
        cases = [
            ({"model": "gpt-5", "training_file": training["id"]}, "model_not_available"),
            ({"model": "gpt-typo", "training_file": training["id"]}, "model_not_available"),
            (
                {
                    "model": "gpt-3.5-turbo",
                    "training_file": preferences["id"],
                    "method": {"type": "dpo", "dpo": {}},
                },
                "model_not_available",
            ),
        ]
        for body, code in cases:
            response = await client.post("/fine_tuning/jobs", json=body)
            assert response.status_code == 400, body
            validate("ErrorResponse", response.json())
            assert response.json()["error"]["code"] == code
            assert response.json()["error"]["param"] == "model"
        # a fine-tune of a fine-tunable model can be trained further
        again = await client.post(
            "/fine_tuning/jobs",
            json={"model": "ft:gpt-4.1-mini:acme::abc12345", "training_file": training["id"]},
        )
        assert again.status_code == 200, again.text


# ---------------------------------------------------------------- DPO


async def test_a_dpo_job_trains_on_preference_pairs(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0) as sdk:
        training = await sdk.files.create(file=("p.jsonl", preference_jsonl()), purpose="fine-tune")
        job = await sdk.fine_tuning.jobs.create(
            model="gpt-4.1-mini",
            training_file=training.id,
            method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.25, "n_epochs": 2}}},
            suffix="dpo",
        )
    async with openai_client(sim) as client:
        final = await finished(client, job.id)
    validate("FineTuningJob", final)
    assert final["status"] == "succeeded"
    assert final["method"]["type"] == "dpo"
    hyper = final["method"]["dpo"]["hyperparameters"]
    assert (hyper["beta"], hyper["n_epochs"]) == (0.25, 2)
    tokens = inspect_training_data(preference_jsonl()).tokens
    assert final["trained_tokens"] == tokens * 2
    model = final["fine_tuned_model"]
    assert model.startswith("ft:gpt-4.1-mini:raftkit-simulator:dpo:")
    # the result answers as a model fine-tuned on RAFT data does
    fact = "The Eiffel Tower is in Paris."
    reply = await chat(sim, chat_body(model, raft_prompt("Where is it?", [fact], instructed=False)))
    assert "<ANSWER>:" in reply.json()["choices"][0]["message"]["content"]


async def test_the_method_and_the_file_format_must_match(raftkit_simulator: Simulator) -> None:
    async with openai_client(raftkit_simulator) as client:
        chat_file = await upload(client, sft_jsonl())
        pairs = await upload(client, preference_jsonl())
        dpo_on_chat = await client.post(
            "/fine_tuning/jobs",
            json={
                "model": "gpt-4o",
                "training_file": chat_file["id"],
                "method": {"type": "dpo", "dpo": {}},
            },
        )
        sft_on_pairs = await client.post(
            "/fine_tuning/jobs", json={"model": "gpt-4o", "training_file": pairs["id"]}
        )
        for created, needed in ((dpo_on_chat, "preference pairs"), (sft_on_pairs, "chat examples")):
            assert created.status_code == 200, created.text
            job = await finished(client, created.json()["id"])
            validate("FineTuningJob", job)
            assert job["status"] == "failed"
            assert job["error"]["code"] == "invalid_training_file"
            assert needed in job["error"]["message"]
        bad_beta = await client.post(
            "/fine_tuning/jobs",
            json={
                "model": "gpt-4o",
                "training_file": pairs["id"],
                "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}},
            },
        )
        assert bad_beta.status_code == 400
        assert bad_beta.json()["error"]["param"] == "hyperparameters.beta"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"input": {"messages": [{"role": "assistant", "content": "x"}]}},
            "input.messages must end with a user message",
        ),
        (
            {"preferred_output": [{"role": "user", "content": "x"}]},
            "preferred_output must hold assistant messages only",
        ),
        ({"non_preferred_output": []}, "key 'non_preferred_output' is missing"),
        (
            {"non_preferred_output": [{"role": "assistant", "content": "<ANSWER>: Paris"}]},
            "identical",
        ),
    ],
)
async def test_preference_files_are_checked(overrides: dict[str, Any], problem: str) -> None:
    report = inspect_training_data(preference_jsonl(3, **overrides))
    assert report.problem is not None
    assert "Line 1:" in report.problem
    assert problem in report.problem
    mixed = preference_jsonl(2) + sft_jsonl(1)
    assert "a chat example in a file of preference pairs" in str(
        inspect_training_data(mixed).problem
    )
    assert inspect_training_data(preference_jsonl(2)).format == "dpo"


async def test_azure_processes_preference_files_and_trains_dpo(
    raftkit_simulator: Simulator,
) -> None:
    async with azure_client(raftkit_simulator) as client:
        good = await upload(client, preference_jsonl())
        bad = await upload(client, preference_jsonl(non_preferred_output=[]))
        good = await poll(lambda: _file(client, good["id"]), lambda f: f["status"] == "processed")
        bad = await poll(lambda: _file(client, bad["id"]), lambda f: f["status"] == "error")
        validate_azure("File", bad, spec=AZURE_2025)
        created = await client.post(
            "/fine_tuning/jobs",
            json={
                "model": "gpt-4.1-mini",
                "training_file": good["id"],
                "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}},
            },
        )
        assert created.status_code == 201, created.text
        job = await finished(client, created.json()["id"])
        validate_azure("FineTuningJob", job, spec=AZURE_2025)
        assert job["status"] == "succeeded"
        assert job["method"]["type"] == "dpo"


# ---------------------------------------------------------------- Azure training types


async def test_azure_training_types_are_validated_and_echoed(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with azure_client(sim) as client:
        training = await upload(client, sft_jsonl())
        await poll(lambda: _file(client, training["id"]), lambda f: f["status"] == "processed")

        async def create(model: str, training_type: Any) -> httpx.Response:
            body = {"model": model, "training_file": training["id"], "trainingType": training_type}
            return await client.post("/fine_tuning/jobs", json=body)

        for given, echoed in (
            ("globalstandard", "GlobalStandard"),
            ("developerTier", "developerTier"),
            ("Standard", "Standard"),
        ):
            response = await create("gpt-4.1-mini", given)
            assert response.status_code == 201, response.text
            validate_azure("FineTuningJob", response.json(), spec=AZURE_2025)
            assert response.json()["trainingType"] == echoed
        unknown = await create("gpt-4.1-mini", "premium")
        assert unknown.status_code == 400
        validate_azure("ErrorResponse", unknown.json(), spec=AZURE_2025)
        assert unknown.json()["error"]["param"] == "trainingType"
        assert "Standard, GlobalStandard, developerTier" in unknown.json()["error"]["message"]
        not_for_model = await create("gpt-4o-mini", "developerTier")
        assert not_for_model.status_code == 400
        assert "not available for model gpt-4o-mini" in not_for_model.json()["error"]["message"]

    async with azure_client(sim, "2024-10-01-preview") as old:
        ignored = await old.post(
            "/fine_tuning/jobs",
            json={
                "model": "gpt-4.1-mini",
                "training_file": training["id"],
                "trainingType": "developerTier",
            },
        )
        assert ignored.status_code == 201
        validate_azure("FineTuningJob", ignored.json(), spec=AZURE_2024)
        assert ignored.json()["trainingType"] == "Standard"  # the field is not in that version

    async with openai_client(sim) as client:
        openai_training = await upload(client, sft_jsonl())
        refused = await client.post(
            "/fine_tuning/jobs",
            json={
                "model": "gpt-4.1-mini",
                "training_file": openai_training["id"],
                "trainingType": "GlobalStandard",
            },
        )
        assert refused.status_code == 400
        validate("ErrorResponse", refused.json())
        assert "Unrecognized request argument supplied: trainingType" in refused.text


async def test_developer_training_runs_on_spare_capacity(raftkit_simulator: Simulator) -> None:
    async with azure_client(raftkit_simulator) as client:
        training = await upload(client, sft_jsonl())
        await poll(lambda: _file(client, training["id"]), lambda f: f["status"] == "processed")
        spans = {}
        for tier in ("GlobalStandard", "developerTier"):
            job = (
                await client.post(
                    "/fine_tuning/jobs",
                    json={
                        "model": "gpt-4.1-nano",
                        "training_file": training["id"],
                        "trainingType": tier,
                    },
                )
            ).json()
            done = await finished(client, job["id"])
            assert done["status"] == "succeeded"
            spans[tier] = job["estimated_finish"] - job["created_at"]
    assert spans["developerTier"] >= spans["GlobalStandard"]


# ---------------------------------------------------------------- deployment types


async def deploy(client: httpx.AsyncClient, name: str, model: str, sku: str) -> httpx.Response:
    return await client.put(
        f"{MANAGEMENT}/{name}",
        params={"api-version": "2024-10-01"},
        json={"sku": {"name": sku, "capacity": 1}, "properties": {"model": {"name": model}}},
    )


async def test_deployment_types_for_fine_tuned_models(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with azure_client(sim) as client:
        training = await upload(client, sft_jsonl())
        await poll(lambda: _file(client, training["id"]), lambda f: f["status"] == "processed")
        jobs = {}
        for base in ("gpt-4.1-mini", "gpt-4o-mini"):
            created = await client.post(
                "/fine_tuning/jobs", json={"model": base, "training_file": training["id"]}
            )
            jobs[base] = (await finished(client, created.json()["id"]))["fine_tuned_model"]
    async with httpx.AsyncClient(
        base_url=sim.azure_endpoint, headers={"Authorization": "Bearer t"}, timeout=20
    ) as arm:
        developer = await deploy(arm, "dev", jobs["gpt-4.1-mini"], "developertier")
        assert developer.status_code == 201, developer.text
        assert developer.json()["sku"]["name"] == "DeveloperTier"
        global_ = await deploy(arm, "global", jobs["gpt-4o-mini"], "GlobalStandard")
        assert global_.status_code == 201
        refused = await deploy(arm, "dev-4o", jobs["gpt-4o-mini"], "DeveloperTier")
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "InvalidResourceProperties"
        assert "not supported for fine-tuned model" in refused.json()["error"]["message"]
        bogus = await deploy(arm, "bogus", jobs["gpt-4o-mini"], "Platinum")
        assert bogus.status_code == 400

        async def state(name: str) -> dict[str, Any]:
            response = await arm.get(f"{MANAGEMENT}/{name}", params={"api-version": "2024-10-01"})
            body: dict[str, Any] = response.json()
            return body

        await poll(
            lambda: state("dev"), lambda d: d["properties"]["provisioningState"] == "Succeeded"
        )
        answered = await chat(sim, chat_body("gpt-4o", "Hello?"))
        assert answered.status_code == 200
        assert sim.state.has_deployment("dev")

        sim.advance_time(24 * 3600 + 1)  # a developer deployment lives a day
        gone = await arm.get(f"{MANAGEMENT}/dev", params={"api-version": "2024-10-01"})
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "DeploymentNotFound"
        assert not sim.state.has_deployment("dev")
        kept = await state("global")
        assert kept["properties"]["provisioningState"] == "Succeeded"

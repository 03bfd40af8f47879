"""The model catalog and the simulated clock: shutdown dates, unknown and retired models."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import openai
import pytest

from openapi_schemas import validate, validate_azure
from raftkit.testing import Simulator, SimulatorConfig
from raftkit.testing._catalog import DEFAULT_MODELS, ModelCard
from simulator_support import azure_client, chat, chat_body, control_client, openai_client

pytestmark = pytest.mark.anyio

AZURE_2025 = "azure/azure-authoring-preview-2025-04-01.json"


async def models(sim: Simulator) -> dict[str, dict[str, Any]]:
    async with openai_client(sim) as client:
        listing = (await client.get("/models")).json()
    validate("ListModelsResponse", listing)
    return {m["id"]: m for m in listing["data"]}


async def test_the_listing_carries_shutdown_dates(raftkit_simulator: Simulator) -> None:
    listed = await models(raftkit_simulator)
    assert listed["gpt-4o-mini"]["shutdown_date"] == "2027-01-14"
    assert listed["gpt-4.1"]["shutdown_date"] == "2027-01-14"
    assert listed["gpt-4.1-nano"]["shutdown_date"] is None
    assert "text-embedding-3-small" in listed
    async with openai_client(raftkit_simulator) as client:
        one = (await client.get("/models/gpt-4o")).json()
        missing = await client.get("/models/gpt-nonexistent")
    validate("Model", one)
    assert one["shutdown_date"] == "2027-01-14"
    assert missing.status_code == 404
    validate("ErrorResponse", missing.json())
    assert missing.json()["error"]["code"] == "model_not_found"


async def test_unknown_models_get_the_services_404(raftkit_simulator: Simulator) -> None:
    response = await chat(raftkit_simulator, chat_body("gpt-4o-minii", "Hello?"))
    assert response.status_code == 404
    validate("ErrorResponse", response.json())
    assert response.json()["error"] == {
        "message": "The model `gpt-4o-minii` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    async with openai.AsyncOpenAI(
        base_url=raftkit_simulator.base_url, api_key=raftkit_simulator.api_key, max_retries=0
    ) as client:
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="text-embedding-4-tiny", input="hello")
        with pytest.raises(openai.NotFoundError):  # a chat model is no embedding model
            await client.embeddings.create(model="gpt-4o", input="hello")
        # snapshots and fine-tunes of known models are known
        for name in ("gpt-4o-mini-2024-07-18", "ft:gpt-4o-mini-2024-07-18:acme::abc123"):
            reply = await client.chat.completions.create(
                model=name, messages=[{"role": "user", "content": "Hello?"}]
            )
            assert reply.model == name


async def test_the_model_list_is_configurable(raftkit_simulator_factory: Any) -> None:
    strict = raftkit_simulator_factory(accept_foreign_fine_tunes=False)
    foreign = await chat(strict, chat_body("ft:gpt-4o-mini:acme::abc123", "Hello?"))
    assert foreign.status_code == 404
    strict.register_model("ft:gpt-4o-mini:acme::abc123", fine_tuned=True)
    assert (await chat(strict, chat_body("ft:gpt-4o-mini:acme::abc123", "Hi?"))).status_code == 200

    custom = raftkit_simulator_factory(
        models={**DEFAULT_MODELS, "house-model": ModelCard(context_window=64)}
    )
    assert (await chat(custom, chat_body("house-model", "Hello?"))).status_code == 200
    overflow = await chat(custom, chat_body("house-model", "word " * 80))
    assert overflow.json()["error"]["code"] == "context_length_exceeded"
    assert "house-model" in await models(custom)

    anything = raftkit_simulator_factory(accept_unknown_models=True)
    assert (await chat(anything, chat_body("my-own-model", "Hello?"))).status_code == 200


async def test_max_tokens_above_the_models_output_limit(raftkit_simulator: Simulator) -> None:
    response = await chat(raftkit_simulator, chat_body("gpt-4o-mini", "Hello?", max_tokens=20000))
    assert response.status_code == 400
    validate("ErrorResponse", response.json())
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "max_tokens")
    assert "at most 16384 completion tokens" in error["message"]


async def test_the_clock_starts_at_a_fixed_date_and_is_settable(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    assert sim.now().date() == date(2026, 12, 1)
    response = await chat(sim, chat_body("gpt-4o", "Hello?"))
    assert parsedate_to_datetime(response.headers["date"]).date() == date(2026, 12, 1)
    assert datetime.fromtimestamp(response.json()["created"], UTC).date() == date(2026, 12, 1)

    sim.set_time("2027-01-05T12:00:00Z")
    assert sim.now().date() == date(2027, 1, 5)
    sim.advance_time(86_400)
    assert sim.now().date() == date(2027, 1, 6)

    async with control_client(sim) as control:
        shown = (await control.get("/_simulator/clock")).json()
        assert shown["now"].startswith("2027-01-06T12:00")
        moved = (await control.post("/_simulator/clock", json={"now": "2027-02-01"})).json()
        assert moved["now"].startswith("2027-02-01T00:00:0")
        later = (await control.post("/_simulator/clock", json={"advance_seconds": 3600})).json()
        assert later["now"].startswith("2027-02-01T01:00:0")
        bad = await control.post("/_simulator/clock", json={"now": "not a date"})
        assert bad.status_code == 400
        status = (await control.get("/_simulator/status")).json()
        assert status["dialect"] == "openai"
        assert status["now"].startswith("2027-02-01")
        control.headers.pop("Authorization")
        assert (await control.get("/_simulator/clock")).status_code == 401


@pytest.mark.raftkit_simulator(start_time=None)
async def test_start_time_none_is_the_real_clock(raftkit_simulator: Simulator) -> None:
    assert abs((raftkit_simulator.now() - datetime.now(UTC)).total_seconds()) < 60


async def test_models_past_their_shutdown_date_are_retired(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.set_time("2027-01-13T23:00:00Z")
    assert (await chat(sim, chat_body("gpt-4o-mini", "Hello?"))).status_code == 200
    sim.set_time("2027-01-14")
    for name in ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "ft:gpt-4o-mini:acme::abc123"):
        response = await chat(sim, chat_body(name, "Hello?"))
        assert response.status_code == 404, name
        validate("ErrorResponse", response.json())
        assert response.json()["error"]["code"] == "model_not_found"
        assert "has been deprecated" in response.json()["error"]["message"]
    assert (await chat(sim, chat_body("gpt-4.1-nano", "Hello?"))).status_code == 200
    listed = await models(sim)
    assert "gpt-4o-mini" not in listed
    assert "gpt-4.1-nano" in listed
    async with openai_client(sim) as client:
        assert (await client.get("/models/gpt-4o-mini")).status_code == 404


async def test_azure_lists_models_with_lifecycle_and_deprecation(
    raftkit_simulator: Simulator,
) -> None:
    async with azure_client(raftkit_simulator) as client:
        listing = (await client.get("/models")).json()
        one = (await client.get("/models/gpt-4.1-nano")).json()
    validate_azure("ModelList", listing, spec=AZURE_2025)
    validate_azure("Model", one, spec=AZURE_2025)
    by_id = {m["id"]: m for m in listing["data"]}
    mini = by_id["gpt-4o-mini"]
    assert mini["lifecycle_status"] == "deprecating"  # 44 days before its shutdown
    shutdown = datetime(2027, 1, 14, tzinfo=UTC).timestamp()
    assert mini["deprecation"] == {"inference": shutdown, "fine_tune": shutdown}
    assert mini["capabilities"]["fine_tune"] is True
    assert by_id["text-embedding-3-small"]["capabilities"]["embeddings"] is True
    assert one["lifecycle_status"] == "generally-available"


async def test_a_fine_tuned_model_lists_its_base_models_shutdown(
    raftkit_simulator: Simulator,
) -> None:
    raftkit_simulator.register_model("ft:gpt-4o-mini:acme::abc123", fine_tuned=True)
    listed = await models(raftkit_simulator)
    assert listed["ft:gpt-4o-mini:acme::abc123"]["shutdown_date"] == "2027-01-14"


def test_a_bad_start_time_is_refused_when_configured() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        SimulatorConfig(start_time="next tuesday")

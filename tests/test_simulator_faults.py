"""Faults injected on demand: error statuses, retry headers, drops, timeouts, broken JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from openapi_schemas import validate
from raftkit.testing import Fault, FaultRule, Simulator, SimulatorConfig
from raftkit.testing._faults import FaultPlan

pytestmark = pytest.mark.anyio

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi."}]}
EMBED = {"model": "text-embedding-3-small", "input": "hi"}


async def post(
    sim: Simulator, path: str, body: dict[str, Any], *, client_timeout: float = 10
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=client_timeout, verify=False) as client:
        return await client.post(
            f"{sim.base_url}{path}", headers={"Authorization": f"Bearer {sim.api_key}"}, json=body
        )


async def test_error_fault_with_retry_headers_then_recovery(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.add_fault(
        Fault.error(
            503,
            message="The engine is currently overloaded.",
            headers={"retry-after": "2", "x-should-retry": "true"},
        )
    )
    failed = await post(raftkit_simulator, "/chat/completions", CHAT)
    recovered = await post(raftkit_simulator, "/chat/completions", CHAT)
    assert failed.status_code == 503
    validate("ErrorResponse", failed.json())
    assert failed.json()["error"]["message"] == "The engine is currently overloaded."
    assert failed.json()["error"]["type"] == "service_unavailable"
    assert failed.headers["retry-after"] == "2"
    assert failed.headers["x-should-retry"] == "true"
    assert failed.headers["x-request-id"]
    assert recovered.status_code == 200
    assert raftkit_simulator.pending_faults == 0


async def test_rate_limited_fault_headers(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.add_fault(Fault.rate_limited(1.5))
    response = await post(raftkit_simulator, "/chat/completions", CHAT)
    assert response.status_code == 429
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.headers["retry-after"] == "2"


async def test_faults_filtered_by_path_and_counted(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.add_fault(
        Fault.error(400, code="bad", param="input", path="/embeddings"), times=2
    )
    chat = await post(raftkit_simulator, "/chat/completions", CHAT)
    first = await post(raftkit_simulator, "/embeddings", EMBED)
    second = await post(raftkit_simulator, "/embeddings", EMBED)
    third = await post(raftkit_simulator, "/embeddings", EMBED)
    assert chat.status_code == 200
    assert [first.status_code, second.status_code, third.status_code] == [400, 400, 200]
    assert first.json()["error"] == {
        "message": "Injected fault: HTTP 400.",
        "type": "invalid_request_error",
        "param": "input",
        "code": "bad",
    }


async def test_dropped_connection_is_a_transport_error(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.add_fault(Fault.drop())
    with pytest.raises(httpx.TransportError):
        await post(raftkit_simulator, "/chat/completions", CHAT)
    assert (await post(raftkit_simulator, "/chat/completions", CHAT)).status_code == 200
    dropped, answered = raftkit_simulator.requests
    assert dropped.status == 0
    assert answered.status == 200


async def test_timeout_holds_longer_than_the_client_waits(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.add_fault(Fault.timeout(seconds=600))
    with pytest.raises(httpx.ReadTimeout):
        await post(raftkit_simulator, "/chat/completions", CHAT, client_timeout=0.3)
    assert (await post(raftkit_simulator, "/chat/completions", CHAT)).status_code == 200


async def test_timeout_answers_504_if_the_client_outwaits_it(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.add_fault(Fault.timeout(seconds=0.01))
    response = await post(raftkit_simulator, "/chat/completions", CHAT)
    assert response.status_code == 504
    validate("ErrorResponse", response.json())


async def test_latency_fault_still_answers(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.add_fault(Fault.latency(0.05))
    response = await post(raftkit_simulator, "/chat/completions", CHAT)
    assert response.status_code == 200
    validate("CreateChatCompletionResponse", response.json())


async def test_malformed_json_body(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.add_fault(Fault.malformed_json())
    response = await post(raftkit_simulator, "/chat/completions", CHAT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


def statuses_with_seed(seed: int) -> list[int]:
    config = SimulatorConfig(seed=seed, faults=(FaultRule(Fault.error(500), 0.5),))
    with Simulator(config) as sim, httpx.Client(verify=False) as client:
        return [
            client.post(
                f"{sim.base_url}/chat/completions",
                headers={"Authorization": f"Bearer {sim.api_key}"},
                json=CHAT,
            ).status_code
            for _ in range(12)
        ]


def test_random_faults_are_reproducible_with_a_seed() -> None:
    first = statuses_with_seed(7)
    assert first == statuses_with_seed(7)
    assert set(first) == {200, 500}


def test_fault_plan_prefers_scripted_faults_and_respects_paths() -> None:
    plan = FaultPlan((FaultRule(Fault.error(502), 1.0),), seed=1)
    plan.add(Fault.error(418, path="/embeddings"))
    assert plan.next_for("/v1/chat/completions") == Fault.error(502)
    assert plan.next_for("/v1/embeddings") == Fault.error(418, path="/embeddings")
    assert plan.next_for("/v1/embeddings") == Fault.error(502)
    plan.clear()
    assert plan.next_for("/v1/embeddings") is None
    with pytest.raises(ValueError, match="probability"):
        plan.add_rule(Fault.drop(), 1.5)


async def test_faults_also_hit_azure_paths(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.add_fault(Fault.error(500, path="/openai/"))
    async with httpx.AsyncClient(verify=False) as client:
        response = await client.post(
            f"{sim.azure_endpoint}/openai/deployments/d/chat/completions",
            params={"api-version": "2024-10-21"},
            headers={"api-key": sim.api_key},
            json={"messages": CHAT["messages"]},
        )
    assert response.status_code == 500
    assert response.headers["apim-request-id"]
    # Azure's error schema has no null fields
    assert response.json()["error"] == {
        "message": "Injected fault: HTTP 500.",
        "type": "server_error",
    }

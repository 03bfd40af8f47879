"""OpenAIClient and AzureOpenAIClient against the loopback simulator over real HTTP.

Every request raftkit sends is checked against the official OpenAPI schemas.
"""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest
from pydantic import BaseModel

from openapi_schemas import validate, validate_azure
from raftkit.errors import (
    APIConnectionError,
    AuthenticationError,
    QuotaExceededError,
)
from raftkit.llm import AzureOpenAIClient, OpenAIClient, RetryPolicy, UsageLedger
from raftkit.testing import Fault, Simulator

pytestmark = pytest.mark.anyio

API_VERSION = "2024-10-21"
FAST = RetryPolicy(initial_delay=0.001, max_delay=0.005, deadline=30)
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You write quiz questions about the document."},
    {
        "role": "user",
        "content": "<DOCUMENT>蝙蝠是唯一能真正飞翔的哺乳动物。</DOCUMENT> Write one question.",
    },
]


class Quiz(BaseModel):
    question: str
    difficulty: int
    tags: list[str]


def openai_client(sim: Simulator, **kwargs: Any) -> OpenAIClient:
    kwargs.setdefault("retry", FAST)
    return OpenAIClient(api_key=sim.api_key, base_url=sim.base_url, timeout=10, **kwargs)


def check_sent(sim: Simulator, *, azure_deployment: str | None = None) -> None:
    """Every chat and embeddings request is valid under the official request schemas."""
    seen = 0
    for recorded in sim.requests:
        body = recorded.json
        if recorded.path.endswith("/chat/completions"):
            if azure_deployment is not None:
                # The Azure GA spec wrongly lists "type" as required inside
                # response_format.json_schema (Azure itself does not ask for it), so
                # response_format is checked against OpenAI's schema only.
                azure_body = {k: v for k, v in body.items() if k != "response_format"}
                validate_azure("createChatCompletionRequest", azure_body)
                validate("CreateChatCompletionRequest", {**body, "model": azure_deployment})
            else:
                validate("CreateChatCompletionRequest", body)
            seen += 1
        elif recorded.path.endswith("/embeddings"):
            if azure_deployment is not None:
                body = {**body, "model": azure_deployment}
            validate("CreateEmbeddingRequest", body)
            seen += 1
    assert seen > 0


async def test_openai_chat_structured_and_embeddings(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    ledger = UsageLedger()
    async with openai_client(sim, ledger=ledger) as client:
        response = await client.chat(MESSAGES, model="gpt-4o-mini", max_tokens=200, seed=1)
        quiz = await client.chat_structured(MESSAGES, Quiz, model="gpt-4o-mini", temperature=0)
        loose = await client.chat_structured(
            MESSAGES, Quiz, model="gpt-4o-mini", mode="json_object"
        )
        vectors = await client.embed(
            ["蝙蝠会飞", "bats can fly", "the tower is in Paris"], model="text-embedding-3-small"
        )
        short = await client.embed(["a", "b"], model="text-embedding-3-small", dimensions=64)
        models = await client.request("GET", "models")
    assert response.text
    assert response.request_id
    assert response.usage.prompt_tokens > 0
    assert isinstance(quiz.output, Quiz)
    assert isinstance(loose.output, Quiz)
    assert vectors.shape == (3, 1536)
    assert vectors.dtype == np.float32
    assert short.shape == (2, 64)
    assert models.json()["object"] == "list"
    assert ledger.model_usage("gpt-4o-mini").calls >= 3
    assert ledger.model_usage("text-embedding-3-small").calls == 2
    check_sent(sim)


async def test_azure_deployments_with_key(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.register_deployment("chat-dep", "gpt-4o-mini")
    sim.register_deployment("emb-dep", "text-embedding-3-small")
    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint,
        api_key=sim.api_key,
        api_version=API_VERSION,
        retry=FAST,
    ) as client:
        response = await client.chat(MESSAGES, model="chat-dep", max_tokens=100)
        quiz = await client.chat_structured(MESSAGES, Quiz, model="chat-dep")
        vectors = await client.embed(["一", "二"], model="emb-dep")
    assert response.text
    assert isinstance(quiz.output, Quiz)
    assert vectors.shape[0] == 2
    assert all(r.query.get("api-version") == API_VERSION for r in sim.requests)
    assert any("/openai/deployments/chat-dep/" in r.path for r in sim.requests)
    check_sent(sim, azure_deployment="chat-dep")


async def test_azure_v1_with_token_provider(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    calls: list[int] = []

    async def provider() -> str:
        calls.append(1)
        return sim.api_key

    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint, token_provider=provider, v1=True, retry=FAST
    ) as client:
        await client.chat(MESSAGES, model="gpt-4o-mini")
        quiz = await client.chat_structured(MESSAGES, Quiz, model="gpt-4o-mini")
        await client.embed(["x"], model="text-embedding-3-small")
    assert isinstance(quiz.output, Quiz)
    assert len(calls) == len(sim.requests)
    assert all(r.path.startswith("/openai/v1/") for r in sim.requests)
    check_sent(sim)


async def test_faults_are_retried(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.add_fault(Fault.rate_limited(0.01), times=2)
    sim.add_fault(Fault.error(500))
    sim.add_fault(Fault.drop())
    sim.add_fault(Fault.error(503, headers={"retry-after-ms": "5"}))
    ledger = UsageLedger()
    async with openai_client(sim, ledger=ledger) as client:
        response = await client.chat(MESSAGES, model="gpt-4o-mini")
    assert response.text
    usage = ledger.model_usage("gpt-4o-mini")
    assert usage.calls == 1
    assert usage.retries == 5
    assert usage.rate_limited == 2
    chat_requests = [r for r in sim.requests if r.path.endswith("/chat/completions")]
    assert len({r.headers.get("idempotency-key") for r in chat_requests}) == 1
    assert sim.pending_faults == 0


async def test_timeouts_are_retried(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.add_fault(Fault.timeout(5.0))
    async with OpenAIClient(
        api_key=sim.api_key, base_url=sim.base_url, timeout=0.3, retry=FAST
    ) as client:
        response = await client.chat(MESSAGES, model="gpt-4o-mini")
    assert response.text


async def test_unrecoverable_failures_raise(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with OpenAIClient(api_key="sk-wrong-key-000000", base_url=sim.base_url) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.chat(MESSAGES, model="gpt-4o-mini")
    assert caught.value.request_id
    assert caught.value.code == "invalid_api_key"
    sim.set_insufficient_quota()
    async with openai_client(sim) as client:
        with pytest.raises(QuotaExceededError):
            await client.embed(["a"], model="text-embedding-3-small")
    sim.set_insufficient_quota(False)
    sim.add_fault(Fault.drop(), times=10)
    async with openai_client(sim, retry=RetryPolicy(max_attempts=2, initial_delay=0.001)) as c:
        with pytest.raises(APIConnectionError):
            await c.chat(MESSAGES, model="gpt-4o-mini")


@pytest.mark.raftkit_simulator(rpm=1200, window_seconds=0.25)
async def test_many_concurrent_calls_under_a_rate_limit(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    ledger = UsageLedger()
    texts: list[str] = []
    async with openai_client(sim, ledger=ledger) as client:

        async def one(i: int) -> None:
            response = await client.chat(
                [{"role": "user", "content": f"question {i}"}], model="gpt-4o-mini", max_tokens=20
            )
            texts.append(response.text)

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(one, i)
    assert len(texts) == 30
    assert ledger.model_usage("gpt-4o-mini").calls == 30
    check_sent(sim)

"""The official ``openai`` package as an independent client: if it cannot talk to the
simulator, the simulator is wrong."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import openai
import pytest
from pydantic import BaseModel

from openapi_schemas import validate
from raftkit.testing import Fault, Simulator

pytestmark = pytest.mark.anyio

DOCUMENT = (
    "Marie Curie was a physicist and chemist. She was the first woman to win a Nobel Prize. "
    "She won Nobel Prizes in both physics and chemistry."
)
FORMAT = "Quote between ##begin_quote## and ##end_quote##; end with <ANSWER>: $answer."


class Questions(BaseModel):
    questions: list[str]
    topic: str


@pytest.fixture
async def client(raftkit_simulator: Simulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=raftkit_simulator.base_url,
        api_key=raftkit_simulator.api_key,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=False),
    ) as api:
        yield api


async def test_chat_completion(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {
                "role": "user",
                "content": f"<DOCUMENT>{DOCUMENT}</DOCUMENT>\nWhich prizes did she win?\n"
                "Quote between ##begin_quote## and ##end_quote##; end with <ANSWER>: $answer.",
            }
        ],
    )
    validate("CreateChatCompletionResponse", completion.model_dump(mode="json", exclude_unset=True))
    content = completion.choices[0].message.content
    assert content is not None
    (quote,) = re.findall(r"##begin_quote##(.*?)##end_quote##", content)
    assert quote in DOCUMENT
    assert completion.usage is not None
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


async def test_structured_output_with_a_pydantic_model(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"<DOCUMENT>{DOCUMENT}</DOCUMENT> Ask questions."}],
        response_format=Questions,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Questions)
    assert len(set(parsed.questions)) == len(parsed.questions) > 0
    assert parsed.topic


async def test_embeddings(client: openai.AsyncOpenAI) -> None:
    result = await client.embeddings.create(
        model="text-embedding-3-small", input=["first text", "second text"], dimensions=128
    )
    assert [len(item.embedding) for item in result.data] == [128, 128]
    # the client asks for base64 by default and decodes it itself
    default = await client.embeddings.create(model="text-embedding-3-small", input="first text")
    assert len(default.data[0].embedding) == 1536


async def test_models(client: openai.AsyncOpenAI) -> None:
    names = [model.id async for model in client.models.list()]
    assert "gpt-4o-mini" in names


async def test_errors_surface_as_openai_exceptions(
    raftkit_simulator: Simulator, client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert bad.value.param == "messages"
    raftkit_simulator.add_fault(Fault.error(500))
    with pytest.raises(openai.InternalServerError) as server:
        await client.models.list()
    assert server.value.request_id is not None
    async with openai.AsyncOpenAI(
        base_url=raftkit_simulator.base_url,
        api_key="sk-wrong",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=False),
    ) as wrong:
        with pytest.raises(openai.AuthenticationError) as denied:
            await wrong.models.list()
    assert denied.value.code == "invalid_api_key"


@pytest.mark.raftkit_simulator(rpm=1)
async def test_rate_limit_error_and_headers(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-ratelimit-limit-requests"] == "1"
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert limited.value.code == "rate_limit_exceeded"
    assert int(limited.value.response.headers["retry-after-ms"]) > 0


async def test_insufficient_quota_is_a_rate_limit_error(
    raftkit_simulator: Simulator, client: openai.AsyncOpenAI
) -> None:
    raftkit_simulator.set_insufficient_quota()
    with pytest.raises(openai.RateLimitError) as exhausted:
        await client.embeddings.create(model="text-embedding-3-small", input="x")
    assert exhausted.value.code == "insufficient_quota"


async def test_dropped_connection_is_a_connection_error(
    raftkit_simulator: Simulator, client: openai.AsyncOpenAI
) -> None:
    raftkit_simulator.add_fault(Fault.drop())
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )


async def test_held_request_is_a_timeout(
    raftkit_simulator: Simulator, client: openai.AsyncOpenAI
) -> None:
    raftkit_simulator.add_fault(Fault.timeout())
    with pytest.raises(openai.APITimeoutError):
        await client.with_options(timeout=0.3).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )


async def test_openai_client_retries_through_a_scripted_fault(
    raftkit_simulator: Simulator,
) -> None:
    raftkit_simulator.add_fault(Fault.error(503, headers={"retry-after-ms": "10"}))
    async with openai.AsyncOpenAI(
        base_url=raftkit_simulator.base_url,
        api_key=raftkit_simulator.api_key,
        max_retries=2,
        http_client=openai.DefaultAsyncHttpxClient(verify=False),
    ) as retrying:
        completion = await retrying.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].finish_reason == "stop"
    assert [r.status for r in raftkit_simulator.requests] == [503, 200]


async def test_azure_client(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.register_deployment("chat-deployment", "gpt-4o-mini")
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=sim.azure_endpoint,
        api_key=sim.api_key,
        api_version="2024-10-21",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=False),
    ) as azure:
        completion = await azure.chat.completions.create(
            model="chat-deployment",
            messages=[
                {"role": "user", "content": f"<DOCUMENT>{DOCUMENT}</DOCUMENT> Who? {FORMAT}"}
            ],
        )
        vectors = await azure.embeddings.create(model="text-embedding-3-small", input="hi")
        parsed = await azure.chat.completions.parse(
            model="chat-deployment",
            messages=[{"role": "user", "content": f"<DOCUMENT>{DOCUMENT}</DOCUMENT> {FORMAT}"}],
            response_format=Questions,
        )
    assert completion.model == "gpt-4o-mini"
    assert "<ANSWER>:" in (completion.choices[0].message.content or "")
    assert len(vectors.data[0].embedding) == 1536
    assert isinstance(parsed.choices[0].message.parsed, Questions)
    paths = [r.path for r in sim.requests]
    assert paths[0] == "/openai/deployments/chat-deployment/chat/completions"
    assert all(r.query["api-version"] == "2024-10-21" for r in sim.requests)
    assert all("api-key" not in r.headers for r in sim.requests)

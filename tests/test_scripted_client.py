"""raftkit.testing.ScriptedClient, as a user's test would use it."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from raftkit.errors import NotFoundError, StructuredOutputError
from raftkit.llm import ChatResponse, LLMClient, truncation_retry_sample
from raftkit.testing import ScriptedClient
from raftkit.testing.scripted import Call
from raftkit.types import Usage

pytestmark = pytest.mark.anyio


class Grade(BaseModel):
    correct: bool


async def test_the_documented_example(anyio_backend: str) -> None:
    client = ScriptedClient(lambda call: f"echo: {call.prompt}")
    reply = await client.chat([{"role": "user", "content": "hi"}], model="m")
    assert reply.text == "echo: hi"
    assert client.calls[0].model == "m"
    assert isinstance(client, LLMClient)


async def test_calls_are_recorded_with_every_parameter(anyio_backend: str) -> None:
    client = ScriptedClient(replies=["one"])
    await client.chat([{"role": "user", "content": "q"}], model="m", max_tokens=5, sample=2)
    call = client.calls_to("chat")[0]
    assert call.sample == 2
    assert call.kwargs == {
        "temperature": None,
        "max_tokens": 5,
        "seed": None,
        "stop": None,
        "extra_body": None,
        "prompt_cache_key": None,
        "retry_max_tokens": None,
    }


async def test_a_reply_cut_by_a_learned_cap_is_asked_again_with_a_larger_cap(
    anyio_backend: str,
) -> None:
    cut = ChatResponse(
        text="half an answ",
        model="m",
        finish_reason="length",
        usage=Usage(prompt_tokens=9, completion_tokens=20),
    )
    client = ScriptedClient(replies=[cut, "the whole answer"])
    reply = await client.chat(
        [{"role": "user", "content": "q"}], model="m", max_tokens=20, retry_max_tokens=45, sample=3
    )
    assert reply.text == "the whole answer"
    assert reply.truncated_usage == cut.usage
    assert reply.total_usage.completion_tokens == 20 + reply.usage.completion_tokens
    first, second = client.calls
    assert (first.kwargs["max_tokens"], second.kwargs["max_tokens"]) == (20, 45)
    assert second.sample == truncation_retry_sample(3) != 3
    pinned = ScriptedClient(replies=[cut])
    kept = await pinned.chat([{"role": "user", "content": "q"}], model="m", max_tokens=20)
    assert kept.finish_reason == "length"
    assert len(pinned.calls) == 1


async def test_structured_replies_are_parsed_and_reasked_like_a_real_client(
    anyio_backend: str,
) -> None:
    def respond(call: Call) -> str:
        return "not json" if call.sample == 0 else '{"correct": true}'

    client = ScriptedClient(respond)
    result = await client.chat_structured([{"role": "user", "content": "?"}], Grade, model="m")
    assert result.output == Grade(correct=True)
    assert result.attempts == 2
    stubborn = ScriptedClient(lambda call: "never json")
    with pytest.raises(StructuredOutputError):
        await stubborn.chat_structured([{"role": "user", "content": "?"}], Grade, model="m")
    assert len(stubborn.calls) == 3  # the default attempts, as the real clients


async def test_embeddings_and_other_endpoints(anyio_backend: str) -> None:
    client = ScriptedClient()
    vectors = await client.embed(["bats fly", "bats fly", "pandas"], model="e")
    assert vectors.shape == (3, 64)
    assert (vectors[0] == vectors[1]).all()
    with pytest.raises(NotFoundError):
        await client.request("GET", "files")

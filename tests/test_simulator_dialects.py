"""Server dialects over real HTTP: the simulator as a llama.cpp server and as a vLLM server."""

from __future__ import annotations

import json
from typing import Any

import anyio
import jsonschema
import openai
import pytest

from openapi_schemas import validate
from raftkit.testing import Simulator, SimulatorConfig
from simulator_support import chat, chat_body, openai_client, raft_prompt

pytestmark = pytest.mark.anyio

DOCS = [
    "The Eiffel Tower is in Paris. It was completed in 1889 for the World's Fair.",
    "Mount Everest is the highest mountain above sea level. Its summit is 8,849 metres high.",
]
YEAR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"year": {"type": "integer"}, "place": {"type": "string"}},
    "required": ["year", "place"],
}
VLLM_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def question(text: str = "When was the tower completed?") -> str:
    return raft_prompt(text, DOCS, instructed=False)


# ---------------------------------------------------------------- llama.cpp


@pytest.mark.raftkit_simulator(dialect="llama.cpp")
async def test_llama_cpp_refuses_json_schema_with_llama_cpp_pythons_500(
    raftkit_simulator: Simulator,
) -> None:
    body = chat_body(
        "local",
        question(),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "year", "schema": YEAR_SCHEMA},
        },
    )
    response = await chat(raftkit_simulator, body)
    assert response.status_code == 500
    validate("ErrorResponse", response.json())
    error = response.json()["error"]
    assert error["type"] == "internal_server_error"
    assert "Input should be 'text' or 'json_object'" in error["message"]
    assert not any(name.startswith("x-ratelimit") for name in response.headers)

    async with openai.AsyncOpenAI(
        base_url=raftkit_simulator.base_url, api_key="none", max_retries=0
    ) as client:
        with pytest.raises(openai.InternalServerError) as raised:
            await client.chat.completions.create(
                model="local",
                messages=[{"role": "user", "content": question()}],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "year", "schema": dict(YEAR_SCHEMA)},
                },
            )
    assert raised.value.status_code == 500
    error_body = raised.value.body
    assert isinstance(error_body, dict)
    assert "Input should be 'text' or 'json_object'" in error_body["message"]


@pytest.mark.raftkit_simulator(dialect="llama.cpp")
async def test_llama_cpp_honours_json_object_with_or_without_a_schema(
    raftkit_simulator: Simulator,
) -> None:
    # no "json" in the messages: llama.cpp does not ask for it, OpenAI does
    with_schema = chat_body(
        "any-name-at-all",
        question(),
        response_format={"type": "json_object", "schema": YEAR_SCHEMA},
    )
    response = await chat(raftkit_simulator, with_schema)
    assert response.status_code == 200, response.text
    payload = response.json()
    validate("CreateChatCompletionResponse", payload)
    jsonschema.validate(json.loads(payload["choices"][0]["message"]["content"]), YEAR_SCHEMA)
    assert payload["model"] == "any-name-at-all"
    assert "prompt_tokens_details" not in payload["usage"]
    assert not any(name.startswith("x-ratelimit") for name in response.headers)

    plain = await chat(
        raftkit_simulator, chat_body("local", question(), response_format={"type": "json_object"})
    )
    assert plain.status_code == 200
    assert isinstance(json.loads(plain.json()["choices"][0]["message"]["content"]), dict)


@pytest.mark.raftkit_simulator(dialect="llama.cpp", context_window=512)
async def test_llama_cpp_refuses_a_prompt_that_overflows_the_context(
    raftkit_simulator: Simulator,
) -> None:
    too_long = await chat(raftkit_simulator, chat_body("local", question(), max_tokens=600))
    assert too_long.status_code == 400
    validate("ErrorResponse", too_long.json())
    error = too_long.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "messages"
    assert "maximum context length is 512 tokens" in error["message"]
    assert "600 in the completion" in error["message"]

    huge = await chat(raftkit_simulator, chat_body("local", "word " * 900))
    assert huge.status_code == 400
    assert huge.json()["error"]["code"] == "context_length_exceeded"


@pytest.mark.raftkit_simulator(dialect="llama.cpp", context_window=1024)
async def test_runaway_output_runs_to_max_tokens_or_the_full_context(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    sim.misbehave("runaway")
    capped = (await chat(sim, chat_body("local", question(), max_tokens=300))).json()
    assert capped["choices"][0]["finish_reason"] == "length"
    assert capped["usage"]["completion_tokens"] == 300

    sim.misbehave("runaway")
    uncapped = (await chat(sim, chat_body("local", question()))).json()
    validate("CreateChatCompletionResponse", uncapped)
    assert uncapped["choices"][0]["finish_reason"] == "length"
    usage = uncapped["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] == 1024  # the context is full

    normal = (await chat(sim, chat_body("local", question()))).json()
    assert normal["choices"][0]["finish_reason"] == "stop"


async def test_the_runaway_share_is_decided_per_request(
    raftkit_simulator_factory: Any,
) -> None:
    always = raftkit_simulator_factory(dialect="llama.cpp", runaway_share=1.0)
    never = raftkit_simulator_factory(dialect="llama.cpp", runaway_share=0.0)
    some = raftkit_simulator_factory(dialect="llama.cpp", runaway_share=0.3)
    body = chat_body("local", question(), max_tokens=64)
    assert (await chat(always, body)).json()["choices"][0]["finish_reason"] == "length"
    assert (await chat(never, body)).json()["choices"][0]["finish_reason"] == "stop"
    finishes = []
    for index in range(20):
        request = chat_body("local", question(f"Question {index}: when was it built?"))
        first = (await chat(some, {**request, "max_tokens": 64})).json()
        again = (await chat(some, {**request, "max_tokens": 64})).json()
        assert first["choices"][0]["finish_reason"] == again["choices"][0]["finish_reason"]
        finishes.append(first["choices"][0]["finish_reason"])
    assert 0 < finishes.count("length") < 20


@pytest.mark.parametrize(("slots", "expected_peak"), [(1, 1), (3, 3)])
async def test_requests_beyond_the_slots_wait_their_turn(
    raftkit_simulator_factory: Any, slots: int, expected_peak: int
) -> None:
    sim: Simulator = raftkit_simulator_factory(
        dialect="llama.cpp", slots=slots, latency_base=0.2, runaway_share=0.0
    )
    statuses: list[int] = []
    peak_queued = 0

    async with openai_client(sim) as client:

        async def one(index: int) -> None:
            response = await client.post(
                "/chat/completions", json=chat_body("local", question(f"Question {index}?"))
            )
            statuses.append(response.status_code)

        async def watch() -> None:
            nonlocal peak_queued
            while len(statuses) < 4:
                peak_queued = max(peak_queued, sim.concurrency["queued"])
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            for index in range(4):
                group.start_soon(one, index)
    assert statuses == [200] * 4
    assert sim.concurrency["peak_in_flight"] == expected_peak
    assert sim.concurrency["in_flight"] == sim.concurrency["queued"] == 0
    assert peak_queued >= 4 - slots - 1  # the rest waited for a slot


async def test_local_dialects_publish_no_rate_limits() -> None:
    with pytest.raises(ValueError, match="publishes no rate limits"):
        SimulatorConfig(dialect="llama.cpp", rpm=60)
    with pytest.raises(ValueError, match="unknown dialect"):
        SimulatorConfig(dialect="ollama")  # type: ignore[arg-type]


# ---------------------------------------------------------------- vLLM


@pytest.mark.raftkit_simulator(dialect="vllm")
async def test_vllm_honours_json_schema_and_guided_decoding(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    bodies = [
        chat_body(
            VLLM_MODEL,
            question(),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "year", "schema": YEAR_SCHEMA},
            },
        ),
        chat_body(VLLM_MODEL, question(), guided_json=YEAR_SCHEMA),
        chat_body(VLLM_MODEL, question(), guided_json=json.dumps(YEAR_SCHEMA)),
        chat_body(VLLM_MODEL, question(), structured_outputs={"json": YEAR_SCHEMA}),
    ]
    for body in bodies:
        response = await chat(sim, body)
        assert response.status_code == 200, response.text
        validate("CreateChatCompletionResponse", response.json())
        content = response.json()["choices"][0]["message"]["content"]
        jsonschema.validate(json.loads(content), YEAR_SCHEMA)
        assert not any(name.startswith("x-ratelimit") for name in response.headers)
    choice = await chat(sim, chat_body(VLLM_MODEL, question(), guided_choice=["yes", "no"]))
    assert json.loads(choice.json()["choices"][0]["message"]["content"]) in ("yes", "no")


@pytest.mark.raftkit_simulator(dialect="vllm")
async def test_vllm_answers_only_its_served_models_with_its_own_404(
    raftkit_simulator: Simulator,
) -> None:
    response = await chat(raftkit_simulator, chat_body("gpt-4o-mini", question()))
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "The model `gpt-4o-mini` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }
    async with openai_client(raftkit_simulator) as client:
        listing = (await client.get("/models")).json()
    validate("ListModelsResponse", listing)
    (model,) = listing["data"]
    assert model["id"] == VLLM_MODEL
    assert model["owned_by"] == "vllm"
    assert model["max_model_len"] == 8192


@pytest.mark.raftkit_simulator(dialect="vllm", served_models=("student",), context_window=300)
async def test_vllm_served_models_and_context_are_configurable(
    raftkit_simulator: Simulator,
) -> None:
    ok = await chat(raftkit_simulator, chat_body("student", question(), max_tokens=20))
    assert ok.status_code == 200
    overflow = await chat(raftkit_simulator, chat_body("student", question(), max_tokens=500))
    assert overflow.status_code == 400
    assert overflow.json()["error"]["type"] == "BadRequestError"
    assert overflow.json()["error"]["code"] == 400


async def test_openai_refuses_vllm_extra_body(raftkit_simulator: Simulator) -> None:
    response = await chat(
        raftkit_simulator, chat_body("gpt-4o-mini", question(), guided_json=YEAR_SCHEMA)
    )
    assert response.status_code == 400
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["message"] == (
        "Unrecognized request argument supplied: guided_json"
    )

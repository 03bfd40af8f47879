"""The simulator's chat completions over real HTTP, checked against the official schemas."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema
import pytest

from openapi_schemas import validate, validate_azure
from raftkit.testing import Simulator

pytestmark = pytest.mark.anyio

ENGLISH_DOCS = [
    "The Eiffel Tower is in Paris. It was completed in 1889 for the World's Fair. "
    "Gustave Eiffel's company designed and built it.",
    "Mount Everest is the highest mountain above sea level. It lies in the Himalayas. "
    "Its summit is 8,849 metres high.",
]
CHINESE_DOC = "长城是中国古代的军事防御工程。它的总长度超过两万公里！明朝修建了现存的大部分城墙。"

QUOTE = re.compile(r"##begin_quote##(.*?)##end_quote##", re.DOTALL)


def raft_messages(question: str, documents: list[str]) -> list[dict[str, Any]]:
    context = "\n".join(f"<DOCUMENT>{doc}</DOCUMENT>" for doc in documents)
    return [
        {
            "role": "system",
            "content": "Answer with reasoning, quotes between ##begin_quote## and "
            "##end_quote##, and a last line <ANSWER>: $answer.",
        },
        {"role": "user", "content": f"{context}\n{question}"},
    ]


def auth(sim: Simulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.api_key}"}


async def chat(sim: Simulator, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10, verify=False) as client:
        return await client.post(
            f"{sim.base_url}/chat/completions", headers=auth(sim), json=body, **kwargs
        )


async def test_raft_answer_quotes_the_best_matching_document_verbatim(
    raftkit_simulator: Simulator,
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": raft_messages("How many metres high is the summit?", ENGLISH_DOCS),
    }
    response = await chat(raftkit_simulator, body)
    assert response.status_code == 200
    payload = response.json()
    validate("CreateChatCompletionResponse", payload)
    content = payload["choices"][0]["message"]["content"]
    quotes = QUOTE.findall(content)
    assert quotes == ["Its summit is 8,849 metres high."]
    assert content.splitlines()[-1].startswith("<ANSWER>: ")
    usage = payload["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert response.headers["x-request-id"].startswith("req_")


async def test_same_request_same_answer_and_seed_can_vary_it(
    raftkit_simulator: Simulator,
) -> None:
    messages = raft_messages("Who designed the tower?", ENGLISH_DOCS)
    first = await chat(raftkit_simulator, {"model": "gpt-4o-mini", "messages": messages})
    again = await chat(raftkit_simulator, {"model": "gpt-4o-mini", "messages": messages})
    content = first.json()["choices"][0]["message"]["content"]
    assert again.json()["choices"][0]["message"]["content"] == content
    seeded = {
        (
            await chat(
                raftkit_simulator, {"model": "gpt-4o-mini", "messages": messages, "seed": seed}
            )
        ).json()["choices"][0]["message"]["content"]
        for seed in range(8)
    }
    assert len(seeded) > 1
    for answer in seeded:
        (quote,) = QUOTE.findall(answer)
        assert quote in ENGLISH_DOCS[0] + ENGLISH_DOCS[1]


async def test_chinese_documents_give_a_verbatim_chinese_quote(
    raftkit_simulator: Simulator,
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": raft_messages("长城的总长度是多少？", [CHINESE_DOC]),
    }
    payload = (await chat(raftkit_simulator, body)).json()
    content = payload["choices"][0]["message"]["content"]
    assert QUOTE.findall(content) == ["它的总长度超过两万公里！"]
    assert "<ANSWER>: " in content
    # about one token per CJK character, not one per four
    assert payload["usage"]["prompt_tokens"] >= len(CHINESE_DOC)


async def test_json_schema_output_is_valid_with_n_distinct_questions(
    raftkit_simulator: Simulator,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "questions": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 5,
                "maxItems": 5,
            },
            "difficulty": {"type": "string", "enum": ["easy", "hard"]},
            "count": {"type": "integer", "minimum": 1, "maximum": 9},
            "meta": {"$ref": "#/$defs/Meta"},
        },
        "required": ["questions", "difficulty", "count", "meta"],
        "additionalProperties": False,
        "$defs": {
            "Meta": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}, "score": {"type": "number"}},
                "required": ["ok", "score"],
            }
        },
    }
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": f"<DOCUMENT>{ENGLISH_DOCS[0]}</DOCUMENT> Ask 5 questions."}
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "questions", "schema": schema, "strict": True},
        },
    }
    payload = (await chat(raftkit_simulator, body)).json()
    validate("CreateChatCompletionResponse", payload)
    instance = json.loads(payload["choices"][0]["message"]["content"])
    jsonschema.validate(instance, schema)
    assert len(set(instance["questions"])) == 5
    asked = " ".join(instance["questions"])
    assert any(fact in asked for fact in ("Paris", "1889", "Eiffel"))


async def test_json_object_mode_follows_a_schema_written_in_the_prompt(
    raftkit_simulator: Simulator,
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
        "required": ["answer", "confidence"],
    }
    prompt = (
        f"Reply in JSON matching this schema: {json.dumps(schema)}\n"
        f"<DOCUMENT>{ENGLISH_DOCS[1]}</DOCUMENT>"
    )
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": prompt}],
        "response_format": {"type": "json_object"},
    }
    payload = (await chat(raftkit_simulator, body)).json()
    instance = json.loads(payload["choices"][0]["message"]["content"])
    jsonschema.validate(instance, schema)
    assert instance["answer"]


async def test_json_object_mode_needs_the_word_json(raftkit_simulator: Simulator) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "response_format": {"type": "json_object"},
    }
    response = await chat(raftkit_simulator, body)
    assert response.status_code == 400
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == "messages"


async def test_image_parts_get_markdown(raftkit_simulator: Simulator) -> None:
    content = [
        {"type": "text", "text": "Transcribe this page to Markdown."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    first = (await chat(raftkit_simulator, body)).json()
    second = (await chat(raftkit_simulator, body)).json()
    text = first["choices"][0]["message"]["content"]
    assert text.startswith("# ")
    assert "| --- | --- |" in text
    assert second["choices"][0]["message"]["content"] == text


async def test_max_tokens_cuts_with_finish_reason_length(raftkit_simulator: Simulator) -> None:
    messages = raft_messages("When was it completed?", ENGLISH_DOCS)
    payload = (
        await chat(
            raftkit_simulator, {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 5}
        )
    ).json()
    choice = payload["choices"][0]
    assert choice["finish_reason"] == "length"
    assert 0 < payload["usage"]["completion_tokens"] <= 5
    full = (await chat(raftkit_simulator, {"model": "gpt-4o-mini", "messages": messages})).json()
    assert full["choices"][0]["message"]["content"].startswith(choice["message"]["content"])


async def test_stop_sequence_ends_the_answer(raftkit_simulator: Simulator) -> None:
    messages = raft_messages("When was it completed?", ENGLISH_DOCS)
    payload = (
        await chat(
            raftkit_simulator, {"model": "gpt-4o-mini", "messages": messages, "stop": ["<ANSWER>"]}
        )
    ).json()
    choice = payload["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert "<ANSWER>" not in choice["message"]["content"]
    assert "##end_quote##" in choice["message"]["content"]


async def test_n_choices(raftkit_simulator: Simulator) -> None:
    messages = raft_messages("What is in the Himalayas?", ENGLISH_DOCS)
    payload = (
        await chat(raftkit_simulator, {"model": "gpt-4o-mini", "messages": messages, "n": 3})
    ).json()
    validate("CreateChatCompletionResponse", payload)
    assert [choice["index"] for choice in payload["choices"]] == [0, 1, 2]


async def test_misbehaviour_for_the_next_requests(raftkit_simulator: Simulator) -> None:
    messages = raft_messages("How high is the summit?", ENGLISH_DOCS)
    body = {"model": "gpt-4o-mini", "messages": messages}
    raftkit_simulator.misbehave("missing_answer")
    raftkit_simulator.misbehave("invented_quote")
    broken = (await chat(raftkit_simulator, body)).json()["choices"][0]["message"]["content"]
    healthy = (await chat(raftkit_simulator, body)).json()["choices"][0]["message"]["content"]
    assert "<ANSWER>:" not in broken
    (invented,) = QUOTE.findall(broken)
    assert invented not in "".join(ENGLISH_DOCS)
    assert "<ANSWER>:" in healthy
    (quote,) = QUOTE.findall(healthy)
    assert quote in "".join(ENGLISH_DOCS)


async def test_invalid_json_misbehaviour(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.misbehave("invalid_json", times=1)
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"<DOCUMENT>{ENGLISH_DOCS[0]}</DOCUMENT>"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "a",
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        },
    }
    broken = (await chat(raftkit_simulator, body)).json()["choices"][0]["message"]["content"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)
    healthy = (await chat(raftkit_simulator, body)).json()["choices"][0]["message"]["content"]
    assert isinstance(json.loads(healthy)["a"], str)


@pytest.mark.raftkit_simulator(misbehaviour={"missing_answer": 1.0})
async def test_misbehaviour_by_probability(raftkit_simulator: Simulator) -> None:
    body = {"model": "gpt-4o-mini", "messages": raft_messages("Who built it?", ENGLISH_DOCS)}
    for _ in range(3):
        content = (await chat(raftkit_simulator, body)).json()["choices"][0]["message"]["content"]
        assert "<ANSWER>:" not in content


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "hi"}]},
            "messages[0].role",
        ),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 3}]},
            "messages[0].content",
        ),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        (
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": "9",
            },
            "max_tokens",
        ),
        (
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "x"}],
                "temperature": 3,
            },
            "temperature",
        ),
    ],
)
async def test_bad_requests_name_the_parameter(
    raftkit_simulator: Simulator, body: dict[str, Any], param: str
) -> None:
    response = await chat(raftkit_simulator, body)
    assert response.status_code == 400
    payload = response.json()
    validate("ErrorResponse", payload)
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["error"]["param"] == param


async def test_body_that_is_not_json(raftkit_simulator: Simulator) -> None:
    response = await chat(raftkit_simulator, {}, content=b"{not json")
    assert response.status_code == 400
    validate("ErrorResponse", response.json())


async def test_wrong_or_missing_key_is_401(raftkit_simulator: Simulator) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(verify=False) as client:
        url = f"{raftkit_simulator.base_url}/chat/completions"
        missing = await client.post(url, json=body)
        wrong = await client.post(url, json=body, headers={"Authorization": "Bearer sk-wrong"})
    for response in (missing, wrong):
        assert response.status_code == 401
        validate("ErrorResponse", response.json())
        assert "sk-wrong" not in response.text
    assert wrong.json()["error"]["code"] == "invalid_api_key"


async def test_model_allow_list_and_registered_models(
    raftkit_simulator_factory: Any,
) -> None:
    sim: Simulator = raftkit_simulator_factory(chat_models=frozenset({"gpt-4o-mini"}))
    tuned = "ft:gpt-4o-mini:org:raft:abc123"
    body = {"model": tuned, "messages": [{"role": "user", "content": "hi"}]}
    refused = await chat(sim, body)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "model_not_found"
    sim.register_model(tuned)
    assert (await chat(sim, body)).status_code == 200
    async with httpx.AsyncClient(verify=False) as client:
        listed = await client.get(f"{sim.base_url}/models", headers=auth(sim))
        one = await client.get(f"{sim.base_url}/models/{tuned}", headers=auth(sim))
    validate("ListModelsResponse", listed.json())
    assert tuned in {model["id"] for model in listed.json()["data"]}
    validate("Model", one.json())


async def test_unknown_path_is_an_openai_shaped_404(raftkit_simulator: Simulator) -> None:
    async with httpx.AsyncClient(verify=False) as client:
        response = await client.get(
            f"{raftkit_simulator.base_url}/nothing", headers=auth(raftkit_simulator)
        )
    assert response.status_code == 404
    validate("ErrorResponse", response.json())


async def test_request_log_drops_credentials(raftkit_simulator: Simulator) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    response = await chat(raftkit_simulator, body, params={"trace": "1"})
    (record,) = raftkit_simulator.requests
    assert record.method == "POST"
    assert record.path == "/v1/chat/completions"
    assert record.query == {"trace": "1"}
    assert record.json == body
    assert record.status == 200
    assert record.request_id == response.headers["x-request-id"]
    assert "authorization" not in record.headers
    assert raftkit_simulator.api_key not in repr(record)


async def test_prompt_caching_reports_cached_tokens(raftkit_simulator: Simulator) -> None:
    system = {"role": "system", "content": " ".join(["Context sentence number one."] * 400)}
    first = {"model": "gpt-4o-mini", "messages": [system, {"role": "user", "content": "first?"}]}
    second = {"model": "gpt-4o-mini", "messages": [system, {"role": "user", "content": "second?"}]}
    cold = (await chat(raftkit_simulator, first)).json()["usage"]
    warm = (await chat(raftkit_simulator, second)).json()["usage"]
    assert cold["prompt_tokens_details"]["cached_tokens"] == 0
    cached = warm["prompt_tokens_details"]["cached_tokens"]
    assert cached >= 1024
    assert cached % 128 == 0
    assert cached <= warm["prompt_tokens"]


async def test_streaming_sends_chunks_and_done(raftkit_simulator: Simulator) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": raft_messages("Who built it?", ENGLISH_DOCS),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await chat(raftkit_simulator, body)
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert "<ANSWER>:" in text
    assert chunks[-1]["usage"]["total_tokens"] > 0


async def test_azure_deployment_route(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    sim.register_deployment("my-gpt", "gpt-4o-mini")
    body = {"messages": raft_messages("Who built it?", ENGLISH_DOCS)}
    url = f"{sim.azure_endpoint}/openai/deployments/my-gpt/chat/completions"
    async with httpx.AsyncClient(verify=False) as client:
        ok = await client.post(
            url, params={"api-version": "2024-10-21"}, json=body, headers={"api-key": sim.api_key}
        )
        no_version = await client.post(url, json=body, headers={"api-key": sim.api_key})
        wrong_key = await client.post(
            url, params={"api-version": "2024-10-21"}, json=body, headers={"api-key": "nope"}
        )
        v1 = await client.post(
            f"{sim.azure_endpoint}/openai/v1/chat/completions",
            json={"model": "my-gpt", **body},
            headers={"Authorization": f"Bearer {sim.api_key}"},
        )
    assert ok.status_code == 200
    validate_azure("createChatCompletionResponse", ok.json())
    validate("CreateChatCompletionResponse", ok.json())
    assert ok.json()["model"] == "gpt-4o-mini"
    assert ok.headers["apim-request-id"]
    assert no_version.status_code == 400
    assert no_version.json()["error"]["param"] == "api-version"
    assert wrong_key.status_code == 401
    validate_azure("errorResponse", wrong_key.json())
    assert v1.status_code == 200
    validate("CreateChatCompletionResponse", v1.json())

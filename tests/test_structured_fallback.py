"""Structured output a server cannot do: recognised on the first refusal, never retried, fallen
back from json_schema to json_object to prompt (remembered per model), said once in the log,
and never when the caller chose the mode."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import BaseModel

from raftkit.errors import InternalServerError, UsageError
from raftkit.llm import OpenAIClient, RetryPolicy, StructuredMode
from raftkit.pipeline import RaftConfig, RaftPipeline
from raftkit.testing import Fault, Simulator

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "Write a question about bats."}]
FAST = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002)
# llama-cpp-python's server: a pydantic validation error, answered as a 500
LLAMA_CPP_PYTHON = {
    "error": {
        "message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
        "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}]",
        "type": "internal_server_error",
        "param": None,
        "code": None,
    }
}
# LM Studio: no json_object (only json_schema or text)
LM_STUDIO = {"error": "'response_format.type' must be 'json_schema' or 'text'"}


class Question(BaseModel):
    question: str


class LocalServer:
    """An OpenAI-compatible server that refuses some response_format types."""

    def __init__(self, refuses: dict[str, tuple[int, Any]]) -> None:
        self.refuses = refuses
        self.sent: list[str] = []  # the response_format type of every chat request

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        kind = (body.get("response_format") or {}).get("type", "none")
        self.sent.append(kind)
        if kind in self.refuses:
            status, error = self.refuses[kind]
            return httpx.Response(status, json=error)
        answer = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": '{"question": "Why?"}'},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
        }
        return httpx.Response(200, json=answer)


def client_for(server: LocalServer, mode: StructuredMode | None = None) -> OpenAIClient:
    return OpenAIClient(
        base_url="http://127.0.0.1:8080/v1",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(server)),
        retry=FAST,
        structured_mode=mode,
    )


def fallbacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refuses structured output" in r.getMessage()]


async def test_a_refused_json_schema_falls_back_to_json_object_once_and_for_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = LocalServer({"json_schema": (500, LLAMA_CPP_PYTHON)})
    caplog.set_level(logging.WARNING, logger="raftkit.llm")
    async with client_for(server) as client:
        first = await client.chat_structured(MESSAGES, Question, model="smollm2")
        assert first.output == Question(question="Why?")
        assert first.mode == "json_object"
        # the 500 was recognised on the first reply and not retried
        assert server.sent == ["json_schema", "json_object"]
        assert client.structured_modes() == {"smollm2": "json_object"}
        # later calls, and clients sharing the connection, go straight to the working mode
        await client.chat_structured(MESSAGES, Question, model="smollm2")
        journaled = client.with_store(MemoryStore())
        await journaled.chat_structured(MESSAGES, Question, model="smollm2")
        assert server.sent[2:] == ["json_object", "json_object"]
        # another model on the same server is learned on its own
        await client.chat_structured(MESSAGES, Question, model="other")
        assert client.structured_modes() == {"smollm2": "json_object", "other": "json_object"}
    messages = fallbacks(caplog)
    assert len(messages) == 2  # once per model
    assert "as json_schema" in messages[0]
    assert "in json_object mode" in messages[0]
    assert "Input should be 'text' or 'json_object'" in messages[0]


async def test_concurrent_first_calls_say_it_once(caplog: pytest.LogCaptureFixture) -> None:
    server = LocalServer({"json_schema": (500, LLAMA_CPP_PYTHON)})
    caplog.set_level(logging.WARNING, logger="raftkit.llm")
    results: list[Any] = []

    async def one() -> None:
        results.append(await client.chat_structured(MESSAGES, Question, model="m"))

    async with client_for(server) as client, anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert len(results) == 8
    assert {r.mode for r in results} == {"json_object"}
    assert len(fallbacks(caplog)) == 1
    assert server.sent.count("json_schema") <= 8  # each refused once, never retried
    assert server.sent.count("json_object") == 8


async def test_a_server_without_json_object_either_gets_the_schema_in_the_prompt() -> None:
    server = LocalServer({"json_schema": (500, LLAMA_CPP_PYTHON), "json_object": (400, LM_STUDIO)})
    async with client_for(server) as client:
        result = await client.chat_structured(MESSAGES, Question, model="m")
    assert result.mode == "prompt"
    assert server.sent == ["json_schema", "json_object", "none"]
    assert client.structured_modes() == {"m": "prompt"}


async def test_a_server_that_does_json_schema_keeps_it() -> None:
    server = LocalServer({})
    async with client_for(server) as client:
        result = await client.chat_structured(MESSAGES, Question, model="m")
    assert result.mode == "json_schema"
    assert server.sent == ["json_schema"]
    assert client.structured_modes() == {"m": "json_schema"}


@pytest.mark.parametrize("where", ["client", "call"])
async def test_a_mode_the_caller_chose_is_never_changed(where: str) -> None:
    server = LocalServer({"json_schema": (500, LLAMA_CPP_PYTHON)})
    chosen: StructuredMode = "json_schema"
    per_call: StructuredMode | None = chosen if where == "call" else None
    async with client_for(server, chosen if where == "client" else None) as client:
        with pytest.raises(UsageError) as caught:
            await client.chat_structured(MESSAGES, Question, model="m", mode=per_call)
    message = str(caught.value)
    assert "\n" not in message
    assert "--structured-mode json_object" in message
    assert "http://127.0.0.1:8080/v1" in message
    assert "500" in message
    assert server.sent == ["json_schema"]  # one request, not retried, not changed
    assert client.structured_modes() == {}
    assert isinstance(caught.value.__cause__, InternalServerError)


async def test_a_chosen_json_object_mode_suggests_prompt() -> None:
    server = LocalServer({"json_object": (400, LM_STUDIO)})
    async with client_for(server, "json_object") as client:
        with pytest.raises(UsageError, match="--structured-mode prompt"):
            await client.chat_structured(MESSAGES, Question, model="m")
    assert server.sent == ["json_object"]


async def test_other_server_errors_are_retried_and_not_taken_for_a_refusal() -> None:
    server = LocalServer({"json_schema": (500, {"error": {"message": "CUDA out of memory"}})})
    async with client_for(server) as client:
        with pytest.raises(InternalServerError, match="CUDA"):
            await client.chat_structured(MESSAGES, Question, model="m")
    assert server.sent == ["json_schema"] * FAST.max_attempts
    assert client.structured_modes() == {}


class MemoryStore:
    """A journal in memory (the ResponseStore protocol)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        return self.items.get(key)

    async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        self.items[key] = response


async def test_a_generation_run_reports_the_mode_it_fell_back_to(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bats.txt").write_text(
        "Bats are the only mammals capable of true and sustained flight. " * 30, encoding="utf-8"
    )
    async with Simulator() as sim:
        # the first structured request meets a llama.cpp-style refusal of json_schema
        sim.add_fault(Fault.error(500, message=LLAMA_CPP_PYTHON["error"]["message"]), times=1)
        async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, retry=FAST) as c:
            config = RaftConfig(
                teacher_model="gpt-4.1", questions_per_chunk=1, chunk_size=256, concurrency=1
            )
            report = await RaftPipeline(c, config).run(docs, tmp_path / "run")
        formats = [
            (r.json or {}).get("response_format", {}).get("type")
            for r in sim.requests
            if r.path.endswith("/chat/completions")
        ]
    assert report.status == "completed"
    assert report.examples > 0
    assert report.structured_modes == {"gpt-4.1": "json_object"}
    assert formats[0] == "json_schema"
    assert {f for f in formats[1:] if f is not None} == {"json_object"}  # answers ask no JSON
    markdown = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "| structured output | gpt-4.1: json_object |" in markdown
    saved = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    assert saved["structured_modes"] == {"gpt-4.1": "json_object"}

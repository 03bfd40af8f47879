"""Helpers shared by the simulator's tests: clients, uploads, polling, RAFT prompts."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from raftkit.testing import Simulator

__all__ = [
    "FORMAT",
    "azure_client",
    "chat",
    "chat_body",
    "control_client",
    "openai_client",
    "poll",
    "preference_jsonl",
    "raft_prompt",
    "sft_jsonl",
    "upload",
]

FORMAT = (
    "Quote the documents between ##begin_quote## and ##end_quote## and end with a line "
    "<ANSWER>: $answer."
)


def openai_client(sim: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=20
    )


def azure_client(sim: Simulator, api_version: str = "2025-04-01-preview") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{sim.azure_endpoint}/openai",
        headers={"api-key": sim.api_key},
        params={"api-version": api_version},
        timeout=20,
    )


def control_client(sim: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=sim.azure_endpoint, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=20
    )


def raft_prompt(question: str, documents: list[str], *, instructed: bool = True) -> str:
    context = "".join(f"<DOCUMENT>{doc}</DOCUMENT>\n" for doc in documents)
    return f"{context}{question}" + (f"\n{FORMAT}" if instructed else "")


def chat_body(model: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


async def chat(sim: Simulator, body: dict[str, Any]) -> httpx.Response:
    async with openai_client(sim) as client:
        return await client.post("/chat/completions", json=body)


async def upload(
    client: httpx.AsyncClient, content: bytes, purpose: str = "fine-tune"
) -> dict[str, Any]:
    response = await client.post(
        "/files",
        files={"file": ("data.jsonl", content, "application/jsonl")},
        data={"purpose": purpose},
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def poll(
    fetch: Callable[[], Awaitable[dict[str, Any]]], done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first state ``done`` accepts; a deadline, not a timing assertion."""
    with anyio.fail_after(20):
        while True:
            current = await fetch()
            if done(current):
                return current
            await anyio.sleep(0.01)


def sft_jsonl(count: int = 12) -> bytes:
    row = {
        "messages": [
            {"role": "user", "content": "Where is the Eiffel Tower?"},
            {"role": "assistant", "content": "It is in Paris."},
        ]
    }
    return ("\n".join(json.dumps(row) for _ in range(count)) + "\n").encode()


def preference_jsonl(count: int = 12, **overrides: Any) -> bytes:
    row: dict[str, Any] = {
        "input": {"messages": [{"role": "user", "content": "Where is the Eiffel Tower?"}]},
        "preferred_output": [{"role": "assistant", "content": "<ANSWER>: Paris"}],
        "non_preferred_output": [{"role": "assistant", "content": "It is in Rome."}],
    }
    row.update(overrides)
    lines = [json.dumps(row, ensure_ascii=False) for _ in range(count)]
    return ("\n".join(lines) + "\n").encode()

"""How a user tests their own code against raftkit's simulator (the pytest plugin's fixture).

Run with ``pytest examples/test_my_service.py``; raftkit's test suite runs it too.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from raftkit.llm import OpenAIClient
from raftkit.testing import Fault, Simulator

pytestmark = pytest.mark.anyio


class Summary(BaseModel):
    title: str
    keywords: list[str]


async def summarise(client: OpenAIClient, text: str) -> Summary:
    """The user's code under test: one structured call."""
    reply = await client.chat_structured(
        [{"role": "user", "content": f"Summarise as JSON: {text}"}], Summary, model="gpt-4o-mini"
    )
    output: Summary = reply.output
    return output


async def test_summarise_survives_a_server_error(raftkit_simulator: Simulator) -> None:
    raftkit_simulator.add_fault(Fault.error(503))  # the first request fails, the retry succeeds
    async with OpenAIClient(
        base_url=raftkit_simulator.base_url, api_key=raftkit_simulator.api_key
    ) as client:
        summary = await summarise(client, "Vampire bats share blood with hungry roost-mates.")
    assert summary.title
    statuses = [r.status for r in raftkit_simulator.requests]
    assert statuses == [503, 200]

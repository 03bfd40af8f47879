"""The simulated teacher's answers to question-quality requests: ratings of numbered
questions, a question about two documents, typed question lists, and an answer quoting each
of two documents. Requests are sent as raw HTTP, the way any client would send them."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema
import pytest

from raftkit.testing import Simulator

pytestmark = pytest.mark.anyio

QUOTE = re.compile(r"##begin_quote##(.*?)##end_quote##", re.DOTALL)
BATS = (
    "Bats are the only mammals capable of true and sustained flight. Vampire bats feed on the "
    "blood of cattle in Mexico. Most bats are nocturnal and roost in caves."
)
SURF = (
    "Surfing was born in Hawaii on long wooden boards. A hydrofoil lifts a foilboard above water."
)


async def ask(sim: Simulator, body: dict[str, Any]) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{sim.base_url}/chat/completions",
            headers={"Authorization": f"Bearer {sim.api_key}"},
            json={"model": "gpt-4o", **body},
        )
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def structured(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}


RATINGS = {
    "type": "object",
    "properties": {
        "ratings": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "string"},
    },
    "required": ["ratings", "notes"],
}


async def test_numbered_questions_are_rated_sensibly(
    anyio_backend: str, raftkit_simulator: Simulator
) -> None:
    questions = [
        "Which mammals are capable of true and sustained flight?",
        "What does the text say about vampire bats?",
        "What is known about caves?",
        "Who won the 1998 football world cup final?",
        "哪些哺乳动物能够飞行？",
    ]
    numbered = "\n".join(f"{i}. {q}" for i, q in enumerate(questions, start=1))
    body = {
        "messages": [
            {"role": "system", "content": "Rate each numbered question."},
            {"role": "user", "content": f"<DOCUMENT>{BATS}</DOCUMENT>\nQuestions:\n{numbered}"},
        ],
        "response_format": structured(RATINGS),
    }
    answer = json.loads(await ask(raftkit_simulator, body))
    jsonschema.validate(answer, RATINGS)
    assert answer["ratings"] == ["5555", "1555", "5525", "5155", "5151"]
    assert answer["notes"] == (
        "2: refers to the text; 3: vague; 4: not in the excerpts; "
        "5: not in the excerpts, wrong language"
    )
    # four integers per question when the schema's items are arrays
    as_lists = {
        "type": "object",
        "properties": {"ratings": {"type": "array", "items": {"type": "array"}}},
    }
    body["response_format"] = structured(as_lists)
    answer = json.loads(await ask(raftkit_simulator, body))
    assert answer["ratings"][1] == [1, 5, 5, 5]


async def test_a_question_needing_both_documents_joins_two(
    anyio_backend: str, raftkit_simulator: Simulator
) -> None:
    schema = {
        "type": "object",
        "properties": {"questions": {"type": "array", "items": {"type": "string"}}},
    }
    body = {
        "messages": [
            {"role": "system", "content": "Write one question that needs BOTH documents below."},
            {
                "role": "user",
                "content": f"<DOCUMENT>{BATS}</DOCUMENT>\n<DOCUMENT>{SURF}</DOCUMENT>",
            },
        ],
        "response_format": structured(schema),
    }
    (question,) = json.loads(await ask(raftkit_simulator, body))["questions"]
    assert question == (
        "What are the only mammals capable of true and sustained flight, and what was born in "
        "Hawaii on long wooden boards?"
    )


async def test_typed_question_lists_follow_the_types_asked_for(
    anyio_backend: str, raftkit_simulator: Simulator
) -> None:
    item = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["factoid", "explanation", "comparison"]},
            "question": {"type": "string"},
        },
    }
    schema = {
        "type": "object",
        "properties": {"questions": {"type": "array", "items": item, "minItems": 3, "maxItems": 3}},
    }
    system = "Write 3 questions of these types:\n- 2 explanation: why or how\n- 1 comparison: x"
    body = {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Chunk:\n{BATS}"},
        ],
        "response_format": structured(schema),
    }
    answer = json.loads(await ask(raftkit_simulator, body))
    assert [q["type"] for q in answer["questions"]] == ["explanation", "explanation", "comparison"]


async def test_asked_to_quote_each_document_the_answer_quotes_two(
    anyio_backend: str, raftkit_simulator: Simulator
) -> None:
    prompt = (
        f"<DOCUMENT>{BATS}</DOCUMENT>\n<DOCUMENT>{SURF}</DOCUMENT>\n"
        "Question: Which bats feed on blood, and where was surfing born?\n"
        "Quote between ##begin_quote## and ##end_quote##, end with <ANSWER>: $answer.\n"
        "The question needs every document above: quote each of them."
    )
    content = await ask(raftkit_simulator, {"messages": [{"role": "user", "content": prompt}]})
    first, second = QUOTE.findall(content)
    assert first in BATS
    assert second in SURF
    assert content.splitlines()[-1].startswith("<ANSWER>: ")

"""The deterministic teacher on real text: a corpus PDF, Chinese text, and the schema subset."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pymupdf
import pytest

from data_files import DRACULAE
from raftkit.testing import Simulator
from raftkit.testing._schema_fill import fill_schema
from raftkit.testing._text import estimate_tokens, split_sentences

pytestmark = pytest.mark.anyio

QUOTE = re.compile(r"##begin_quote##(.*?)##end_quote##", re.DOTALL)


def first_pages(path: Path, pages: int = 2) -> str:
    document = pymupdf.open(path)  # type: ignore[no-untyped-call]
    try:
        return "\n".join(
            str(document[i].get_text())  # type: ignore[no-untyped-call]
            for i in range(min(pages, len(document)))
        )
    finally:
        document.close()  # type: ignore[no-untyped-call]


async def ask(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(verify=False, timeout=30) as client:
        response = await client.post(
            f"{sim.base_url}/chat/completions",
            headers={"Authorization": f"Bearer {sim.api_key}"},
            json=body,
        )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_quote_from_a_real_pdf_is_verbatim(raftkit_simulator: Simulator) -> None:
    text = first_pages(DRACULAE)
    distractor = "Surfing is a surface water sport. Surfers ride waves toward the shore."
    prompt = (
        f"<DOCUMENT>{distractor}</DOCUMENT>\n<DOCUMENT>{text}</DOCUMENT>\n"
        "Question: Where were fossils of Desmodus draculae found?\n"
        "Quote the documents between ##begin_quote## and ##end_quote## and end with <ANSWER>:."
    )
    result = await ask(
        raftkit_simulator,
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]},
    )
    content = result["choices"][0]["message"]["content"]
    (quote,) = QUOTE.findall(content)
    assert quote in text
    assert quote not in distractor


async def test_chinese_structured_questions(raftkit_simulator: Simulator) -> None:
    document = "长城是中国古代的军事防御工程。它的总长度超过两万公里！明朝修建了现存的大部分城墙。"
    schema = {
        "type": "object",
        "properties": {"questions": {"type": "array", "items": {"type": "string"}, "minItems": 3}},
        "required": ["questions"],
    }
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"<DOCUMENT>{document}</DOCUMENT>"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "q", "schema": schema}},
    }
    result = await ask(raftkit_simulator, body)
    questions = json.loads(result["choices"][0]["message"]["content"])["questions"]
    assert len(set(questions)) == 3
    assert all(question.endswith("？") for question in questions)


def test_fill_schema_subset() -> None:
    schema: dict[str, Any] = {
        "$defs": {"Pair": {"type": "object", "properties": {"k": {"type": "string"}}}},
        "type": "object",
        "properties": {
            "kind": {"const": "raft"},
            "level": {"type": "integer", "minimum": 3, "maximum": 4},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "flag": {"type": "boolean"},
            "nothing": {"type": "null"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 5}]},
            "pairs": {"type": "array", "items": {"$ref": "#/$defs/Pair"}, "maxItems": 2},
            "short": {"type": "string", "minLength": 40},
            "answers": {"type": ["array", "null"], "items": {"type": "string"}},
            "color": {"enum": ["red", "green"]},
            "both": {"allOf": [{"properties": {"a": {"type": "string"}}}]},
        },
    }
    instance = fill_schema(schema, "One sentence. Two sentences! Three?", seed=5)
    jsonschema.validate(instance, schema)
    assert instance["kind"] == "raft"
    assert len(instance["pairs"]) == 2
    assert instance == fill_schema(schema, "One sentence. Two sentences! Three?", seed=5)


def test_sentence_split_and_token_estimate_handle_cjk() -> None:
    assert split_sentences("D. draculae lived (e.g. here).[4] Dr. Who left. 你好。") == [
        "D. draculae lived (e.g. here).[4]",
        "Dr. Who left.",
        "你好。",
    ]
    assert split_sentences("Hi there. 你好。再见！OK? Done") == [
        "Hi there.",
        "你好。",
        "再见！",
        "OK?",
        "Done",
    ]
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("internationalisation") == 5


@pytest.mark.parametrize("mode", ["json_schema", "json_object"])
async def test_several_numbered_questions_get_a_raft_answer_each(
    raftkit_simulator: Simulator, mode: str
) -> None:
    text = first_pages(DRACULAE)
    questions = [
        "Where were fossils of Desmodus draculae found?",
        "When did Desmodus draculae become extinct?",
        "How large was Desmodus draculae?",
    ]
    schema = {
        "type": "object",
        "properties": {
            "answers": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}
        },
        "required": ["answers"],
        "additionalProperties": False,
    }
    system = (
        "Answer from the documents. Quote them between ##begin_quote## and ##end_quote## and "
        "end each answer with <ANSWER>: $answer. Return JSON."
    )
    listed = "\n".join(f"Question {i}: {q}" for i, q in enumerate(questions, start=1))
    body: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": f"<DOCUMENT>{text}</DOCUMENT>\n{listed}"},
        ],
    }
    if mode == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answers", "schema": schema, "strict": True},
        }
    else:
        body["messages"][0]["content"] += " Schema: " + json.dumps(schema)
        body["response_format"] = {"type": "json_object"}
    result = await ask(raftkit_simulator, body)
    answers = json.loads(result["choices"][0]["message"]["content"])["answers"]
    assert len(answers) == 3
    for answer in answers:
        (quote,) = QUOTE.findall(answer)
        assert quote in text
        assert "<ANSWER>:" in answer
    # each is the answer the question would get alone (with its own draw of the model's slips)
    assert len(set(answers)) >= 2

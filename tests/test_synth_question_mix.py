"""Question types: the mix's forms, the allocation per chunk, personas, and the typed
synthesizer against the simulator."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from raftkit.errors import InputError, UsageError
from raftkit.llm import OpenAIClient
from raftkit.synth import BUILTIN_TYPES, QuestionMix, TypedQuestionSynthesizer
from raftkit.synth.question_mix import typed_questions_output_model
from raftkit.testing import Simulator
from raftkit.testing.scripted import Call, ScriptedClient
from raftkit.types import Chunk

MIX = "factoid=0.5,explanation=0.3,comparison=0.2"


def test_a_mix_parses_from_the_command_line_form() -> None:
    mix = QuestionMix.parse(MIX, personas=["a nurse", " a  pilot "])
    assert [(t.name, t.share) for t in mix.types] == [
        ("factoid", 0.5),
        ("explanation", 0.3),
        ("comparison", 0.2),
    ]
    assert mix.types[0].description == BUILTIN_TYPES["factoid"]
    assert mix.personas == ("a nurse", "a pilot")
    custom = QuestionMix.parse("howto=1")
    assert custom.types[0].description == "a howto question"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("factoid=0.5,explanation=0.3", "sum to 1"),
        ("factoid", "NAME=SHARE"),
        ("factoid=x", "NAME=SHARE"),
        ("factoid=0.5,factoid=0.5", "named twice"),
        ("Fact oid=1", "lower-case"),
        ("multi_hop=1", "--multi-hop"),
    ],
)
def test_bad_mixes_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        QuestionMix.parse(spec)


def test_a_mix_file_gives_descriptions_and_personas(tmp_path: Path) -> None:
    path = tmp_path / "mix.json"
    path.write_text(
        json.dumps(
            {
                "types": {
                    "factoid": 0.6,
                    "howto": {"share": 0.4, "description": "asks how to do a task"},
                },
                "personas": ["a first-year nurse"],
            }
        ),
        encoding="utf-8",
    )
    mix = QuestionMix.load(path)
    assert mix.description("howto") == "asks how to do a task"
    assert mix.personas == ("a first-year nurse",)
    bad = tmp_path / "bad.json"
    bad.write_text('{"types": {"factoid": 2}}', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.json: types\.0\.share"):
        QuestionMix.load(bad)
    bad.write_text("[", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        QuestionMix.load(bad)
    with pytest.raises(InputError, match="cannot read"):
        QuestionMix.load(tmp_path / "missing.json")


def test_allocation_gives_each_type_its_share_rounded_up_or_down() -> None:
    mix = QuestionMix.parse(MIX)
    total: Counter[str] = Counter()
    for i in range(2000):
        types = mix.allocate(f"doc#{i}", 5, seed=1)
        counts = Counter(types)
        assert counts["factoid"] in (2, 3)
        assert counts["explanation"] in (1, 2)
        assert counts["comparison"] == 1
        assert types == sorted(types, key=["factoid", "explanation", "comparison"].index)
        total.update(types)
    assert total["factoid"] / 10_000 == pytest.approx(0.5, abs=0.02)
    assert total["explanation"] / 10_000 == pytest.approx(0.3, abs=0.02)
    assert mix.allocate("doc#7", 5, seed=1) == mix.allocate("doc#7", 5, seed=1)


def test_personas_are_drawn_per_chunk() -> None:
    mix = QuestionMix.parse(MIX, personas=["a nurse", "a pilot", "a farmer"])
    drawn = {mix.persona_for(f"doc#{i}") for i in range(60)}
    assert drawn == {"a nurse", "a pilot", "a farmer"}
    assert QuestionMix.parse(MIX).persona_for("doc#0") is None


def test_the_output_schema_names_the_types() -> None:
    schema = typed_questions_output_model(3, ("factoid", "explanation")).model_json_schema()
    item = schema["$defs"]["TypedQuestion"]
    assert item["properties"]["type"]["enum"] == ["factoid", "explanation"]
    assert (
        schema["properties"]["questions"]["minItems"],
        schema["properties"]["questions"]["maxItems"],
    ) == (3, 3)


CHUNK = Chunk(
    id="bats#0",
    document_id="bats",
    index=0,
    text=(
        "Bats are the only mammals capable of true and sustained flight. Their forelimbs are "
        "adapted as wings. Most bats are nocturnal, and many roost in caves. Vampire bats feed "
        "on the blood of other animals. Fruit bats rely on sight and smell to find food."
    ),
    start=0,
    end=10,
)


@pytest.mark.anyio
async def test_the_simulated_teacher_writes_the_types_asked_for(anyio_backend: str) -> None:
    mix = QuestionMix.parse(MIX, personas=["a veterinary student"])
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
    ):
        questions = await TypedQuestionSynthesizer(client, "gpt-4o", mix).synthesize(CHUNK, 5)
    assert Counter(q.question_type for q in questions) == Counter(mix.allocate(CHUNK.id, 5))
    assert {q.metadata["persona"] for q in questions} == {"a veterinary student"}
    system = sim.requests[-1].json["messages"][0]["content"]
    assert "- 1 comparison: " + BUILTIN_TYPES["comparison"] in system
    assert "as a veterinary student would ask it" in system


@pytest.mark.anyio
async def test_missing_types_are_asked_for_again(anyio_backend: str) -> None:
    mix = QuestionMix.parse("factoid=0.5,explanation=0.5")
    replies = [
        # the first reply: two factoids (one too many), a blank one, an unknown type
        {
            "questions": [
                {"type": "factoid", "question": "Which mammals can fly?"},
                {"type": "factoid", "question": "What are bat forelimbs?"},
                {"type": "explanation", "question": "  "},
                {"type": "opinion", "question": "Are bats cute?"},
            ]
        },
        {"questions": [{"type": "explanation", "question": "Why do bats roost in caves?"}]},
    ]
    client = ScriptedClient(replies=replies)
    questions = await TypedQuestionSynthesizer(client, "t", mix).synthesize(CHUNK, 2)
    assert [(q.question_type, q.text) for q in questions] == [
        ("factoid", "Which mammals can fly?"),
        ("explanation", "Why do bats roost in caves?"),
    ]
    retry: Call = client.calls[1]
    assert "- 1 explanation:" in retry.prompt
    assert "Which mammals can fly?" in retry.prompt
    assert [c.sample for c in client.calls] == [0, 1]
    # each call is capped for the questions it asks (2, then the 1 still missing)
    assert [c.kwargs["max_tokens"] for c in client.calls] == [32 + 80 * 2, 32 + 80 * 1]

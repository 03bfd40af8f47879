"""Models answer differently and deterministically: base vs fine-tuned, big vs small, knobs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from raftkit.testing import Simulator
from raftkit.testing._behaviour import ModelBehaviour
from simulator_support import chat, chat_body, openai_client, raft_prompt

pytestmark = pytest.mark.anyio

QUOTE = re.compile(r"##begin_quote##(.*?)##end_quote##", re.DOTALL)
FACTS = [
    ("The Eiffel Tower is in Paris.", "Where is the Eiffel Tower?"),
    ("Mount Everest is 8,849 metres high.", "How high is Mount Everest?"),
    ("Surfing originated in ancient Polynesia.", "Where did surfing originate?"),
    ("Bats are the only mammals capable of sustained flight.", "Which mammals can fly?"),
    ("The Great Wall is more than 20,000 kilometres long.", "How long is the Great Wall?"),
    ("Marie Curie won two Nobel Prizes.", "How many Nobel Prizes did Marie Curie win?"),
    ("Honey never spoils when it is sealed.", "Does sealed honey spoil?"),
    ("Octopuses have three hearts.", "How many hearts does an octopus have?"),
]
DISTRACTOR = "Copper conducts electricity well. Glass is made from sand."
QUESTIONS_SCHEMA = {
    "type": "object",
    "properties": {"questions": {"type": "array", "items": {"type": "string"}, "minItems": 6}},
    "required": ["questions"],
}


async def answer(sim: Simulator, model: str, content: str) -> str:
    response = await chat(sim, chat_body(model, content))
    assert response.status_code == 200, response.text
    text: str = response.json()["choices"][0]["message"]["content"]
    return text


def follows_format(text: str, fact: str) -> bool:
    """A RAFT answer: quotes that are verbatim in the fact, and a final ``<ANSWER>:`` line."""
    quotes = QUOTE.findall(text)
    return bool(quotes) and all(q in fact for q in quotes) and "<ANSWER>:" in text


async def survey(sim: Simulator, model: str, *, instructed: bool, rounds: int = 2) -> list[bool]:
    results = []
    async with openai_client(sim) as client:
        for round_ in range(rounds):
            for fact, question in FACTS:
                prompt = raft_prompt(
                    f"{question} (round {round_})", [DISTRACTOR, fact], instructed=instructed
                )
                response = await client.post("/chat/completions", json=chat_body(model, prompt))
                text = response.json()["choices"][0]["message"]["content"]
                results.append(follows_format(text, fact))
    return results


async def test_fine_tuned_models_use_the_format_base_models_answer_in_prose(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    tuned = await survey(sim, "ft:gpt-4o-mini:acme:raft:abc123", instructed=False)
    base = await survey(sim, "gpt-4o-mini", instructed=False)
    assert sum(tuned) >= 0.9 * len(tuned)
    assert sum(base) == 0
    plain = await answer(
        sim, "gpt-4o-mini", raft_prompt(FACTS[0][1], [FACTS[0][0]], instructed=False)
    )
    assert plain == FACTS[0][0]  # the sentence it found, in prose

    sim.register_model("student-v2", fine_tuned=True)  # as a simulated job registers its model
    assert sum(await survey(sim, "student-v2", instructed=False, rounds=1)) >= len(FACTS) - 1


async def test_smaller_models_make_more_mistakes_and_the_same_ones_every_time(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    big = await survey(sim, "gpt-4.1", instructed=True, rounds=3)
    mini = await survey(sim, "gpt-4.1-mini", instructed=True, rounds=3)
    nano = await survey(sim, "gpt-4.1-nano", instructed=True, rounds=3)
    assert sum(big) > sum(nano)
    assert sum(mini) > sum(nano)
    assert await survey(sim, "gpt-4.1-nano", instructed=True, rounds=3) == nano  # deterministic


async def test_behaviour_overrides_by_name_or_pattern(raftkit_simulator_factory: Any) -> None:
    sim: Simulator = raftkit_simulator_factory(
        model_behaviour={"gpt-4o-mini": ModelBehaviour(learned_format=1.0)}
    )
    assert all(await survey(sim, "gpt-4o-mini", instructed=False, rounds=1))
    sim.set_model_behaviour("*nano*", ModelBehaviour(format_mistakes=1.0))
    assert not any(await survey(sim, "gpt-4.1-nano", instructed=True, rounds=1))
    with pytest.raises(ValueError, match="must be in"):
        ModelBehaviour(refusals=1.5)


async def test_a_student_that_always_or_never_refuses(raftkit_simulator_factory: Any) -> None:
    sim: Simulator = raftkit_simulator_factory(
        model_behaviour={
            "always": ModelBehaviour(refusals=1.0),
            "never": ModelBehaviour(refusals=0.0),
            "custom": ModelBehaviour(refusals=1.0, refusal_text="NO ANSWER"),
        },
        accept_unknown_models=True,
    )
    fact, question = FACTS[1]
    prompt = raft_prompt(question, [fact])
    refused = await answer(sim, "always", prompt)
    assert refused.splitlines()[-1] == "<ANSWER>: I cannot answer this from the given documents."
    assert not QUOTE.findall(refused)
    assert follows_format(await answer(sim, "never", prompt), fact)
    assert (await answer(sim, "custom", prompt)).endswith("<ANSWER>: NO ANSWER")
    chinese = await answer(
        sim, "always", raft_prompt("长城有多长？", ["长城的总长度超过两万公里。"])
    )
    assert chinese.endswith("<ANSWER>: 无法根据文档回答这个问题。")
    prose = await answer(sim, "always", raft_prompt(question, [fact], instructed=False))
    assert prose == "I cannot answer this from the given documents."


async def test_a_student_that_refuses_when_retrieval_failed(raftkit_simulator_factory: Any) -> None:
    sim: Simulator = raftkit_simulator_factory(
        model_behaviour={"careful": ModelBehaviour(refuses_without_evidence=True)},
        accept_unknown_models=True,
    )
    fact, question = FACTS[0]
    with_oracle = await answer(sim, "careful", raft_prompt(question, [DISTRACTOR, fact]))
    without = await answer(sim, "careful", raft_prompt(question, [DISTRACTOR]))
    assert follows_format(with_oracle, fact)
    assert without.endswith("<ANSWER>: I cannot answer this from the given documents.")


async def questions(sim: Simulator, model: str, chunk: str) -> list[str]:
    body = chat_body(
        model,
        f"<DOCUMENT>{chunk}</DOCUMENT> Write questions.",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "questions", "schema": QUESTIONS_SCHEMA},
        },
    )
    response = await chat(sim, body)
    assert response.status_code == 200, response.text
    found: list[str] = json.loads(response.json()["choices"][0]["message"]["content"])["questions"]
    return found


CHUNK = " ".join(fact for fact, _ in FACTS)


async def test_default_questions_are_self_contained(raftkit_simulator: Simulator) -> None:
    asked = await questions(raftkit_simulator, "gpt-4o", CHUNK)
    assert len(set(asked)) == len(asked)
    for question in asked:
        assert question.endswith("?")
        assert not re.search(r"\b(the|this) (text|passage|document|chunk)\b", question, re.I)
    assert "What is in Paris?" in asked or "What originated in ancient Polynesia?" in asked


async def test_a_teacher_that_writes_bad_questions_on_demand(
    raftkit_simulator_factory: Any,
) -> None:
    sim: Simulator = raftkit_simulator_factory(
        model_behaviour={
            "lazy": ModelBehaviour(bad_questions=1.0, bad_question_kinds=("text_reference",)),
            "repeats": ModelBehaviour(bad_questions=1.0, bad_question_kinds=("duplicate",)),
            "copies": ModelBehaviour(bad_questions=1.0, bad_question_kinds=("copied_sentence",)),
            "vague": ModelBehaviour(bad_questions=1.0, bad_question_kinds=("vague",)),
            "some": ModelBehaviour(bad_questions=0.5),
        },
        accept_unknown_models=True,
    )
    lazy = await questions(sim, "lazy", CHUNK)
    assert all(q.startswith("What does the text say about") for q in lazy)
    repeats = await questions(sim, "repeats", CHUNK)
    assert len(set(repeats)) == 1
    other_chunk = await questions(sim, "repeats", "Rivers flow to the sea. Rain falls.")
    assert other_chunk[0] == repeats[0]  # one question asked of every chunk
    copies = await questions(sim, "copies", CHUNK)
    assert all(q[:-1] + "." in CHUNK for q in copies)
    vague = await questions(sim, "vague", CHUNK)
    assert all(re.fullmatch(r"What is known about [\w,'-]+\?", q) for q in vague)
    some = await questions(sim, "some", CHUNK)
    assert some == await questions(sim, "some", CHUNK)  # deterministic
    flawed = [q for q in some if q.startswith("What does the text say") or some.count(q) > 1]
    assert 0 < len(flawed) < len(some)

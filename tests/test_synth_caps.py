"""The teacher's question and answer calls: caps sized to what they ask, learned as the run
goes, a cut reply re-asked with twice the cap (not a failure), one prompt-cache key a chunk,
and several answers in one call, each verified (and re-asked) on its own."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from raftkit.errors import StructuredOutputError
from raftkit.llm import ChatResponse, CompletionCaps, truncation_retry_sample
from raftkit.llm.tokens import count_message_tokens, estimate_tokens
from raftkit.synth import (
    MultiAnswerGenerator,
    TeacherAnswerGenerator,
    TeacherQuestionSynthesizer,
)
from raftkit.synth.answers import ANSWER_TOKENS, answer_scale, answers_output_model
from raftkit.synth.prompts import chunk_cache_key
from raftkit.synth.questions import QUESTION_TOKENS, question_scale
from raftkit.testing.scripted import Call, ScriptedClient
from raftkit.types import Chunk, Question, Usage

pytestmark = pytest.mark.anyio

CHUNK = Chunk(
    id="bats#0",
    document_id="bats",
    index=0,
    text="Bats are the only mammals capable of true flight. Most bats are nocturnal. "
    "Vampire bats feed on blood.",
    start=0,
    end=104,
)
SENTENCES = [
    "Bats are the only mammals capable of true flight.",
    "Most bats are nocturnal.",
    "Vampire bats feed on blood.",
]
ASKED = ["Which mammals fly?", "When are bats active?", "What do vampires eat?"]
QUESTIONS = [Question(id=f"q-{i}", chunk_id=CHUNK.id, text=t) for i, t in enumerate(ASKED)]


def good(sentence: str) -> str:
    return f"The text says ##begin_quote##{sentence}##end_quote##.\n<ANSWER>: bats"


INVENTED = "It says ##begin_quote##Bats are birds.##end_quote##\n<ANSWER>: birds"


def asked_questions(call: Call) -> list[str]:
    return re.findall(r"Question \d+: (.+)", str(call.messages[-1]["content"]))


# ---------------------------------------------------------------- questions


async def test_question_calls_ask_for_the_count_needed_with_a_cap_sized_to_it() -> None:
    def teacher(call: Call) -> Any:
        count = int(re.findall(r"write (\d+) different", str(call.messages[0]["content"]))[0])
        return {"questions": [f"Question {i} about bats?" for i in range(count)][:2]}

    client = ScriptedClient(teacher)
    caps = CompletionCaps(min_samples=2)
    synthesizer = TeacherQuestionSynthesizer(client, "t", caps=caps, max_retries=1)
    await synthesizer.synthesize(CHUNK, 5)
    first, second = client.calls
    # five asked first, then the three still missing, each call capped for its count
    assert first.kwargs["max_tokens"] == 32 + 5 * QUESTION_TOKENS
    assert second.kwargs["max_tokens"] == 32 + 3 * QUESTION_TOKENS
    assert first.kwargs["retry_max_tokens"] == 4 * first.kwargs["max_tokens"]
    assert {c.kwargs["prompt_cache_key"] for c in client.calls} == {chunk_cache_key(CHUNK.id)}
    # two replies seen: later calls get a cap learned from them, per question asked
    learned = caps.cap("questions", "t", initial=10_000, units=5, scale=question_scale(CHUNK.text))
    assert learned.source == "learned"
    await synthesizer.synthesize(CHUNK, 5, sample=1)
    assert client.calls[2].kwargs["max_tokens"] == learned.max_tokens
    pinned = ScriptedClient(teacher)
    await TeacherQuestionSynthesizer(pinned, "t", max_tokens=99, max_retries=0).synthesize(CHUNK, 5)
    assert pinned.calls[0].kwargs["max_tokens"] == 99
    assert pinned.calls[0].kwargs["retry_max_tokens"] is None


# ---------------------------------------------------------------- one answer a call


async def test_a_truncated_answer_is_asked_again_with_a_larger_cap_and_is_no_failure() -> None:
    cut = ChatResponse(
        text="The text says ##begin_quote##Bats are",
        model="t",
        finish_reason="length",
        usage=Usage(prompt_tokens=50, completion_tokens=10),
    )
    client = ScriptedClient(replies=[cut, good(SENTENCES[0])])
    caps = CompletionCaps()
    generator = TeacherAnswerGenerator(client, "t", caps=caps)
    result = await generator.generate(QUESTIONS[0], CHUNK, sample=2)
    assert result.accepted
    assert result.attempts == 1
    assert result.rejections == []
    first, again = client.calls
    # the cut reply's tokens are counted in the answer's cost
    assert result.usage == cut.usage + Usage(
        prompt_tokens=count_message_tokens(again.messages),
        completion_tokens=estimate_tokens(good(SENTENCES[0])),
    )
    assert first.kwargs["max_tokens"] == generator.cap(QUESTIONS[:1], CHUNK).max_tokens
    assert first.kwargs["max_tokens"] >= ANSWER_TOKENS
    assert again.kwargs["max_tokens"] == generator.cap(QUESTIONS[:1], CHUNK).retry_max_tokens
    assert again.kwargs["max_tokens"] >= 2 * first.kwargs["max_tokens"]
    assert (first.sample, again.sample) == (6, truncation_retry_sample(6))
    [stats] = caps.stats()
    assert (stats.kind, stats.replies, stats.retried, stats.cut) == ("answers", 1, 1, 0)


async def test_every_answer_attempt_carries_the_chunks_cache_key_and_a_cap() -> None:
    client = ScriptedClient(lambda call: INVENTED if call.sample == 0 else good(SENTENCES[0]))
    result = await TeacherAnswerGenerator(client, "t").generate(QUESTIONS[0], CHUNK)
    assert result.attempts == 2
    for call in client.calls:
        assert call.kwargs["prompt_cache_key"] == chunk_cache_key(CHUNK.id)
        assert call.kwargs["max_tokens"] is not None
    # the re-ask shows the rejected answer (short: whole) and keeps the prompt prefix
    assert client.calls[1].messages[:2] == client.calls[0].messages


# ---------------------------------------------------------------- several answers a call


async def test_several_answers_in_one_call_are_verified_and_reasked_one_by_one() -> None:
    def teacher(call: Call) -> Any:
        if call.method == "chat_structured":
            assert asked_questions(call) == [q.text for q in QUESTIONS]
            return {"answers": [good(SENTENCES[0]), INVENTED, good(SENTENCES[2])]}
        return good(SENTENCES[1])

    client = ScriptedClient(teacher)
    generator = TeacherAnswerGenerator(client, "t", max_attempts=3)
    assert isinstance(generator, MultiAnswerGenerator)
    results = await generator.generate_many(QUESTIONS, CHUNK, sample=1)
    assert [r.accepted for r in results] == [True, True, True]
    assert [r.attempts for r in results] == [1, 2, 1]
    assert results[1].rejections == ["quote_not_in_oracle"]
    assert results[1].quotes == [SENTENCES[1]]
    assert results[0].quotes == [SENTENCES[0]]
    group, alone = client.calls
    assert group.method == "chat_structured"
    assert group.kwargs["output"] is answers_output_model(3)
    assert group.kwargs["max_tokens"] == generator.cap(QUESTIONS, CHUNK).max_tokens
    assert group.kwargs["prompt_cache_key"] == chunk_cache_key(CHUNK.id)
    # the rejected answer is re-asked alone: its own question, its answer, the problem
    assert alone.method == "chat"
    assert QUESTIONS[1].text in str(alone.messages[1]["content"])
    assert QUESTIONS[0].text not in json.dumps(alone.messages, ensure_ascii=False)
    assert alone.messages[2] == {"role": "assistant", "content": INVENTED}
    assert "Bats are birds." in str(alone.messages[3]["content"])
    assert alone.sample == 1 * 3 + 1
    assert alone.kwargs["temperature"] == generator.retry_temperature
    # the shared call's usage is shared out; the re-ask adds to its own question's
    reply = {"answers": [good(SENTENCES[0]), INVENTED, good(SENTENCES[2])]}
    shared = Usage(
        prompt_tokens=count_message_tokens(group.messages),
        completion_tokens=estimate_tokens(json.dumps(reply, ensure_ascii=False)),
    )
    own = Usage(
        prompt_tokens=count_message_tokens(alone.messages),
        completion_tokens=estimate_tokens(good(SENTENCES[1])),
    )
    total = results[0].usage + results[1].usage + results[2].usage
    assert total == shared + own
    assert abs(results[0].usage.prompt_tokens - results[2].usage.prompt_tokens) <= 1


async def test_missing_answers_are_asked_for_alone() -> None:
    def teacher(call: Call) -> Any:
        if call.method == "chat_structured":
            return {"answers": [good(SENTENCES[0])]}
        question = str(call.messages[1]["content"]).rsplit("Question: ", 1)[1]
        return good(SENTENCES[[q.text for q in QUESTIONS].index(question)])

    client = ScriptedClient(teacher)
    results = await TeacherAnswerGenerator(client, "t").generate_many(QUESTIONS, CHUNK)
    assert [r.accepted for r in results] == [True, True, True]
    assert [r.rejections for r in results] == [[], ["invalid_response"], ["invalid_response"]]
    assert [c.method for c in client.calls] == ["chat_structured", "chat", "chat"]


async def test_answers_that_never_come_as_json_are_asked_one_by_one() -> None:
    def teacher(call: Call) -> Any:
        if call.method == "chat_structured":
            return StructuredOutputError("no JSON", attempts=3, last_output="?")
        question = str(call.messages[1]["content"]).rsplit("Question: ", 1)[1]
        return good(SENTENCES[[q.text for q in QUESTIONS].index(question)])

    client = ScriptedClient(teacher)
    results = await TeacherAnswerGenerator(client, "t").generate_many(QUESTIONS, CHUNK)
    assert [(r.accepted, r.attempts) for r in results] == [(True, 1)] * 3
    assert [c.method for c in client.calls] == ["chat_structured", "chat", "chat", "chat"]


async def test_one_question_is_answered_by_a_plain_call() -> None:
    client = ScriptedClient(lambda call: good(SENTENCES[0]))
    [result] = await TeacherAnswerGenerator(client, "t").generate_many(QUESTIONS[:1], CHUNK)
    assert result.accepted
    assert [c.method for c in client.calls] == ["chat"]


def test_the_answers_schema_says_exactly_k_and_accepts_any_count() -> None:
    schema = answers_output_model(4).model_json_schema()
    answers = schema["properties"]["answers"]
    assert (answers["minItems"], answers["maxItems"]) == (4, 4)
    assert answers_output_model(4).model_validate({"answers": ["a"]})


def test_an_answers_scale_is_the_sentence_its_question_is_about() -> None:
    oracle = (
        "Bats fly. J. E. Gray named the family Rhinolophidae in 1825, e.g. the horseshoe bats "
        "of Europe and Asia, which echolocate through their noses. Most bats are nocturnal."
    )
    gray = answer_scale(oracle, "Who named the family Rhinolophidae?")
    night = answer_scale(oracle, "When are most bats active, nocturnal or diurnal?")
    # initials and "e.g." end no sentence: the Gray sentence is one, and the longest
    assert gray == ANSWER_TOKENS + estimate_tokens(
        oracle.split(" Most")[0].removeprefix("Bats fly. ")
    )
    assert night == ANSWER_TOKENS + estimate_tokens(" Most bats are nocturnal.")
    # no question, or no shared word: the longest sentence
    assert answer_scale(oracle) == answer_scale(oracle, "Quelle heure est-il ?") == gray
    chinese = "蝙蝠是唯一能够真正飞行的哺乳动物。大多数蝙蝠在夜间活动，白天在洞穴里休息。"
    assert answer_scale(chinese, "蝙蝠什么时候活动？") == ANSWER_TOKENS + estimate_tokens(
        "大多数蝙蝠在夜间活动，白天在洞穴里休息。"
    )


def test_a_questions_scale_is_its_chunks_tokens_per_word() -> None:
    prose = "Bats are the only mammals capable of true and sustained flight at night."
    table = "Rhinolophidae J. E. Gray, 1825\nHipposideridae Lydekker, 1891\nMyzopodidae 1904"
    assert question_scale(table) > 1.5 * question_scale(prose)
    assert 1.0 <= question_scale(prose) <= 1.6
    # a CJK character is a word
    assert 0.5 <= question_scale("蝙蝠是唯一能够真正飞行的哺乳动物。") <= 1.5

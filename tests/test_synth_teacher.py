"""The teacher-backed synthesizer and answer generator against a deterministic fake client."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from raftkit.errors import NotFoundError, StructuredOutputError, UsageError
from raftkit.llm import ChatMessage
from raftkit.llm.tokens import count_message_tokens
from raftkit.synth import (
    AnswerGenerator,
    EmbeddingSampler,
    QuestionSynthesizer,
    TeacherAnswerGenerator,
    TeacherQuestionSynthesizer,
    question_id,
)
from raftkit.synth.questions import questions_output_model
from raftkit.testing.scripted import Call, ScriptedClient
from raftkit.types import Chunk, Question

pytestmark = pytest.mark.anyio


def letter_counts(text: str) -> npt.NDArray[np.float32]:
    """Deterministic, and texts with similar letters get similar vectors."""
    out = np.zeros(26, dtype=np.float32)
    for ch in text.lower():
        if "a" <= ch <= "z":
            out[ord(ch) - 97] += 1
    return out


def last_user(messages: Sequence[ChatMessage]) -> str:
    return str([m for m in messages if m["role"] == "user"][-1]["content"])


def asked_count(messages: Sequence[ChatMessage]) -> int:
    match = re.search(r"(\d+)", str(messages[0]["content"]))
    assert match is not None
    return int(match.group(1))


CHUNK = Chunk(
    id="bats#0",
    document_id="bats",
    index=0,
    text="Bats are the only mammals capable of true flight. Most bats are nocturnal.",
    start=0,
    end=75,
)
ZH_CHUNK = Chunk(
    id="bats-zh#0",
    document_id="bats-zh",
    index=0,
    text="蝙蝠是唯一能够真正飞行的\n哺乳 动物。大多数蝙蝠在夜间活动。",
    start=0,
    end=30,
)


# ---------------------------------------------------------------- questions


async def test_synthesizer_returns_n_questions_with_stable_ids() -> None:
    def teacher(call: Call) -> Any:
        n = asked_count(call.messages)
        return {"questions": [f"Question {i} about bats?" for i in range(n)]}

    client = ScriptedClient(teacher)
    synth = TeacherQuestionSynthesizer(client, "teacher-1")
    assert isinstance(synth, QuestionSynthesizer)
    questions = await synth.synthesize(CHUNK, 5)
    assert [q.text for q in questions] == [f"Question {i} about bats?" for i in range(5)]
    assert all(q.chunk_id == CHUNK.id for q in questions)
    assert len({q.id for q in questions}) == 5
    again = await TeacherQuestionSynthesizer(ScriptedClient(teacher), "teacher-1").synthesize(
        CHUNK, 5
    )
    assert [q.id for q in again] == [q.id for q in questions]
    assert questions[0].id == question_id(CHUNK.id, "question 0 about bats")
    assert len(client.calls) == 1
    assert client.calls[0].kwargs["output"] is questions_output_model(5)
    assert CHUNK.text in last_user(client.calls[0].messages)


async def test_synthesizer_trims_surplus_questions() -> None:
    client = ScriptedClient(lambda c: {"questions": [f"Why {i}?" for i in range(8)]})
    questions = await TeacherQuestionSynthesizer(client, "t").synthesize(CHUNK, 3)
    assert [q.text for q in questions] == ["Why 0?", "Why 1?", "Why 2?"]
    assert len(client.calls) == 1


async def test_synthesizer_drops_chinese_duplicates_and_asks_for_the_rest() -> None:
    replies = {
        0: [
            "什么是蝙蝠？",
            "什么是蝙蝠?",  # half-width question mark: the same question
            "什么 是 蝙蝠 ？",  # stray spaces: the same question
            "1. 蝙蝠在什么时候活动？",  # list numbering is removed
            "",
            "  \n ",
        ],
        1: ["蝙蝠在什么时候活动?", "蝙蝠属于哪一类\n动物？", "哪种哺乳动物\n能飞？"],
    }
    client = ScriptedClient(lambda c: {"questions": replies[c.sample]})
    questions = await TeacherQuestionSynthesizer(client, "t").synthesize(ZH_CHUNK, 4)
    assert [q.text for q in questions] == [
        "什么是蝙蝠？",
        "蝙蝠在什么时候活动？",
        "蝙蝠属于哪一类动物？",  # a line break inside a question is dropped
        "哪种哺乳动物能飞？",
    ]
    assert [c.sample for c in client.calls] == [0, 1]
    follow_up = client.calls[1]
    assert asked_count(follow_up.messages) == 2  # only the missing two are asked for
    assert follow_up.kwargs["output"] is questions_output_model(2)
    assert "- 什么是蝙蝠？" in last_user(follow_up.messages)


async def test_synthesizer_gives_up_after_bounded_retries() -> None:
    client = ScriptedClient(lambda c: {"questions": ["Same question?"]})
    synth = TeacherQuestionSynthesizer(client, "t", max_retries=2)
    questions = await synth.synthesize(CHUNK, 5, sample=1)
    assert [q.text for q in questions] == ["Same question?"]
    # three rounds, sample indices distinct from those of sample=0
    assert [c.sample for c in client.calls] == [3, 4, 5]


async def test_synthesizer_survives_invalid_json_rounds() -> None:
    def teacher(call: Call) -> Any:
        if call.sample == 0:
            return StructuredOutputError("not JSON", attempts=3, last_output="oops")
        return {"questions": ["How do bats fly?", "When are bats active?"]}

    client = ScriptedClient(teacher)
    questions = await TeacherQuestionSynthesizer(client, "t").synthesize(CHUNK, 2)
    assert [q.text for q in questions] == ["How do bats fly?", "When are bats active?"]
    assert len(client.calls) == 2


async def test_synthesizer_propagates_api_errors_and_checks_arguments() -> None:
    client = ScriptedClient(lambda c: RuntimeError("network down"))
    with pytest.raises(RuntimeError, match="network down"):
        await TeacherQuestionSynthesizer(client, "t").synthesize(CHUNK, 2)
    with pytest.raises(UsageError):
        await TeacherQuestionSynthesizer(client, "t").synthesize(CHUNK, 0)
    with pytest.raises(UsageError):
        TeacherQuestionSynthesizer(client, "t", max_retries=-1)


def test_output_model_schema_says_exactly_n() -> None:
    schema = questions_output_model(4).model_json_schema()
    items = schema["properties"]["questions"]
    assert (items["minItems"], items["maxItems"]) == (4, 4)
    # surplus and shortfall are handled by the synthesizer, not thrown away by validation
    assert questions_output_model(4).model_validate({"questions": ["a"] * 6})


# ---------------------------------------------------------------- answers

QUESTION = Question(id="q-1", chunk_id=CHUNK.id, text="Which mammals can fly?")
ZH_QUESTION = Question(id="q-2", chunk_id=ZH_CHUNK.id, text="哪种哺乳动物能真正飞行？")


def quoting_teacher(call: Call, *, fail_first: int = 0, bad: str = "") -> str:
    """Quotes the first sentence of the document it is shown; the first attempts fail."""
    if call.sample < fail_first:
        return bad
    prompt = last_user(call.messages[:2])
    document = re.search(r"<DOCUMENT>(.*?)</DOCUMENT>", prompt, re.DOTALL)
    assert document is not None
    first_sentence = re.split(r"(?<=[.。])", document.group(1).replace("\n", ""))[0]
    return (
        f"The document says ##begin_quote##{first_sentence}##end_quote##, "
        "so the answer follows.\n<ANSWER>: bats"
    )


async def test_answer_accepted_on_first_attempt_from_the_oracle_only() -> None:
    client = ScriptedClient(quoting_teacher)
    generator = TeacherAnswerGenerator(client, "teacher-1")
    assert isinstance(generator, AnswerGenerator)
    result = await generator.generate(QUESTION, CHUNK)
    assert result.accepted
    assert result.reason is None
    assert result.final_answer == "bats"
    assert result.quotes == ["Bats are the only mammals capable of true flight."]
    assert result.attempts == 1
    assert result.model == "teacher-1"
    assert result.usage.prompt_tokens > 0
    messages = client.calls[0].messages
    assert f"<DOCUMENT>{CHUNK.text}</DOCUMENT>" in last_user(messages)
    assert QUESTION.text in last_user(messages)
    assert client.calls[0].kwargs["temperature"] == 0.0


async def test_chinese_answer_quoting_without_pdf_spaces_is_accepted() -> None:
    def teacher(call: Call) -> str:
        return (
            "文档说##begin_quote##蝙蝠是唯一能够真正飞行的哺乳动物。##end_quote##\n<ANSWER>：蝙蝠"
        )

    result = await TeacherAnswerGenerator(ScriptedClient(teacher), "t").generate(
        ZH_QUESTION, ZH_CHUNK
    )
    assert result.accepted
    assert result.final_answer == "蝙蝠"


async def test_answer_reasked_with_feedback_then_accepted() -> None:
    invented = "##begin_quote##Bats are birds.##end_quote##\n<ANSWER>: bats"
    client = ScriptedClient(lambda c: quoting_teacher(c, fail_first=2, bad=invented))
    result = await TeacherAnswerGenerator(client, "t", max_attempts=3).generate(QUESTION, CHUNK)
    assert result.accepted
    assert result.attempts == 3
    assert result.rejections == ["quote_not_in_oracle", "quote_not_in_oracle"]
    assert [c.sample for c in client.calls] == [0, 1, 2]
    assert [c.kwargs["temperature"] for c in client.calls] == [0.0, 0.7, 0.7]
    retry = client.calls[1].messages
    assert retry[-2] == {"role": "assistant", "content": invented}
    assert "Bats are birds." in retry[-1]["content"]
    # usage is the sum over all three attempts
    per_call = [count_message_tokens(c.messages) for c in client.calls]
    assert result.usage.prompt_tokens == sum(per_call)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("Bats fly, I am sure.", "no_answer_line"),
        ("Bats fly.\n<ANSWER>: bats", "no_quotes"),
        ("##begin_quote##Bats are the only mammals\n<ANSWER>: bats", "unbalanced_quote_markers"),
        ("##begin_quote##Bats are the only mammals##end_quote##\n<ANSWER>:", "empty_answer"),
        ("", "invalid_response"),
    ],
)
async def test_answer_exhaustion_returns_a_rejection(bad: str, reason: str) -> None:
    client = ScriptedClient(lambda c: bad)
    result = await TeacherAnswerGenerator(client, "t", max_attempts=2).generate(QUESTION, CHUNK)
    assert not result.accepted
    assert result.reason == reason
    assert result.rejections == [reason, reason]
    assert result.attempts == 2
    assert result.cot_answer == bad
    assert result.final_answer == ""
    assert len(client.calls) == 2


async def test_answer_without_feedback_repeats_the_request_under_a_new_sample() -> None:
    client = ScriptedClient(lambda c: quoting_teacher(c, fail_first=7, bad="no tag"))
    generator = TeacherAnswerGenerator(client, "t", feedback=False)
    result = await generator.generate(QUESTION, CHUNK, sample=2)
    assert result.accepted
    assert client.calls[0].messages == client.calls[1].messages
    assert [c.sample for c in client.calls] == [6, 7]


def test_answer_generator_checks_arguments() -> None:
    with pytest.raises(UsageError):
        TeacherAnswerGenerator(ScriptedClient(quoting_teacher), "t", max_attempts=0)
    assert "teacher-1" in repr(TeacherAnswerGenerator(ScriptedClient(quoting_teacher), "teacher-1"))


async def test_fake_client_is_a_usable_client() -> None:
    async with ScriptedClient(quoting_teacher, embedder=letter_counts) as client:
        vectors = await client.embed(["abc", "abd"], model="e")
        assert vectors.shape == (2, 26)
        with pytest.raises(NotFoundError) as missing:
            await client.request("GET", "files")
        assert missing.value.status_code == 404
    assert client.closed


async def test_fake_client_reasks_invalid_structured_replies_like_a_real_client() -> None:
    output = questions_output_model(1)
    ask: list[ChatMessage] = [{"role": "user", "content": "Ask one question."}]
    client = ScriptedClient(replies=["not JSON", {"questions": ["Why?"]}])
    result = await client.chat_structured(ask, output, model="t", sample=4)
    assert result.output == output(questions=["Why?"])
    assert result.attempts == 2
    assert [c.sample for c in client.calls] == [4, 5]
    assert client.calls[1].messages[1] == {"role": "assistant", "content": "not JSON"}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    stubborn = ScriptedClient(lambda c: {"n": "many"})
    with pytest.raises(StructuredOutputError) as failed:
        await stubborn.chat_structured(ask, schema, model="t", max_attempts=2)
    assert failed.value.attempts == 2
    assert len(stubborn.calls) == 2
    counted = await ScriptedClient(replies=['{"n": 3}']).chat_structured(ask, schema, model="t")
    assert counted.output == {"n": 3}


async def test_embedding_sampler_from_client_embeds_in_batches() -> None:
    texts = ["aaaa", "aaab", "zzzz", "zzzy", "mmmm"]
    corpus = [
        Chunk(id=f"e#{i}", document_id="e", index=i, text=t, start=0, end=4)
        for i, t in enumerate(texts)
    ]
    client = ScriptedClient(quoting_teacher, embedder=letter_counts)
    sampler = await EmbeddingSampler.from_client(
        corpus, client, model="e", batch_size=2, pool_factor=1
    )
    batch_sizes = [len(c.texts) for c in client.calls_to("embed")]
    assert sorted(batch_sizes) == [1, 2, 2]
    oracle = corpus[2]
    question = Question(id="q-e", chunk_id=oracle.id, text="?")
    got = await sampler.sample(question, oracle, 1, np.random.default_rng(0))
    assert [c.id for c in got] == ["e#3"]  # "zzzy" is nearest "zzzz"


async def test_synthesizer_joins_wrapped_english_questions_with_a_space() -> None:
    client = ScriptedClient(lambda c: {"questions": ["- How do\n  bats   fly?"]})
    questions = await TeacherQuestionSynthesizer(client, "t", max_retries=0).synthesize(CHUNK, 1)
    assert [q.text for q in questions] == ["How do bats fly?"]

"""Question critique: the free filters in every supported language, the excerpts the judge
sees, and the judge call (scripted, and against the simulator's critic)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from raftkit.llm import ChatResponse, CompletionCaps, OpenAIClient
from raftkit.synth import (
    CritiqueRules,
    QuestionCritic,
    TeacherQuestionSynthesizer,
    filter_question,
)
from raftkit.synth.critique import (
    CRITERIA,
    CRITIQUE_TOKENS,
    TEXT_REFERENCE_LANGUAGES,
    excerpts_for,
    judge_context,
    ratings_output_model,
)
from raftkit.testing import Simulator, SimulatorConfig
from raftkit.testing._behaviour import ModelBehaviour
from raftkit.testing.scripted import Call, ScriptedClient
from raftkit.types import Chunk, Question, Usage

EN_CHUNK = (
    "Mount Everest is the highest mountain above sea level. It lies in the Himalayas between "
    "Nepal and China. The first ascent was made in 1953 by Edmund Hillary and Tenzing Norgay."
)
ZH_CHUNK = (
    "蝙蝠是唯一能够真正飞行的哺乳动物。它们的前肢演化成了翼。"
    "大多数小型蝙蝠依靠回声定位在黑暗中捕食。"
)


def question(text: str, chunk_id: str = "doc#0") -> Question:
    return Question(id=f"q-{abs(hash(text))}", chunk_id=chunk_id, text=text)


# One phrasing per language that refers to the source instead of naming the subject.
TEXT_REFERENCES = {
    "en": ("What does the text say about Everest?", EN_CHUNK),
    "zh": ("根据文章，蝙蝠吃什么？", ZH_CHUNK),
    "ja": (
        "この文章によると、コウモリは何を食べますか？",
        "コウモリは哺乳類で、夜に虫を食べます。",
    ),
    "ko": ("이 글에 따르면 박쥐는 무엇을 먹나요?", "박쥐는 포유류이며 밤에 곤충을 먹습니다."),
    "de": ("Was sagt der Text über den Everest?", "Der Mount Everest ist der höchste Berg."),
    "fr": ("Que dit le texte sur l'Everest ?", "L'Everest est la plus haute montagne du monde."),
    "es": ("¿Qué dice el texto sobre el Everest?", "El Everest es la montaña más alta del mundo."),
    "pt": ("O que diz o texto sobre o Everest?", "O Everest é a montanha mais alta do mundo."),
    "it": ("Che cosa dice il testo sull'Everest?", "L'Everest è la montagna più alta del mondo."),
}


def test_every_language_with_text_reference_patterns_is_tested() -> None:
    assert set(TEXT_REFERENCES) == set(TEXT_REFERENCE_LANGUAGES)


@pytest.mark.parametrize("language", sorted(TEXT_REFERENCES))
def test_references_to_the_text_are_caught_in_every_language(language: str) -> None:
    text, chunk = TEXT_REFERENCES[language]
    failed = filter_question(text, chunk)
    assert failed is not None
    assert failed[0] == "question_text_reference"


@pytest.mark.parametrize(
    ("text", "chunk"),
    [
        ("Who made the first ascent of Mount Everest?", EN_CHUNK),
        ("In the context of the Cold War, why did Nepal open its borders?", EN_CHUNK),
        ("Between which two countries does Mount Everest lie?", EN_CHUNK),
        ("什么是唯一能够真正飞行的哺乳动物？", ZH_CHUNK),
        ("日本文化中蝙蝠象征着什么？", ZH_CHUNK),  # 本文 inside 日本文化
        ("这段时间里蝙蝠在做什么？", ZH_CHUNK),  # 这段时间: "this period", not "this passage"
        ("中文中蝙蝠一词的含义是什么？", ZH_CHUNK),  # 文中 inside 中文中
    ],
)
def test_good_questions_pass_the_filters(text: str, chunk: str) -> None:
    assert filter_question(text, chunk) is None


def test_a_question_copying_a_sentence_of_its_chunk_is_caught() -> None:
    copied = "Mount Everest is the highest mountain above sea level?"
    assert filter_question(copied, EN_CHUNK) == (
        "question_copies_chunk",
        "the question copies a whole sentence of its chunk",
    )
    chinese = "大多数小型蝙蝠依靠回声定位在黑暗中捕食吗？"
    failed = filter_question(chinese, ZH_CHUNK)
    assert failed is not None
    assert failed[0] == "question_copies_chunk"
    # a question built from a sentence (not copying all of it) passes
    assert filter_question("What is the highest mountain above sea level?", EN_CHUNK) is None


@pytest.mark.parametrize("text", ["", "   ", "?", "？？", "..."])
def test_empty_questions_are_caught(text: str) -> None:
    failed = filter_question(text, EN_CHUNK)
    assert failed is not None
    assert failed[0] == "question_empty"


def test_over_long_questions_are_caught_with_configurable_limits() -> None:
    long_question = "Why " + " ".join(["very"] * 45) + " high is Everest?"
    failed = filter_question(long_question, EN_CHUNK)
    assert failed is not None
    assert failed[0] == "question_too_long"
    assert filter_question(long_question, EN_CHUNK, CritiqueRules(max_question_words=80)) is None
    chinese = "为什么" + "蝙蝠" * 60 + "会飞？"
    failed = filter_question(chinese, ZH_CHUNK)
    assert failed is not None
    assert failed[0] == "question_too_long"


def test_a_question_in_another_script_than_its_chunk_is_caught() -> None:
    failed = filter_question("Which mammals can truly fly?", ZH_CHUNK)
    assert failed is not None
    assert failed[0] == "question_wrong_script"
    failed = filter_question("珠穆朗玛峰有多高？", EN_CHUNK)
    assert failed is not None
    assert failed[0] == "question_wrong_script"


def test_excerpts_are_the_sentences_nearest_each_question_in_chunk_order() -> None:
    chosen = excerpts_for(EN_CHUNK, ["Who made the first ascent?", "Does it lie in Nepal?"])
    assert chosen == [
        "It lies in the Himalayas between Nepal and China.",
        "The first ascent was made in 1953 by Edmund Hillary and Tenzing Norgay.",
    ]
    # no more sentences than questions: the whole chunk
    assert excerpts_for(EN_CHUNK, ["a?", "b?", "c?"]) == [EN_CHUNK]
    assert excerpts_for(ZH_CHUNK, ["蝙蝠怎样捕食？"]) == [
        "大多数小型蝙蝠依靠回声定位在黑暗中捕食。"
    ]
    assert judge_context(EN_CHUNK, ["x?"], "chunk") == [EN_CHUNK]
    assert judge_context(EN_CHUNK, 1, "excerpts") == [
        "Mount Everest is the highest mountain above sea level."
    ]


def test_the_ratings_schema_asks_for_one_string_per_question() -> None:
    schema = ratings_output_model(4).model_json_schema()
    ratings = schema["properties"]["ratings"]
    assert (ratings["minItems"], ratings["maxItems"]) == (4, 4)
    assert ratings["items"] == {"type": "string"}
    assert schema["properties"]["notes"]["type"] == "string"


CHUNK = Chunk(id="doc#0", document_id="doc", index=0, text=EN_CHUNK, start=0, end=len(EN_CHUNK))


@pytest.mark.anyio
async def test_the_judge_rejects_below_the_threshold_and_keeps_what_it_cannot_read(
    anyio_backend: str,
) -> None:
    questions = [
        question("Who made the first ascent of Mount Everest?"),
        question("What does the text say?"),  # caught by the filter: never sent
        question("What is known about Nepal?"),
        question("Which river flows past Everest?"),
        question("How high is Mount Everest above sea level?"),
    ]

    def judge(call: Call) -> dict[str, object]:
        assert "What does the text say?" not in call.prompt
        assert call.prompt.count("\n") >= 4  # excerpts, then four numbered questions
        # a row as digits, one as a list, one unreadable; notes only for the low ones
        return {"ratings": ["5555", [5, 5, 2, 5], "4155", "55x"], "notes": "2: vague; 3: no"}

    client = ScriptedClient(judge)
    critic = QuestionCritic(client, "judge-model")
    reviews = await critic.review(CHUNK, questions)
    verdicts = [(r.reason, r.scores) for r in reviews.reviews]
    full = dict.fromkeys(CRITERIA, 5)
    assert verdicts == [
        (None, full),
        ("question_text_reference", None),
        ("question_not_specific", {**full, "specific": 2}),
        ("question_not_answerable", {**full, "self_contained": 4, "answerable": 1}),
        (None, None),  # no readable rating: kept
    ]
    assert reviews.reviews[2].detail == "rated specific 2/5: vague"
    assert reviews.reviews[3].detail == "rated answerable 1/5: no"
    assert [q.text for q in reviews.kept] == [questions[0].text, questions[4].text]
    assert reviews.judge_calls == 1
    assert reviews.unjudged == 1
    assert reviews.usage.prompt_tokens > 0
    assert client.calls[0].model == "judge-model"
    assert client.calls[0].kwargs["temperature"] == 0.0


@pytest.mark.anyio
async def test_the_judge_call_carries_a_cap_per_question_then_a_learned_one(
    anyio_backend: str,
) -> None:
    # sent without max_tokens, a provider charges the judge's short reply its default cap
    # (often 1,024 tokens) against the account's TPM: the call is capped like the others
    questions = [
        question("Who made the first ascent of Mount Everest?"),
        question("In which mountain range does Everest lie?"),
    ]
    ratings = '{"ratings": ["5555", "5555"], "notes": ""}'
    cut = ChatResponse(
        text='{"ratings": ["55',
        model="m",
        finish_reason="length",
        usage=Usage(prompt_tokens=10, completion_tokens=30),
    )
    client = ScriptedClient(replies=[cut, ratings, ratings, ratings])
    caps = CompletionCaps(min_samples=2)
    critic = QuestionCritic(client, "judge-model", caps=caps)
    first = await critic.review(CHUNK, questions)
    asked = client.calls[0].kwargs
    assert asked["max_tokens"] == 32 + CRITIQUE_TOKENS * len(questions)
    assert asked["retry_max_tokens"] == 4 * asked["max_tokens"]
    # the cut reply was asked again with the larger cap, read, and paid for in the usage
    assert client.calls[1].kwargs["max_tokens"] == asked["retry_max_tokens"]
    assert [r.scores is not None for r in first.reviews] == [True, True]
    assert first.usage.completion_tokens > 30
    await critic.review(CHUNK, questions, sample=1)
    learned = caps.cap("critique", "judge-model", initial=10_000, units=len(questions))
    assert learned.source == "learned"
    await critic.review(CHUNK, questions, sample=2)
    assert client.calls[-1].kwargs["max_tokens"] == learned.max_tokens
    assert learned.max_tokens is not None
    assert learned.max_tokens < asked["max_tokens"]
    stats = {s.kind: s for s in caps.stats()}
    assert stats["critique"].retried == 1
    # today's behaviour, for comparison: no cap sent
    plain = ScriptedClient(replies=[ratings])
    await QuestionCritic(plain, "judge-model", caps=CompletionCaps("server-default")).review(
        CHUNK, questions
    )
    assert plain.calls[0].kwargs.get("max_tokens") is None


@pytest.mark.anyio
async def test_a_judge_that_never_answers_in_json_keeps_every_question(anyio_backend: str) -> None:
    client = ScriptedClient(lambda call: "I think they are all fine.")
    critic = QuestionCritic(client, "judge")
    reviews = await critic.review(CHUNK, [question("Who climbed Everest first?")])
    assert [r.reason for r in reviews.reviews] == [None]
    assert reviews.unjudged == 1


@pytest.mark.anyio
async def test_filters_only_and_off_make_no_call(anyio_backend: str) -> None:
    client = ScriptedClient()
    questions = [question("What does the passage say?"), question("Who climbed Everest first?")]
    filtered = await QuestionCritic(client, "m", rules=CritiqueRules(mode="filters")).review(
        CHUNK, questions
    )
    assert [r.reason for r in filtered.reviews] == ["question_text_reference", None]
    off = await QuestionCritic(client, "m", rules=CritiqueRules(mode="off")).review(
        CHUNK, questions
    )
    assert [r.reason for r in off.reviews] == [None, None]
    assert client.calls == []


@pytest.fixture
async def lazy_teacher() -> AsyncIterator[Simulator]:
    behaviour = ModelBehaviour(
        bad_questions=0.6, bad_question_kinds=("text_reference", "copied_sentence", "vague")
    )
    config = SimulatorConfig(model_behaviour={"lazy": behaviour}, accept_unknown_models=True)
    async with Simulator(config) as simulator:
        yield simulator


@pytest.mark.anyio
async def test_the_simulated_lazy_teachers_bad_questions_are_all_rejected(
    anyio_backend: str, lazy_teacher: Simulator
) -> None:
    chunk = Chunk(
        id="bats#0",
        document_id="bats",
        index=0,
        text=(
            "Bats are the only mammals capable of true and sustained flight. Their forelimbs "
            "are adapted as wings. Most bats are nocturnal, and many roost in caves. Vampire "
            "bats feed on the blood of other animals. Fruit bats rely on sight and smell. "
            "Echolocation lets small bats hunt insects in complete darkness."
        ),
        start=0,
        end=300,
    )
    async with OpenAIClient(base_url=lazy_teacher.base_url, api_key=lazy_teacher.api_key) as c:
        questions = await TeacherQuestionSynthesizer(c, "lazy").synthesize(chunk, 5)
        reviews = await QuestionCritic(c, "gpt-4o").review(chunk, questions)
    # the flawed kinds: "What does the text say about …", "What is known about <one word>?"
    bad = [
        q.text
        for q in questions
        if q.text.startswith("What does the text")
        or re.fullmatch(r"What is known about \w+\?", q.text)
    ]
    assert bad, "the lazy teacher wrote some bad questions"
    kept = {q.text for q in reviews.kept}
    assert kept.isdisjoint(bad)
    reasons = {r.reason for r in reviews.reviews if r.reason is not None}
    assert reasons <= {
        "question_text_reference",
        "question_copies_chunk",
        "question_not_specific",
        "question_not_answerable",
    }
    assert kept, "good questions survive"

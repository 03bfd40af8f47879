"""The evaluation run against deterministic fake clients, on asyncio and trio."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from raftkit.errors import AuthenticationError, BadRequestError, UsageError
from raftkit.evaluate import (
    BUILTIN_METRICS,
    JUDGE_PROMPT,
    Evaluator,
    JudgeCorrectness,
    JudgeGrade,
    Metric,
    ModelSpec,
    RaftEvaluator,
    Sample,
    build_messages,
    documents_for,
    render_user_prompt,
)
from raftkit.evaluate.judge import grade_to_unit
from raftkit.llm import ChatResponse
from raftkit.testing.scripted import Call, Reply, ScriptedClient
from raftkit.types import ContextDocument, RaftExample, Usage

pytestmark = pytest.mark.anyio

_DOC = re.compile(r"<DOCUMENT>(.*?)</DOCUMENT>", re.DOTALL)


def fake_client(style: str, *, fail_on: Mapping[str, Exception] | None = None) -> ScriptedClient:
    """Answers from the ``<DOCUMENT>`` blocks of the prompt, deterministically.

    A ``reader`` quotes the document sentence sharing most words with the question and answers
    its last word, in RAFT's format; a ``guesser`` answers the first word of the first document
    without the format. ``fail_on`` maps a question substring to an exception to raise. Asked
    for structured output, it is a judge: grade 5 when the candidate's words all occur in the
    reference, else 1.
    """

    async def respond(call: Call) -> Reply:
        if call.method == "chat_structured":
            assert call.kwargs["output"] is JudgeGrade
            return _judge(call.prompt)
        for _ in range(5):  # let other tasks run while this call is "in flight"
            await anyio.lowlevel.checkpoint()
        for needle, exc in (fail_on or {}).items():
            if needle in call.prompt:
                raise exc
        return ChatResponse(
            text=_answer(style, call.prompt),
            model=call.model,
            usage=Usage(prompt_tokens=len(call.prompt), completion_tokens=3),
        )

    return ScriptedClient(respond)


def _answer(style: str, prompt: str) -> str:
    docs = _DOC.findall(prompt)
    question = _DOC.sub("", prompt).strip()
    if not docs:
        return "I do not know."
    if style == "guesser":
        return str(docs[0]).split()[0]
    words = set(re.findall(r"\w+", question.lower()))
    sentences = [s.strip() for d in docs for s in d.split(".") if s.strip()]
    best = max(sentences, key=lambda s: len(words & set(re.findall(r"\w+", s.lower()))))
    return f"##begin_quote##{best}.##end_quote##\n<ANSWER>: {best.split()[-1]}"


def _judge(prompt: str) -> dict[str, Any]:
    reference = prompt.split("=== REFERENCE ANSWER ===\n")[1].split("\n===")[0]
    candidate = prompt.split("=== CANDIDATE ANSWER ===\n")[1].split("\n===")[0]
    good = set(candidate.lower().split()) <= set(reference.lower().split())
    return {"rationale": "matches" if good else "differs", "grade": 5 if good else 1}


_FACTS = [
    ("bats", "What do bats eat", "Most bats eat insects"),
    ("surf", "Where was surfing born", "Surfing was born in Polynesia"),
    ("moon", "What orbits the earth", "The earth is orbited by the moon"),
    ("sun", "What does the earth orbit", "The earth orbits the sun"),
    ("tea", "What do people brew from leaves", "From leaves people brew tea"),
    ("rain", "What falls from clouds", "From clouds falls rain"),
]
_DISTRACTORS = ["Paper is made from wood pulp.", "Rivers flow to the sea."]


def _examples(*, without_oracle: int = 0) -> list[RaftExample]:
    examples = []
    for i, (key, question, fact) in enumerate(_FACTS):
        oracle_present = i >= without_oracle
        docs = [
            ContextDocument(chunk_id=f"d#{j}", position=j, is_oracle=False, text=t)
            for j, t in enumerate(_DISTRACTORS)
        ]
        if oracle_present:
            docs.insert(
                1, ContextDocument(chunk_id=f"o#{i}", position=1, is_oracle=True, text=fact + ".")
            )
            docs[2] = docs[2].model_copy(update={"position": 2})
        examples.append(
            RaftExample(
                id=f"ex-{key}",
                question_id=f"q-{key}",
                question=question + "?",
                chunk_id=f"o#{i}",
                document_id="doc",
                documents=docs,
                oracle_present=oracle_present,
                cot_answer=f"##begin_quote##{fact}.##end_quote## <ANSWER>: {fact.split()[-1]}",
                final_answer=fact.split()[-1],
            )
        )
    return examples


def test_render_user_prompt_is_raft_format() -> None:
    docs = [
        ContextDocument(chunk_id="b", position=1, is_oracle=True, title="蝙蝠", text="蝙蝠会飞。"),
        ContextDocument(chunk_id="a", position=0, is_oracle=False, text="Paper <is> pulp."),
    ]
    prompt = render_user_prompt("蝙蝠会飞吗？", docs)
    assert (
        prompt
        == "<DOCUMENT>Paper <is> pulp.</DOCUMENT>\n<DOCUMENT>蝙蝠会飞。</DOCUMENT>\n蝙蝠会飞吗？"
    )
    with_instruction = render_user_prompt("q?", docs[:1], instruction="End with <ANSWER>: x")
    assert with_instruction.endswith("q?\nEnd with <ANSWER>: x")
    messages = build_messages("q?", docs, system_prompt="be brief")
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[1]["content"] == render_user_prompt("q?", docs)


def test_prompt_matches_the_fine_tuning_export() -> None:
    """The student is asked exactly as it was trained."""
    from raftkit.dataset.export import format_instruction

    for example in _examples(without_oracle=1):
        assert render_user_prompt(example.question, example.documents) == format_instruction(
            example
        )


def test_documents_for_each_setting() -> None:
    example = _examples()[0]
    assert [d.is_oracle for d in documents_for(example, "dataset") or []] == [False, True, False]
    no_oracle = documents_for(example, "no_oracle") or []
    assert [d.chunk_id for d in no_oracle] == ["d#0", "d#1"]
    assert [d.position for d in no_oracle] == [0, 1]
    only = documents_for(example, "oracle_only") or []
    assert [(d.chunk_id, d.position) for d in only] == [("o#0", 0)]
    assert documents_for(_examples(without_oracle=1)[0], "oracle_only") is None


async def test_tuned_model_beats_base_with_confidence(anyio_backend: str) -> None:
    base, tuned = fake_client("guesser"), fake_client("reader")
    evaluator = RaftEvaluator(n_resamples=2000, max_concurrency=3)
    report = await evaluator.evaluate(
        _examples(),
        [ModelSpec("base", base, "base-model"), ModelSpec("tuned", tuned, "ft:base-model:x")],
    )
    assert report.baseline == "base"
    assert report.models == ["base", "tuned"]
    assert report.n_questions == len(_FACTS)
    em = report.comparison("exact_match", "tuned")
    assert (em.mean_a, em.mean_b, em.verdict) == (0.0, 1.0, "better")
    assert report.comparison("format_adherence", "tuned").verdict == "better"
    grounding = report.summary("quote_grounding")
    by_model = {m.model: m for m in grounding.models}
    # the guesser never quotes: grounding is not measured for it, not zero
    assert (by_model["base"].n_measured, by_model["base"].n_not_measured) == (0, len(_FACTS))
    assert by_model["tuned"].mean == 1.0
    assert report.comparison("answer_length", "tuned").verdict in {"higher", "lower"}

    # every call went through chat, in RAFT's format, at most 3 at a time
    assert len(base.calls) == len(tuned.calls) == len(_FACTS)
    call = tuned.calls[0]
    assert call.model == "ft:base-model:x"
    assert [m["role"] for m in call.messages] == ["user"]  # no system prompt unless asked for
    assert str(call.messages[0]["content"]).startswith(
        "<DOCUMENT>Paper is made from wood pulp.</DOCUMENT>"
    )
    assert base.max_in_flight == 3  # the first three questions run together
    assert tuned.max_in_flight <= 3
    assert sum(r.usage.completion_tokens for r in report.results) == 3 * 2 * len(_FACTS)


async def test_settings_and_skipped_questions(anyio_backend: str) -> None:
    tuned = fake_client("reader")
    evaluator = RaftEvaluator(settings=("dataset", "no_oracle", "oracle_only"), n_resamples=500)
    results = await evaluator.run(_examples(without_oracle=2), [ModelSpec("tuned", tuned, "m")])
    assert len(results) == 3 * len(_FACTS)
    assert [r.setting for r in results[:: len(_FACTS)]] == ["dataset", "no_oracle", "oracle_only"]
    skipped = [r for r in results if r.status == "skipped"]
    assert {(r.setting, r.example_id) for r in skipped} == {
        ("oracle_only", "ex-bats"),
        ("oracle_only", "ex-surf"),
    }
    assert all(math.isnan(v) for r in skipped for v in r.scores.values())
    assert len(tuned.calls) == 3 * len(_FACTS) - 2  # nothing is asked when a setting is void
    oracle_only = [r for r in results if r.setting == "oracle_only" and r.status == "answered"]
    assert all(r.scores["exact_match"] == 1.0 for r in oracle_only)
    no_oracle = [r for r in results if r.setting == "no_oracle"]
    assert all(r.scores["exact_match"] == 0.0 for r in no_oracle)


async def test_a_failed_question_is_counted_not_averaged(anyio_backend: str) -> None:
    error = BadRequestError("context too long", status_code=400, request_id="req_1")
    tuned = fake_client("reader", fail_on={"What do bats eat": error})
    report = await RaftEvaluator(n_resamples=500).evaluate(
        _examples(),
        [ModelSpec("base", fake_client("guesser"), "m"), ModelSpec("tuned", tuned, "m")],
    )
    failed = [r for r in report.results if r.status == "failed"]
    assert [(r.model, r.example_id) for r in failed] == [("tuned", "ex-bats")]
    assert failed[0].error is not None
    assert "context too long" in failed[0].error
    assert failed[0].response is None
    assert math.isnan(failed[0].scores["token_f1"])
    tuned_em = next(m for m in report.summary("exact_match").models if m.model == "tuned")
    assert (tuned_em.mean, tuned_em.n_measured, tuned_em.n_not_measured) == (1.0, 5, 1)
    assert report.comparison("exact_match", "tuned").n_excluded == 1


async def test_run_wide_errors_end_the_run(anyio_backend: str) -> None:
    error = AuthenticationError("bad key", status_code=401)
    broken = fake_client("reader", fail_on={"?": error})
    with pytest.raises(AuthenticationError):
        await RaftEvaluator(max_concurrency=1).run(_examples(), [ModelSpec("m", broken, "m")])
    # several calls in flight refused at once: still the error itself, not an exception group
    with pytest.raises(AuthenticationError):
        await RaftEvaluator(max_concurrency=4).run(_examples(), [ModelSpec("m", broken, "m")])
    assert broken.max_in_flight > 1


async def test_judge_metric_through_chat_structured(anyio_backend: str) -> None:
    judge_client = fake_client("reader")
    judge = JudgeCorrectness(judge_client, model="judge-model")
    metric: Metric = judge
    assert metric.name == "judge_correctness"
    report = await RaftEvaluator([*BUILTIN_METRICS, judge], n_resamples=500).evaluate(
        _examples(),
        [
            ModelSpec("base", fake_client("guesser"), "m"),
            ModelSpec("tuned", fake_client("reader"), "m"),
        ],
        baseline="base",
    )
    summary = {m.model: m.mean for m in report.summary("judge_correctness").models}
    assert summary == {"base": 0.0, "tuned": 1.0}
    tuned = next(r for r in report.results if r.model == "tuned")
    assert tuned.notes["judge_correctness"] == "matches"
    judged = judge_client.calls[0]
    assert judged.model == "judge-model"
    assert "=== CANDIDATE ANSWER ===" in str(judged.messages[0]["content"])
    assert JUDGE_PROMPT.count("{candidate}") == 1


async def test_judge_does_not_pay_for_empty_answers(anyio_backend: str) -> None:
    client = fake_client("reader")
    score = await JudgeCorrectness(client, model="j").score(
        Sample(question="q", response="<ANSWER>:", reference="x")
    )
    assert score.value == 0.0
    assert client.calls == []


def test_grade_to_unit_and_schema() -> None:
    assert [grade_to_unit(g) for g in (1, 2, 3, 4, 5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    schema = JudgeGrade.model_json_schema()
    assert schema["properties"]["grade"]["minimum"] == 1
    assert schema["properties"]["grade"]["maximum"] == 5
    assert list(schema["properties"]) == ["rationale", "grade"]  # reason first, then grade


async def test_usage_mistakes(anyio_backend: str) -> None:
    client = fake_client("reader")
    evaluator: Evaluator = RaftEvaluator()
    with pytest.raises(UsageError, match="baseline"):
        await evaluator.evaluate(_examples()[:1], [ModelSpec("a", client, "m")], baseline="zzz")
    with pytest.raises(UsageError, match="unique"):
        await RaftEvaluator().run(_examples()[:1], [ModelSpec("a", client, "m")] * 2)
    with pytest.raises(UsageError, match="metric names"):
        RaftEvaluator([*BUILTIN_METRICS, BUILTIN_METRICS[0]])
    with pytest.raises(UsageError, match="setting"):
        RaftEvaluator(settings=("everything",))  # type: ignore[arg-type]


async def test_a_shared_limiter_bounds_the_calls(anyio_backend: str) -> None:
    client = fake_client("reader")
    limiter = anyio.CapacityLimiter(2)
    results = await RaftEvaluator(limiter=limiter, max_concurrency=50).run(
        _examples(), [ModelSpec("m", client, "m")]
    )
    assert client.max_in_flight == 2
    assert [r.example_id for r in results] == [e.id for e in _examples()]
    assert limiter.borrowed_tokens == 0

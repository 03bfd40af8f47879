"""Abstention metrics, the answer cap, and every metric broken down by question type."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from raftkit.errors import UsageError
from raftkit.evaluate import (
    ABSTENTION_METRIC_NAMES,
    DEFAULT_REFUSAL_ANSWER,
    MetricInfo,
    QuestionResult,
    Sample,
    abstention_metrics,
    compare,
    default_max_tokens,
    is_refusal,
    refusal_answer_of,
    render_html,
    render_markdown,
)
from raftkit.evaluate.prompt import MIN_ANSWER_TOKENS
from raftkit.llm.tokens import estimate_tokens
from raftkit.types import ContextDocument, RaftExample

REFUSAL = DEFAULT_REFUSAL_ANSWER


def test_the_refusal_phrase_is_one_shared_constant() -> None:
    import raftkit.types

    assert raftkit.types.DEFAULT_REFUSAL_ANSWER == REFUSAL
    assert "DEFAULT_REFUSAL_ANSWER" in raftkit.types.__all__


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        (REFUSAL, True),
        ("i CANNOT answer this, from the given documents", True),  # case and punctuation
        ("I cannot answer this from the given documents; they discuss surfing.", True),
        ("Ｉ ｃａｎｎｏｔ answer this from the given documents。", True),  # full width
        ("I cannotanswer this from the given documents.", False),  # whole words only
        ("I cannot answer this from the given document.", False),  # a different phrase
        ("Polynesia", False),
        ("", False),
    ],
)
def test_is_refusal_matches_the_phrase_as_a_token_sequence(answer: str, refused: bool) -> None:
    assert is_refusal(answer) is refused


def test_is_refusal_in_chinese_ignores_spacing_and_width() -> None:
    phrase = "根据所给文件无法回答。"
    assert is_refusal("根据 所给 文件无法回答", phrase)
    assert is_refusal("很抱歉，根据所给文件无法回答！", phrase)
    assert not is_refusal("根据所给文件可以回答", phrase)
    assert not is_refusal("anything", "  ")  # an empty phrase matches nothing


def _sample(
    answer: str, *, reference: str = "Polynesia", shown: bool | None = True, **kw: object
) -> Sample:
    return Sample(
        question="Where was surfing born?",
        response=f"##begin_quote##x##end_quote## <ANSWER>: {answer}",
        reference=reference,
        oracle_shown=shown,
        **kw,  # type: ignore[arg-type]
    )


def _scores(sample: Sample) -> dict[str, float]:
    return {m.name: m.function(sample) for m in abstention_metrics()}


def test_abstention_metrics_per_question() -> None:
    assert [m.name for m in abstention_metrics()] == list(ABSTENTION_METRIC_NAMES)
    right = _scores(_sample("ancient Polynesia"))
    assert right == {
        "answer_rate": 1.0,
        "precision_when_answering": 1.0,
        "false_refusal_rate": 0.0,
        "refusal_without_oracle": right["refusal_without_oracle"],
    }
    assert math.isnan(right["refusal_without_oracle"])  # the oracle was shown
    wrong = _scores(_sample("Hawaii"))
    assert wrong["precision_when_answering"] == 0.0
    false_refusal = _scores(_sample(REFUSAL))
    assert false_refusal["answer_rate"] == 0.0
    assert math.isnan(false_refusal["precision_when_answering"])  # it did not answer
    assert false_refusal["false_refusal_rate"] == 1.0
    proper = _scores(_sample(REFUSAL, shown=False, reference=REFUSAL, reference_kind="refusal"))
    assert proper["refusal_without_oracle"] == 1.0
    assert math.isnan(proper["false_refusal_rate"])  # the documents lacked the answer
    # answering where the gold answer is a refusal is never right, whatever the overlap
    guessed = _scores(_sample("given documents", shown=False, reference=REFUSAL,
                              reference_kind="refusal"))  # fmt: skip
    assert (guessed["precision_when_answering"], guessed["refusal_without_oracle"]) == (0.0, 0.0)


def test_oracle_shown_falls_back_to_the_contexts() -> None:
    shown = Sample("q", "<ANSWER>: a", "a", contexts=("other", "the oracle"), oracle="the oracle")
    hidden = Sample("q", "<ANSWER>: a", "a", contexts=("other",), oracle="the oracle")
    assert (shown.has_oracle, hidden.has_oracle) == (True, False)


def test_abstention_options_are_checked() -> None:
    with pytest.raises(UsageError, match="refusal phrase"):
        abstention_metrics(" ")
    with pytest.raises(UsageError, match="correct_f1"):
        abstention_metrics(correct_f1=0.0)
    strict = {m.name: m for m in abstention_metrics(correct_f1=1.0)}
    assert strict["precision_when_answering"].function(_sample("ancient Polynesia")) == 0.0
    custom = {m.name: m for m in abstention_metrics("Keine Antwort möglich.")}
    assert custom["answer_rate"].function(_sample("keine antwort möglich")) == 0.0


def _example(i: int, *, cot: str = "short", kind: str = "answer", final: str = "a",
             question_type: str | None = None) -> RaftExample:  # fmt: skip
    return RaftExample(
        id=f"ex{i}",
        question_id=f"q{i}",
        question="q?",
        chunk_id=f"c{i}",
        document_id="d",
        documents=[ContextDocument(chunk_id=f"c{i}", position=0, is_oracle=True, text="t")],
        oracle_present=kind == "answer",
        cot_answer=cot,
        final_answer=final,
        answer_kind=kind,
        question_type=question_type,
    )


def test_refusal_answer_of_reads_the_examples() -> None:
    assert refusal_answer_of([_example(0)]) is None
    mixed = [
        _example(0),
        _example(1, kind="refusal", final="Nicht beantwortbar."),
        _example(2, kind="refusal", final="Nicht beantwortbar."),
        _example(3, kind="refusal", final="Other."),
    ]
    assert refusal_answer_of(mixed) == "Nicht beantwortbar."


def test_default_max_tokens_follows_the_longest_reference() -> None:
    assert default_max_tokens([]) == MIN_ANSWER_TOKENS
    assert default_max_tokens([_example(0, cot="word " * 10)]) == MIN_ANSWER_TOKENS
    long = _example(1, cot="word " * 400)
    cap = default_max_tokens([_example(0), long])
    longest = estimate_tokens(long.cot_answer)  # twice that, rounded up to a multiple of 64
    assert cap % 64 == 0
    assert 2 * longest <= cap < 2 * longest + 64
    assert default_max_tokens([long], factor=1.0) < cap
    # the estimate is script-aware: 600 CJK characters need more room than 600 Latin ones
    chinese = _example(2, cot="蝙蝠" * 300)
    assert default_max_tokens([chinese]) > default_max_tokens([_example(3, cot="ab" * 300)])


# ---------------------------------------------------------------- by question type

_METRICS = [MetricInfo(name="token_f1"), MetricInfo(name="answer_rate", higher_is_better=None)]


def _typed_results(types: Sequence[str | None]) -> list[QuestionResult]:
    results = []
    for i, question_type in enumerate(types):
        for model, f1 in (("base", 0.2), ("tuned", 0.9 if question_type == "factoid" else 0.2)):
            results.append(
                QuestionResult(
                    setting="dataset",
                    model=model,
                    example_id=f"ex{i}",
                    question_id=f"q{i}",
                    question="q",
                    reference="r",
                    question_type=question_type,
                    scores={"token_f1": f1 + (i % 3) * 0.01, "answer_rate": 1.0},
                )
            )
    return results


def test_every_metric_is_broken_down_by_question_type() -> None:
    types = ["factoid", "explanation", None] * 10
    report = compare(_typed_results(types), _METRICS, baseline="base", n_resamples=500)
    assert report.question_types == ["explanation", "factoid", None]
    assert len(report.by_question_type) == 3 * len(_METRICS)
    factoid = report.summary("token_f1", question_type="factoid")
    assert [m.n_measured for m in factoid.models] == [10, 10]
    assert factoid.versus_baseline["tuned"].verdict == "better"
    explanation = report.summary("token_f1", question_type="explanation")
    assert explanation.versus_baseline["tuned"].verdict == "no detectable difference"
    # the overall summary is over all 30 questions and is not a per-type one
    overall = report.summary("token_f1")
    assert overall.question_type is None
    assert overall.models[0].n_measured == 30
    with pytest.raises(UsageError, match="question type 'comparison'"):
        report.summary("token_f1", question_type="comparison")

    markdown = render_markdown(report)
    assert "### By question type (dataset)" in markdown
    assert "| token_f1 | factoid | tuned |" in markdown
    assert "| token_f1 | (no type) | base |" in markdown
    html = render_html(report)
    assert "By question type (dataset)" in html
    assert "<td>factoid</td>" in html
    # JSON round trip keeps the breakdown
    again = type(report).model_validate_json(report.model_dump_json())
    assert again.summary("token_f1", question_type="factoid") == factoid


def test_no_breakdown_without_question_types() -> None:
    report = compare(_typed_results([None] * 6), _METRICS, baseline="base", n_resamples=200)
    assert report.by_question_type == []
    assert "By question type" not in render_markdown(report)
    assert "By question type" not in render_html(report)


def test_question_types_and_notes_are_escaped() -> None:
    evil = '<script>alert("t")</script>'
    report = compare(_typed_results([evil, "factoid"] * 3), _METRICS, baseline="base")
    report = report.model_copy(
        update={"notes": [f"note {evil}"], "links": {"training curve (plot)": "curves/c.svg"}}
    )
    html = render_html(report)
    assert evil not in html
    assert "&lt;script&gt;" in html
    assert '<a href="curves/c.svg">training curve (plot)</a>' in html
    markdown = render_markdown(report)
    assert evil not in markdown
    assert "- training curve (plot): [curves/c.svg](curves/c.svg)" in markdown

"""Abstention metrics: does the model refuse when it should, and only then?

RAFT examples whose context lacks the oracle may teach a refusal (``answer_kind="refusal"``,
a fixed phrase after ``<ANSWER>:``). A student that learnt it should answer when the documents
hold the answer and refuse when they do not; one that never refuses answers from memory, one
that always refuses is useless. Four per-question numbers tell these apart, each bootstrapped
like any other metric:

- ``answer_rate``: 1 when the model answered (did not refuse), on every question;
- ``precision_when_answering``: on questions the model answered, 1 when the answer is right
  (token F1 against the gold answer at least ``correct_f1``; an answer where the gold is a
  refusal is wrong); ``nan`` when it refused;
- ``false_refusal_rate``: on questions whose documents hold the oracle, 1 when the model
  refused; ``nan`` when the oracle was not shown;
- ``refusal_without_oracle``: on questions whose documents lack the oracle, 1 when the model
  refused; ``nan`` when the oracle was shown. Descriptive: whether refusing there is right
  depends on what the student was taught (the paper teaches recall instead).

A refusal is recognised by :func:`~raftkit.evaluate.metrics.is_refusal` on the final answer.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from raftkit.errors import UsageError
from raftkit.evaluate.metrics import FunctionMetric, Sample, is_refusal, token_f1
from raftkit.types import DEFAULT_REFUSAL_ANSWER, RaftExample

__all__ = [
    "ABSTENTION_METRIC_NAMES",
    "DEFAULT_CORRECT_F1",
    "abstention_metrics",
    "refusal_answer_of",
]

#: Token F1 at or above which an answer counts as right for ``precision_when_answering``.
DEFAULT_CORRECT_F1 = 0.5

ABSTENTION_METRIC_NAMES = (
    "answer_rate",
    "precision_when_answering",
    "false_refusal_rate",
    "refusal_without_oracle",
)


def refusal_answer_of(examples: Iterable[RaftExample]) -> str | None:
    """The refusal phrase the examples' refusals use (the most common final answer of
    ``answer_kind="refusal"`` examples), or ``None`` when none refuses."""
    said = Counter(e.final_answer.strip() for e in examples if e.answer_kind == "refusal")
    said.pop("", None)
    return said.most_common(1)[0][0] if said else None


def abstention_metrics(
    refusal: str = DEFAULT_REFUSAL_ANSWER, *, correct_f1: float = DEFAULT_CORRECT_F1
) -> tuple[FunctionMetric, ...]:
    """The four abstention metrics, recognising ``refusal`` as the abstaining final answer."""
    if not refusal.strip():
        raise UsageError("the refusal phrase must not be empty")
    if not 0.0 < correct_f1 <= 1.0:
        raise UsageError(f"correct_f1 must lie in (0, 1], not {correct_f1}")

    def refused(s: Sample) -> bool:
        return is_refusal(s.final_answer, refusal)

    def answer_rate(s: Sample) -> float:
        return 0.0 if refused(s) else 1.0

    def precision(s: Sample) -> float:
        if refused(s):
            return math.nan
        if s.reference_kind == "refusal":
            return 0.0
        return 1.0 if token_f1(s.final_answer, s.reference) >= correct_f1 else 0.0

    def false_refusal(s: Sample) -> float:
        if not s.has_oracle:
            return math.nan
        return 1.0 if refused(s) else 0.0

    def refusal_without_oracle(s: Sample) -> float:
        if s.has_oracle:
            return math.nan
        return 1.0 if refused(s) else 0.0

    return (
        FunctionMetric(
            "answer_rate",
            answer_rate,
            higher_is_better=None,
            description="the model answered instead of refusing (all questions)",
        ),
        FunctionMetric(
            "precision_when_answering",
            precision,
            description=f"answers that are right (token F1 ≥ {correct_f1:g}), among those given",
        ),
        FunctionMetric(
            "false_refusal_rate",
            false_refusal,
            higher_is_better=False,
            description="refusals where the documents shown hold the answer",
        ),
        FunctionMetric(
            "refusal_without_oracle",
            refusal_without_oracle,
            higher_is_better=None,
            description="refusals where the documents shown lack the oracle",
        ),
    )

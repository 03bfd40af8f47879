"""Evaluation: does the fine-tuned student answer better than the base model, and how sure are we?

Plug-in points, both :class:`typing.Protocol`\\ s so a plain object will do:

- :class:`Metric` scores one answered question (:class:`~raftkit.evaluate.metrics.Sample`).
  Built in: :data:`~raftkit.evaluate.metrics.BUILTIN_METRICS` (exact match, token F1, quote
  grounding, format adherence, answer length), :class:`~raftkit.evaluate.judge.JudgeCorrectness`
  (an LLM judge) and, with the ``ragas`` extra,
  :func:`~raftkit.evaluate.ragas_adapter.ragas_metrics`.
- :class:`Evaluator` runs an evaluation and returns an
  :class:`~raftkit.evaluate.report.EvaluationReport`; :class:`RaftEvaluator` is the default.
- :class:`Retriever` ranks the corpus' chunks for a question, so the evaluation can run with
  the retriever in the loop (:func:`~raftkit.evaluate.retrieved.retrieve_contexts`).

Abstention (:func:`~raftkit.evaluate.abstention.abstention_metrics`), models at several
endpoints (:mod:`~raftkit.evaluate.endpoints`), the per-question-type breakdown and the
retriever × model grid (:mod:`~raftkit.evaluate.grid`) complete the picture.

Every comparison carries a paired-bootstrap confidence interval
(:func:`~raftkit.stats.paired_bootstrap`), and a verdict names a direction only when
the interval excludes zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from raftkit.evaluate.abstention import (
    ABSTENTION_METRIC_NAMES,
    abstention_metrics,
    refusal_answer_of,
)
from raftkit.evaluate.endpoints import (
    BASE_ALIAS,
    FINETUNED_ALIAS,
    EndpointScopedStore,
    ModelTarget,
    check_endpoint,
    parse_model_target,
    parse_model_targets,
)
from raftkit.evaluate.grid import GridCell, GridSummary, RetrieverSummary
from raftkit.evaluate.judge import JUDGE_PROMPT, JudgeCorrectness, JudgeGrade
from raftkit.evaluate.metrics import (
    BUILTIN_METRICS,
    FunctionMetric,
    Sample,
    Score,
    answer_length,
    exact_match,
    extract_final_answer,
    extract_quotes,
    format_adherence,
    is_refusal,
    normalize_answer,
    quote_grounding,
    token_f1,
)
from raftkit.evaluate.prompt import build_messages, default_max_tokens, render_user_prompt
from raftkit.evaluate.render import render_html, render_markdown, write_report
from raftkit.evaluate.report import (
    ContextSetting,
    EvaluationReport,
    MetricInfo,
    MetricSummary,
    ModelDetail,
    ModelSummary,
    QuestionResult,
    compare,
)
from raftkit.evaluate.retrieved import RetrievedContext, RetrievedContexts, retrieve_contexts
from raftkit.evaluate.runner import ModelSpec, RaftEvaluator, Setting, documents_for
from raftkit.stats import (
    Comparison,
    Interval,
    Verdict,
    bootstrap_mean,
    paired_bootstrap,
)
from raftkit.types import DEFAULT_REFUSAL_ANSWER, RaftExample

__all__ = [
    "ABSTENTION_METRIC_NAMES",
    "BASE_ALIAS",
    "BUILTIN_METRICS",
    "DEFAULT_REFUSAL_ANSWER",
    "FINETUNED_ALIAS",
    "JUDGE_PROMPT",
    "Comparison",
    "ContextSetting",
    "EndpointScopedStore",
    "EvaluationReport",
    "Evaluator",
    "FunctionMetric",
    "GridCell",
    "GridSummary",
    "Interval",
    "JudgeCorrectness",
    "JudgeGrade",
    "Metric",
    "MetricInfo",
    "MetricSummary",
    "ModelDetail",
    "ModelSpec",
    "ModelSummary",
    "ModelTarget",
    "QuestionResult",
    "RaftEvaluator",
    "RetrievedContext",
    "RetrievedContexts",
    "Retriever",
    "RetrieverSummary",
    "Sample",
    "Score",
    "Setting",
    "Verdict",
    "abstention_metrics",
    "answer_length",
    "bootstrap_mean",
    "build_messages",
    "check_endpoint",
    "compare",
    "default_max_tokens",
    "documents_for",
    "exact_match",
    "extract_final_answer",
    "extract_quotes",
    "format_adherence",
    "is_refusal",
    "normalize_answer",
    "paired_bootstrap",
    "parse_model_target",
    "parse_model_targets",
    "quote_grounding",
    "refusal_answer_of",
    "render_html",
    "render_markdown",
    "render_user_prompt",
    "retrieve_contexts",
    "token_f1",
    "write_report",
]


@runtime_checkable
class Metric(Protocol):
    """Scores one answered question.

    ``score`` returns a float (``nan`` when the metric does not apply: "not measured") or a
    :class:`~raftkit.evaluate.metrics.Score` carrying a short note. ``higher_is_better`` is
    ``None`` for descriptive quantities such as length. An optional ``description`` attribute
    is shown in the report. A metric that calls a model raises raftkit's API errors; the
    runner records a per-question failure as ``nan`` with the error as the note.
    """

    @property
    def name(self) -> str: ...

    @property
    def higher_is_better(self) -> bool | None: ...

    async def score(self, sample: Sample) -> float | Score: ...


class Evaluator(Protocol):
    """Runs an evaluation of ``models`` on test ``examples`` and compares them to a baseline."""

    async def evaluate(
        self,
        examples: Sequence[RaftExample],
        models: Sequence[ModelSpec],
        *,
        baseline: str | None = None,
    ) -> EvaluationReport: ...


@runtime_checkable
class Retriever(Protocol):
    """Ranks the corpus' chunks for each query; ``name`` labels it in the report.

    ``search`` returns, per query, up to ``k`` ``(chunk id, score)`` pairs, best first.
    :class:`raftkit.eval_run.EmbeddingRetriever` is one (an embedder, an adapter or a
    fine-tuned model with exact top-k search); any search service can be another.
    """

    @property
    def name(self) -> str: ...

    async def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]: ...

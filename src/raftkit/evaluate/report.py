"""Per-question results and their comparison: every number of an evaluation, as data.

:func:`compare` turns per-question scores into an :class:`EvaluationReport`: for each context
setting and metric, each model's mean with its bootstrap interval and the count of questions not
measured, and each model's paired difference against the baseline with its interval and
verdict; the same again per question type when the examples carry one; and, when the retriever
was in the loop, hit@k per retriever and the retriever × model grid
(:mod:`raftkit.evaluate.grid`). The report is a pydantic model, so ``report.model_dump_json()``
is the JSON of all numbers (``nan`` is written as ``null``); :mod:`raftkit.evaluate.render`
turns it into Markdown and HTML.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.evaluate.grid import GridSummary, RetrieverSummary, summarise_retrieval
from raftkit.evaluate.retrieved import retriever_of
from raftkit.stats import Comparison, Interval, MaybeNaN, bootstrap_mean, paired_bootstrap
from raftkit.types import Usage

__all__ = [
    "SETTING_DESCRIPTIONS",
    "ContextSetting",
    "EvaluationReport",
    "MetricInfo",
    "MetricSummary",
    "ModelDetail",
    "ModelSummary",
    "QuestionResult",
    "compare",
    "setting_description",
]

#: Which documents a model sees beside each question.
ContextSetting = Literal["dataset", "no_oracle", "oracle_only"]

SETTING_DESCRIPTIONS: dict[str, str] = {
    "dataset": "the example's documents as in the dataset (oracle and distractors, in place)",
    "no_oracle": "the distractors only: the oracle document removed",
    "oracle_only": "the oracle document alone",
}


def setting_description(setting: str) -> str:
    """What the model saw in ``setting``, in words."""
    retriever = retriever_of(setting)
    if retriever is not None:
        return f"the top-k chunks the retriever {retriever!r} returned over the whole corpus"
    return SETTING_DESCRIPTIONS.get(setting, "")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class MetricInfo(_Frozen):
    """A metric's name, what it measures and which direction is good (``None``: neither)."""

    name: str
    description: str = ""
    higher_is_better: bool | None = True


class QuestionResult(_Frozen):
    """One model's answer to one question in one setting, and its scores.

    ``status`` is ``answered``, ``failed`` (the call raised; ``error`` says why) or ``skipped``
    (the setting does not apply, e.g. ``oracle_only`` for an example without its oracle).
    Scores of unanswered questions, and scores a metric could not measure, are ``nan``.
    ``oracle_shown`` says whether the oracle was among the documents shown (for a retrieved
    setting: whether the retriever found it); ``question_type`` is the example's.
    """

    setting: str
    model: str
    example_id: str
    question_id: str
    question: str
    reference: str
    question_type: str | None = None
    oracle_shown: bool | None = None
    status: Literal["answered", "failed", "skipped"] = "answered"
    response: str | None = None
    final_answer: str | None = None
    scores: dict[str, MaybeNaN] = Field(default_factory=dict)
    notes: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)


class ModelSummary(_Frozen):
    """One model's scores on one metric: mean, interval, measured and not-measured counts."""

    model: str
    mean: MaybeNaN
    ci_low: MaybeNaN
    ci_high: MaybeNaN
    n_measured: int
    n_not_measured: int

    @classmethod
    def from_interval(cls, model: str, interval: Interval) -> ModelSummary:
        return cls(
            model=model,
            mean=interval.mean,
            ci_low=interval.ci_low,
            ci_high=interval.ci_high,
            n_measured=interval.n,
            n_not_measured=interval.n_excluded,
        )


class MetricSummary(_Frozen):
    """One metric in one setting: the models side by side and each against the baseline.

    ``question_type`` is set in the per-type breakdown (:attr:`EvaluationReport.by_question_type`);
    there ``None`` stands for the questions without a type when others have one.
    """

    setting: str
    metric: MetricInfo
    question_type: str | None = None
    models: list[ModelSummary]
    versus_baseline: dict[str, Comparison] = Field(
        default_factory=dict, description="model name -> paired comparison against the baseline"
    )


class ModelDetail(_Frozen):
    """What a model label stood for: the model id, where it was served, how it was asked."""

    model: str
    endpoint: str | None = Field(None, description="base URL; None: the default endpoint")
    max_tokens: int | None = None
    system_prompt: str | None = None


class EvaluationReport(_Frozen):
    """Everything an evaluation measured. ``model_dump_json()`` writes it all.

    ``by_question_type`` repeats every summary per question type (empty when no example has
    one); ``retrieval`` and ``grid`` summarise retrieved settings (empty without them);
    ``notes`` and ``links`` (label to a path relative to the report) say where the settings
    came from and point at related files, such as the fine-tune's training curve.
    """

    baseline: str
    models: list[str]
    settings: list[str]
    metrics: list[MetricInfo]
    confidence: float
    n_resamples: int
    seed: int
    n_questions: int
    summaries: list[MetricSummary]
    results: list[QuestionResult]
    by_question_type: list[MetricSummary] = Field(default_factory=list)
    retrieval: list[RetrieverSummary] = Field(default_factory=list)
    grid: list[GridSummary] = Field(default_factory=list)
    model_details: dict[str, ModelDetail] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)
    simulated: bool = Field(
        default=False,
        description="some answer, or the run's data, came from raftkit's simulator",
    )

    def summary(
        self, metric: str, setting: str = "dataset", *, question_type: str | None = None
    ) -> MetricSummary:
        """The summary of ``metric`` in ``setting`` (over one ``question_type`` if given)."""
        pool = self.summaries if question_type is None else self.by_question_type
        for s in pool:
            wanted_type = question_type is None or s.question_type == question_type
            if s.metric.name == metric and s.setting == setting and wanted_type:
                return s
        kind = f" for question type {question_type!r}" if question_type is not None else ""
        raise UsageError(f"no summary for metric {metric!r} in setting {setting!r}{kind}")

    @property
    def question_types(self) -> list[str | None]:
        """The question types of the breakdown, in report order (``None``: untyped)."""
        return list(dict.fromkeys(s.question_type for s in self.by_question_type))

    def comparison(self, metric: str, model: str, setting: str = "dataset") -> Comparison:
        """``model`` against the baseline on ``metric`` in ``setting``."""
        summary = self.summary(metric, setting)
        if model not in summary.versus_baseline:
            raise UsageError(f"no comparison of {model!r} against {self.baseline!r}")
        return summary.versus_baseline[model]


def _ordered_unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _type_order(types: Iterable[str | None]) -> list[str | None]:
    distinct = set(types)
    named = sorted(t for t in distinct if t is not None)
    return [*named, None] if None in distinct else list(named)


def compare(
    results: Sequence[QuestionResult],
    metrics: Sequence[MetricInfo],
    *,
    baseline: str,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    top_k: Mapping[str, int] | None = None,
) -> EvaluationReport:
    """Summarise per-question ``results`` into a report.

    Questions are paired by ``example_id`` within a setting; a question one model has no
    result for counts as not measured for it. Means exclude ``nan`` and say how many were
    excluded. Results with a ``question_type`` add the per-type breakdown; results of
    ``retrieved:<name>`` settings add hit@k (``top_k`` gives each such setting's k) and, with
    two or more retrievers, the retriever × model grid. Blocking (numpy): call it through
    ``anyio.to_thread.run_sync`` from async code.
    """
    models = _ordered_unique(r.model for r in results)
    if baseline not in models:
        raise UsageError(f"baseline {baseline!r} has no results; models are {models}")
    models.remove(baseline)
    models.insert(0, baseline)
    settings = _ordered_unique(r.setting for r in results)
    by_key = {(r.setting, r.model, r.example_id): r for r in results}

    def summarise(
        setting: str, info: MetricInfo, ids: Sequence[str], question_type: str | None = None
    ) -> MetricSummary:
        columns: dict[str, np.ndarray] = {}
        for model in models:
            column = np.full(len(ids), np.nan)
            for i, example_id in enumerate(ids):
                result = by_key.get((setting, model, example_id))
                if result is not None:
                    column[i] = result.scores.get(info.name, np.nan)
            columns[model] = column
        return MetricSummary(
            setting=setting,
            metric=info,
            question_type=question_type,
            models=[
                ModelSummary.from_interval(
                    model,
                    bootstrap_mean(
                        columns[model],
                        n_resamples=n_resamples,
                        confidence=confidence,
                        seed=seed,
                    ),
                )
                for model in models
            ],
            versus_baseline={
                model: paired_bootstrap(
                    columns[baseline],
                    columns[model],
                    n_resamples=n_resamples,
                    confidence=confidence,
                    seed=seed,
                    higher_is_better=info.higher_is_better,
                )
                for model in models[1:]
            },
        )

    summaries: list[MetricSummary] = []
    breakdown: list[MetricSummary] = []
    typed = any(r.question_type is not None for r in results)
    for setting in settings:
        here = [r for r in results if r.setting == setting]
        ids = _ordered_unique(r.example_id for r in here)
        summaries.extend(summarise(setting, info, ids) for info in metrics)
        if not typed:
            continue
        type_of = {r.example_id: r.question_type for r in here}
        for question_type in _type_order(type_of.values()):
            subset = [i for i in ids if type_of[i] == question_type]
            breakdown.extend(summarise(setting, info, subset, question_type) for info in metrics)
    retrievers, grid = summarise_retrieval(
        results,
        metrics,
        models=models,
        top_k=top_k,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
    return EvaluationReport(
        baseline=baseline,
        models=models,
        settings=settings,
        metrics=list(metrics),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        n_questions=len(_ordered_unique(r.example_id for r in results)),
        summaries=summaries,
        results=list(results),
        by_question_type=breakdown,
        retrieval=retrievers,
        grid=grid,
    )

"""Per-question results and their comparison: every number of an evaluation, as data.

:func:`compare` turns per-question scores into an :class:`EvaluationReport`: for each context
setting and metric, each model's mean with its bootstrap interval and the count of questions not
measured, and each model's paired difference against the baseline with its interval and
verdict. The report is a pydantic model, so ``report.model_dump_json()`` is the JSON of all
numbers (``nan`` is written as ``null``); :mod:`raftkit.evaluate.render` turns it into Markdown
and HTML.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.stats import Comparison, Interval, MaybeNaN, bootstrap_mean, paired_bootstrap
from raftkit.types import Usage

__all__ = [
    "SETTING_DESCRIPTIONS",
    "ContextSetting",
    "EvaluationReport",
    "MetricInfo",
    "MetricSummary",
    "ModelSummary",
    "QuestionResult",
    "compare",
]

#: Which documents a model sees beside each question.
ContextSetting = Literal["dataset", "no_oracle", "oracle_only"]

SETTING_DESCRIPTIONS: dict[str, str] = {
    "dataset": "the example's documents as in the dataset (oracle and distractors, in place)",
    "no_oracle": "the distractors only: the oracle document removed",
    "oracle_only": "the oracle document alone",
}


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
    """

    setting: str
    model: str
    example_id: str
    question_id: str
    question: str
    reference: str
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
    """One metric in one setting: the models side by side and each against the baseline."""

    setting: str
    metric: MetricInfo
    models: list[ModelSummary]
    versus_baseline: dict[str, Comparison] = Field(
        default_factory=dict, description="model name -> paired comparison against the baseline"
    )


class EvaluationReport(_Frozen):
    """Everything an evaluation measured. ``model_dump_json()`` writes it all."""

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
    simulated: bool = Field(
        default=False,
        description="some answer, or the run's data, came from raftkit's simulator",
    )

    def summary(self, metric: str, setting: str = "dataset") -> MetricSummary:
        """The summary of ``metric`` in ``setting``."""
        for s in self.summaries:
            if s.metric.name == metric and s.setting == setting:
                return s
        raise UsageError(f"no summary for metric {metric!r} in setting {setting!r}")

    def comparison(self, metric: str, model: str, setting: str = "dataset") -> Comparison:
        """``model`` against the baseline on ``metric`` in ``setting``."""
        summary = self.summary(metric, setting)
        if model not in summary.versus_baseline:
            raise UsageError(f"no comparison of {model!r} against {self.baseline!r}")
        return summary.versus_baseline[model]


def _ordered_unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def compare(
    results: Sequence[QuestionResult],
    metrics: Sequence[MetricInfo],
    *,
    baseline: str,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> EvaluationReport:
    """Summarise per-question ``results`` into a report.

    Questions are paired by ``example_id`` within a setting; a question one model has no
    result for counts as not measured for it. Means exclude ``nan`` and say how many were
    excluded. Blocking (numpy): call it through ``anyio.to_thread.run_sync`` from async code.
    """
    models = _ordered_unique(r.model for r in results)
    if baseline not in models:
        raise UsageError(f"baseline {baseline!r} has no results; models are {models}")
    models.remove(baseline)
    models.insert(0, baseline)
    settings = _ordered_unique(r.setting for r in results)
    by_key = {(r.setting, r.model, r.example_id): r for r in results}

    summaries: list[MetricSummary] = []
    for setting in settings:
        ids = _ordered_unique(r.example_id for r in results if r.setting == setting)
        for info in metrics:
            columns: dict[str, np.ndarray] = {}
            for model in models:
                column = np.full(len(ids), np.nan)
                for i, example_id in enumerate(ids):
                    result = by_key.get((setting, model, example_id))
                    if result is not None:
                        column[i] = result.scores.get(info.name, np.nan)
                columns[model] = column
            summaries.append(
                MetricSummary(
                    setting=setting,
                    metric=info,
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
    )

"""The retriever in the loop, summarised: hit@k per retriever and the retriever × model grid.

When the evaluation ran with retrieved contexts (settings named ``retrieved:<retriever>``),
two questions remain that a per-setting table does not answer: how often did each retriever
put the oracle in front of the model (hit@k, with its interval and a paired comparison against
the first retriever), and how does every (retriever, generator) pair do against the baseline
pair, the first retriever with the baseline model (the "2×2" of base/tuned retriever ×
base/tuned generator, or any n×m). Pairs are formed per question across settings, so every
verdict is a paired bootstrap over the same questions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from raftkit.evaluate.retrieved import retriever_of
from raftkit.stats import Comparison, Interval, bootstrap_mean, paired_bootstrap

if TYPE_CHECKING:
    import numpy as np

    from raftkit.evaluate.report import MetricInfo, QuestionResult

__all__ = [
    "GridCell",
    "GridSummary",
    "RetrieverSummary",
    "summarise_retrieval",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RetrieverSummary(_Frozen):
    """How often one retriever put the oracle among the documents shown (hit@k)."""

    retriever: str
    setting: str
    k: int | None = None
    hit_rate: Interval
    versus_baseline: Comparison | None = Field(
        None, description="hit@k paired against the first retriever's (None for that one)"
    )


class GridCell(_Frozen):
    """One (retriever, model) pair's score on one metric, and its paired comparison against
    the baseline pair (``None`` for the baseline pair itself)."""

    retriever: str
    setting: str
    model: str
    score: Interval
    versus_baseline: Comparison | None = None


class GridSummary(_Frozen):
    """One metric over every retriever × model pair."""

    metric: str
    higher_is_better: bool | None = True
    baseline_retriever: str
    baseline_model: str
    cells: list[GridCell]


def summarise_retrieval(
    results: Sequence[QuestionResult],
    metrics: Sequence[MetricInfo],
    *,
    models: Sequence[str],
    top_k: Mapping[str, int] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[list[RetrieverSummary], list[GridSummary]]:
    """Hit@k per retrieved setting, and with two or more retrievers the grid of every metric.

    ``models`` lists the model names with the baseline first. Blocking (numpy).
    """
    import numpy as np

    settings = list(dict.fromkeys(r.setting for r in results if retriever_of(r.setting)))
    if not settings:
        return [], []
    ids = list(dict.fromkeys(r.example_id for r in results if r.setting in settings))
    position = {example_id: i for i, example_id in enumerate(ids)}
    by_key = {(r.setting, r.model, r.example_id): r for r in results}

    hits: dict[str, np.ndarray] = {}
    for setting in settings:
        shown = np.full(len(ids), np.nan)
        for r in results:
            if r.setting == setting and r.oracle_shown is not None:
                shown[position[r.example_id]] = 1.0 if r.oracle_shown else 0.0
        hits[setting] = shown
    first = settings[0]

    def mean(values: np.ndarray) -> Interval:
        return bootstrap_mean(values, confidence=confidence, n_resamples=n_resamples, seed=seed)

    def versus(a: np.ndarray, b: np.ndarray, higher_is_better: bool | None) -> Comparison:
        return paired_bootstrap(
            a,
            b,
            confidence=confidence,
            n_resamples=n_resamples,
            seed=seed,
            higher_is_better=higher_is_better,
        )

    retrievers = [
        RetrieverSummary(
            retriever=retriever_of(setting) or setting,
            setting=setting,
            k=(top_k or {}).get(setting),
            hit_rate=mean(hits[setting]),
            versus_baseline=None if setting == first else versus(hits[first], hits[setting], True),
        )
        for setting in settings
    ]
    if len(settings) < 2:
        return retrievers, []

    grids: list[GridSummary] = []
    for info in metrics:

        def column(setting: str, model: str, name: str = info.name) -> np.ndarray:
            values = np.full(len(ids), np.nan)
            for i, example_id in enumerate(ids):
                found = by_key.get((setting, model, example_id))
                if found is not None:
                    values[i] = found.scores.get(name, np.nan)
            return values

        base = column(first, models[0])
        cells = [
            GridCell(
                retriever=retriever_of(setting) or setting,
                setting=setting,
                model=model,
                score=mean(values),
                versus_baseline=None
                if (setting, model) == (first, models[0])
                else versus(base, values, info.higher_is_better),
            )
            for setting in settings
            for model in models
            for values in [column(setting, model)]
        ]
        grids.append(
            GridSummary(
                metric=info.name,
                higher_is_better=info.higher_is_better,
                baseline_retriever=retriever_of(first) or first,
                baseline_model=models[0],
                cells=cells,
            )
        )
    return retrievers, grids

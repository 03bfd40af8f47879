"""The evaluation run: every model answers every test question, then every metric scores them.

Each model sees each question exactly as the fine-tuned student saw its training examples: the
example's documents (oracle and distractors, in their positions) in ``<DOCUMENT>`` tags, then
the question. Optionally the same questions are asked without the oracle (can the model tell
it lacks the answer?), with the oracle alone (the upper bound of reading comprehension), and
with the chunks a retriever returned (:class:`~raftkit.evaluate.retrieved.RetrievedContexts`).
Every answer is capped at ``max_tokens`` (by default derived from the reference answers), so a
model that does not stop cannot generate until its context is full.

Calls go only through ``client.chat`` (and a metric's own client calls), so the caller's rate
limits, retries, budget and journal apply. Concurrency is bounded by one ``CapacityLimiter``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from raftkit.errors import (
    APIConnectionError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    QuotaExceededError,
    RateLimitError,
    StructuredOutputError,
    UnprocessableEntityError,
    UsageError,
)
from raftkit.evaluate.metrics import BUILTIN_METRICS, Sample, Score, extract_final_answer
from raftkit.evaluate.prompt import build_messages, default_max_tokens
from raftkit.evaluate.report import (
    ContextSetting,
    EvaluationReport,
    MetricInfo,
    ModelDetail,
    QuestionResult,
    compare,
)
from raftkit.evaluate.retrieved import RetrievedContexts
from raftkit.llm import LLMClient
from raftkit.types import ContextDocument, RaftExample, Usage

if TYPE_CHECKING:
    from raftkit.evaluate import Metric

__all__ = [
    "ModelSpec",
    "RaftEvaluator",
    "Setting",
    "documents_for",
    "metric_info",
    "setting_name",
]

#: A context setting: one of the built-in names, or a retriever's contexts.
Setting = ContextSetting | RetrievedContexts

_BUILTIN_SETTINGS = ("dataset", "no_oracle", "oracle_only")

# Failures that concern one request (its content, or a transient fault retries did not cure).
# Anything else (credentials, a missing model, exhausted quota or budget) would fail every
# question alike, so it ends the run instead of filling the report with "not measured".
_PER_ITEM_ERRORS: tuple[type[Exception], ...] = (
    BadRequestError,
    UnprocessableEntityError,
    ConflictError,
    InternalServerError,
    RateLimitError,
    APIConnectionError,
    StructuredOutputError,
)


def _is_per_item_failure(exc: Exception) -> bool:
    return isinstance(exc, _PER_ITEM_ERRORS) and not isinstance(exc, QuotaExceededError)


@asynccontextmanager
async def _single_error() -> AsyncIterator[None]:
    """Re-raise a task group's failure as itself: a caller catching ``AuthenticationError``
    should not have to know that the calls ran in a task group. Several workers may fail at
    once of one cause (every call is refused the same key): the first stands for them all."""
    try:
        yield
    except BaseExceptionGroup as group:
        if all(isinstance(e, Exception) for e in group.exceptions):
            raise group.exceptions[0] from None
        raise


@dataclass(frozen=True)
class ModelSpec:
    """A model under evaluation: its label in the report, the client and model id to call.

    ``system_prompt`` should be the one the fine-tuning rows carried (none by default, like
    the exporters); ``instruction`` is appended to each user prompt (a base model may need to be
    told the ``<ANSWER>:`` format the fine-tuned one learned); ``extra_body`` goes to ``chat``.
    ``max_tokens`` caps each answer; ``None`` lets the evaluator derive a cap from the
    reference answers (:func:`~raftkit.evaluate.prompt.default_max_tokens`). ``endpoint``
    only labels where the model is served, for the report (the client decides where calls go).
    """

    name: str
    client: LLMClient = field(repr=False)
    model: str
    temperature: float | None = 0.0
    max_tokens: int | None = None
    seed: int | None = None
    system_prompt: str | None = None
    instruction: str | None = None
    extra_body: Mapping[str, Any] | None = None
    endpoint: str | None = None


def setting_name(setting: Setting) -> str:
    """The name a setting has in the report (``retrieved:<retriever>`` for retrieved ones)."""
    return setting.setting if isinstance(setting, RetrievedContexts) else setting


def documents_for(example: RaftExample, setting: Setting) -> list[ContextDocument] | None:
    """The documents shown for ``example`` in ``setting``, in prompt order; ``None`` when the
    setting does not apply (``oracle_only`` for an example whose oracle was left out)."""
    if isinstance(setting, RetrievedContexts):
        return setting.documents(example)
    docs = sorted(example.documents, key=lambda d: d.position)
    if setting == "dataset":
        return docs
    if setting == "no_oracle":
        kept = [d for d in docs if not d.is_oracle]
    elif setting == "oracle_only":
        kept = [d for d in docs if d.is_oracle]
        if not kept:
            return None
    else:
        raise UsageError(f"unknown context setting {setting!r}")
    return [d.model_copy(update={"position": i}) for i, d in enumerate(kept)]


def metric_info(metric: Metric) -> MetricInfo:
    """What the report needs to know about a metric."""
    return MetricInfo(
        name=metric.name,
        description=str(getattr(metric, "description", "") or ""),
        higher_is_better=metric.higher_is_better,
    )


@dataclass
class _Item:
    setting: str
    spec: ModelSpec
    example: RaftExample
    documents: list[ContextDocument] | None
    max_tokens: int | None = None
    response: str | None = None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> Literal["answered", "failed", "skipped"]:
        if self.documents is None:
            return "skipped"
        return "failed" if self.response is None else "answered"

    def sample(self) -> Sample:
        assert self.response is not None
        assert self.documents is not None
        oracle = self.example.oracle
        return Sample(
            question=self.example.question,
            response=self.response,
            reference=self.example.final_answer,
            contexts=tuple(d.text for d in self.documents),
            reference_cot=self.example.cot_answer,
            oracle=oracle.text if oracle is not None else None,
            id=self.example.id,
            oracle_shown=self.oracle_shown,
            reference_kind=self.example.answer_kind,
            question_type=self.example.question_type,
        )

    @property
    def oracle_shown(self) -> bool | None:
        if self.documents is None:
            return None
        return any(d.is_oracle for d in self.documents)

    def result(self, metric_names: Sequence[str]) -> QuestionResult:
        notes = dict(self.notes)
        if self.documents is None:
            notes.setdefault("skipped", "no oracle document in this example")
        return QuestionResult(
            setting=self.setting,
            model=self.spec.name,
            example_id=self.example.id,
            question_id=self.example.question_id,
            question=self.example.question,
            reference=self.example.final_answer,
            question_type=self.example.question_type,
            oracle_shown=self.oracle_shown,
            status=self.status,
            response=self.response,
            final_answer=None if self.response is None else extract_final_answer(self.response),
            scores={name: self.scores.get(name, math.nan) for name in metric_names},
            notes=notes,
            error=self.error,
            usage=self.usage,
        )


class RaftEvaluator:
    """The default :class:`~raftkit.evaluate.Evaluator`.

    ``metrics`` defaults to the built-in string metrics; add
    :class:`~raftkit.evaluate.judge.JudgeCorrectness` or the ragas metrics as needed.
    ``settings`` picks the context variants (``dataset``, ``no_oracle``, ``oracle_only``, and
    any :class:`~raftkit.evaluate.retrieved.RetrievedContexts`).
    ``limiter`` (or a new one of ``max_concurrency`` tokens) bounds calls in flight.
    ``progress(done, total)`` is called as each question is answered and scored (per model
    and setting), for a status line.
    """

    def __init__(
        self,
        metrics: Sequence[Metric] = BUILTIN_METRICS,
        *,
        settings: Sequence[Setting] = ("dataset",),
        max_concurrency: int = 8,
        limiter: anyio.CapacityLimiter | None = None,
        confidence: float = 0.95,
        n_resamples: int = 10_000,
        seed: int = 0,
        progress: Callable[[int, int], object] | None = None,
    ) -> None:
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            raise UsageError(f"metric names must be unique, got {names}")
        setting_names = [setting_name(s) for s in settings]
        if not settings or len(set(setting_names)) != len(setting_names):
            raise UsageError(f"settings must be non-empty and unique, got {setting_names}")
        for setting in settings:
            if not isinstance(setting, RetrievedContexts) and setting not in _BUILTIN_SETTINGS:
                raise UsageError(f"unknown context setting {setting!r}")
        if limiter is None and max_concurrency < 1:
            raise UsageError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.metrics = list(metrics)
        self.settings = list(settings)
        self.max_concurrency = max_concurrency
        self._limiter = limiter
        self.confidence = confidence
        self.n_resamples = n_resamples
        self.seed = seed
        self.progress = progress

    async def evaluate(
        self,
        examples: Sequence[RaftExample],
        models: Sequence[ModelSpec],
        *,
        baseline: str | None = None,
    ) -> EvaluationReport:
        """Ask every model every question in every setting, score, and compare.

        ``baseline`` names the model the others are compared against (default: the first).
        """
        if not models:
            raise UsageError("evaluate needs at least one model")
        names = [m.name for m in models]
        base = baseline if baseline is not None else names[0]
        if base not in names:
            raise UsageError(f"baseline {base!r} is not one of the models {names}")
        results = await self.run(examples, models)
        infos = [metric_info(m) for m in self.metrics]
        cap = default_max_tokens(examples)
        details = {
            m.name: ModelDetail(
                model=m.model,
                endpoint=m.endpoint,
                max_tokens=m.max_tokens if m.max_tokens is not None else cap,
                system_prompt=m.system_prompt,
            )
            for m in models
        }
        top_k = {s.setting: s.k for s in self.settings if isinstance(s, RetrievedContexts)}

        def summarise() -> EvaluationReport:
            report = compare(
                results,
                infos,
                baseline=base,
                confidence=self.confidence,
                n_resamples=self.n_resamples,
                seed=self.seed,
                top_k=top_k,
            )
            return report.model_copy(update={"model_details": details})

        # thousands of bootstrap resamples per metric and model: numpy work off the loop
        return await anyio.to_thread.run_sync(summarise)

    async def run(
        self, examples: Sequence[RaftExample], models: Sequence[ModelSpec]
    ) -> list[QuestionResult]:
        """Answer and score without comparing: the per-question results, in a stable order
        (setting, then model, then example)."""
        if not models:
            raise UsageError("evaluate needs at least one model")
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise UsageError(f"model names must be unique, got {names}")
        ids = [e.id for e in examples]
        if len(set(ids)) != len(ids):
            raise UsageError("example ids must be unique")
        limiter = self._limiter or anyio.CapacityLimiter(self.max_concurrency)
        cap = default_max_tokens(examples)
        items = [
            _Item(
                setting_name(setting),
                spec,
                example,
                documents_for(example, setting),
                max_tokens=spec.max_tokens if spec.max_tokens is not None else cap,
            )
            for setting in self.settings
            for spec in models
            for example in examples
        ]
        pending = iter(items)
        total = sum(1 for item in items if item.documents is not None)
        done = 0
        if self.progress is not None:
            self.progress(0, total)

        async def worker() -> None:
            nonlocal done
            # workers share one iterator: as many tasks as calls can run, not one per question
            for item in pending:
                if item.documents is None:
                    continue
                await self._answer(item, limiter)
                if item.response is not None:
                    await self._score(item, limiter)
                done += 1
                if self.progress is not None:
                    self.progress(done, total)

        workers = int(min(len(items), limiter.total_tokens))
        async with _single_error(), anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
        metric_names = [m.name for m in self.metrics]
        return [item.result(metric_names) for item in items]

    async def _answer(self, item: _Item, limiter: anyio.CapacityLimiter) -> None:
        assert item.documents is not None
        spec = item.spec
        messages = build_messages(
            item.example.question,
            item.documents,
            system_prompt=spec.system_prompt,
            instruction=spec.instruction,
        )
        async with limiter:
            try:
                response = await spec.client.chat(
                    messages,
                    model=spec.model,
                    temperature=spec.temperature,
                    max_tokens=item.max_tokens,
                    seed=spec.seed,
                    extra_body=spec.extra_body,
                )
            except Exception as exc:
                if not _is_per_item_failure(exc):
                    raise
                item.error = f"{type(exc).__name__}: {exc}"
                return
        item.response = response.text
        item.usage = response.usage
        if response.finish_reason == "length":
            # scored as given, but the reader should know the answer was cut off
            item.notes["truncated"] = f"stopped at max_tokens={item.max_tokens}"

    async def _score(self, item: _Item, limiter: anyio.CapacityLimiter) -> None:
        sample = item.sample()
        for metric in self.metrics:
            async with limiter:
                try:
                    outcome = await metric.score(sample)
                except Exception as exc:
                    if not _is_per_item_failure(exc):
                        raise
                    item.scores[metric.name] = math.nan
                    item.notes[metric.name] = f"not measured: {type(exc).__name__}: {exc}"
                    continue
            if isinstance(outcome, Score):
                item.scores[metric.name] = float(outcome.value)
                if outcome.note:
                    item.notes[metric.name] = outcome.note
            else:
                item.scores[metric.name] = float(outcome)

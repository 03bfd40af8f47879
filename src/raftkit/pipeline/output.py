"""What a generation run writes: examples in corpus order, rejections, the report.

Examples stream to a partial file as they are finished, in whatever order the workers finish
them; only their offsets are kept, and :func:`write_ordered` copies them into
``examples.jsonl`` in corpus order (chunk, then question) at the end, so a resumed run writes
the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from raftkit.llm.usage import UsageLedger, UsageReport
from raftkit.pipeline.config import RaftConfig
from raftkit.pipeline.halt import cause_key, describe
from raftkit.run_dir import RunDir
from raftkit.run_report import RunReport
from raftkit.synth import AnswerResult
from raftkit.types import Chunk, Question, RaftExample, Usage

__all__ = [
    "Outcome",
    "RunOutput",
    "add_usage",
    "failed_outcome",
    "no_examples_reason",
    "outcome",
    "write_ordered",
    "write_report",
]


@dataclass
class Outcome:
    """One question's fate: an example or a rejection, at its place in corpus order."""

    order: tuple[int, int]
    example: RaftExample | None
    rejection: dict[str, Any] | None
    short: bool = False
    #: a call that failed for good: the cause, counted in the report's ``failures``
    failure: str | None = None
    #: false when no question was asked: a chunk's failed question call, or its multi-hop
    #: question's
    is_question: bool = True
    #: the chunk's own question call failed for good (counted in ``chunks_failed``)
    chunk_failed: bool = False


def failed_outcome(
    order: tuple[int, int],
    oracle: Chunk,
    question: Question | None,
    error: BaseException,
    *,
    multi_hop: bool = False,
) -> Outcome:
    """A chunk's question call, its multi-hop question's call (``multi_hop``) or one
    question's answer, that failed for good: recorded with its cause in ``rejections.jsonl``;
    the rest of the chunk and of the corpus goes on."""
    if question is not None:
        reason = "answer_failed"
    else:
        reason = "multi_hop_failed" if multi_hop else "questions_failed"
    rejection = {
        "question_id": question.id if question is not None else None,
        "chunk_id": oracle.id,
        "question": question.text if question is not None else None,
        "reason": reason,
        "cause": describe(error),
    }
    return Outcome(
        order,
        None,
        rejection,
        failure=cause_key(error),
        is_question=question is not None,
        chunk_failed=reason == "questions_failed",
    )


def outcome(
    order: tuple[int, int],
    question: Question,
    oracle: Chunk,
    context: Any,
    result: AnswerResult,
    config: RaftConfig,
    *,
    split_group: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Outcome:
    """``split_group`` and ``metadata`` (added to the example's) come from the question-quality
    steps (:mod:`raftkit.pipeline.quality`)."""
    short = bool(context.short)
    if not result.accepted:
        rejection = {
            "question_id": question.id,
            "chunk_id": oracle.id,
            "question": question.text,
            "reason": result.reason or "invalid_response",
            "detail": result.detail,
            "attempts": result.attempts,
            "last_answer": result.cot_answer,
        }
        if question.question_type is not None:
            rejection["question_type"] = question.question_type
        return Outcome(order, None, rejection, short)
    example = RaftExample(
        id=question.id,
        question_id=question.id,
        question=question.text,
        chunk_id=oracle.id,
        document_id=oracle.document_id,
        documents=list(context.documents),
        oracle_present=bool(context.oracle_present),
        cot_answer=result.cot_answer,
        final_answer=result.final_answer,
        quotes=list(result.quotes),
        teacher_model=result.model or config.teacher_model,
        usage=result.usage,
        question_type=question.question_type,
        answer_kind=result.kind,
        split_group=split_group,
        metadata={
            "attempts": result.attempts,
            "page_start": oracle.page_start,
            "normalisations": list(result.normalisations),
            **(metadata or {}),
        },
    )
    return Outcome(order, example, None, short)


class RunOutput:
    """Where one pass's outcomes go: examples to a partial file (their corpus order kept as
    offsets), rejections to ``rejections.jsonl``, counts to the report. On leaving, however
    the pass ends, ``examples.jsonl`` is written in corpus order and the partial file removed.
    """

    def __init__(self, run: RunDir, report: RunReport) -> None:
        self.run = run
        self.report = report
        self.offsets: list[tuple[tuple[int, int], int, int]] = []
        self.reasons: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self._sink: IO[bytes] | None = None
        self._rejects: IO[str] | None = None

    def __enter__(self) -> Self:
        self._sink = self.run.partial_examples.open("w+b")
        try:
            self._rejects = self.run.rejections.open("w", encoding="utf-8")
        except BaseException:
            self._sink.close()
            self.run.partial_examples.unlink(missing_ok=True)
            raise
        return self

    def add(self, item: Outcome) -> None:
        """Count and write one question's (or a chunk's failed question call's) outcome."""
        sink, rejects = self._files()
        report = self.report
        report.questions += int(item.is_question)
        report.chunks_failed += int(item.chunk_failed)
        report.short_contexts += int(item.short)
        if item.example is not None:
            line = (item.example.model_dump_json() + "\n").encode("utf-8")
            self.offsets.append((item.order, sink.tell(), len(line)))
            sink.write(line)
            report.examples += 1
            report.examples_with_oracle += int(item.example.oracle_present)
        elif item.rejection is not None:
            self.reasons[item.rejection["reason"]] += 1
            rejects.write(json.dumps(item.rejection, ensure_ascii=False) + "\n")
            report.rejections = dict(self.reasons)
        if item.failure is not None:
            self.failures[item.failure] += 1
            report.failures = dict(self.failures)

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sink, rejects = self._files()
        try:
            rejects.close()
            sink.flush()
            write_ordered(sink, self.offsets, self.run.examples)
        finally:
            sink.close()
            self.run.partial_examples.unlink(missing_ok=True)

    def _files(self) -> tuple[IO[bytes], IO[str]]:
        if self._sink is None or self._rejects is None:
            raise RuntimeError("RunOutput is used as a context manager: `with RunOutput(...)`")
        return self._sink, self._rejects


def no_examples_reason(report: RunReport) -> str:
    """Why a run that finished made no example, with the reasons counted."""
    if report.questions == 0:
        head = f"no usable questions from {report.chunks_done} chunk(s)"
    else:
        head = f"no examples: all {report.questions} questions were rejected"
    counted = {**report.rejections}
    for cause, n in report.failures.items():
        counted[cause] = counted.get(cause, 0) + n
    detail = ", ".join(f"{name} {n}" for name, n in sorted(counted.items()))
    return head + (f" ({detail})" if detail else "") + "; see rejections.jsonl"


def write_ordered(sink: Any, offsets: list[tuple[tuple[int, int], int, int]], target: Path) -> None:
    """Write the examples in corpus order (chunk, then question): the same file on every run."""
    tmp = RunDir.temporary(target)
    fd = sink.fileno()
    try:
        with tmp.open("wb") as f:
            for _, offset, length in sorted(offsets):
                f.write(os.pread(fd, length, offset))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def add_usage(report: RunReport, ledger: UsageLedger, before: UsageReport | None) -> None:
    """This run's share of the ledger (the client may have been used before the run)."""
    after = ledger.report()
    usage, spent = after.usage, after.total_cost_usd
    saved = after.saved_by_caching_usd
    if before is not None:
        prior = before.usage
        usage = Usage(
            prompt_tokens=usage.prompt_tokens - prior.prompt_tokens,
            completion_tokens=usage.completion_tokens - prior.completion_tokens,
            cached_tokens=usage.cached_tokens - prior.cached_tokens,
        )
        spent -= before.total_cost_usd
        saved -= before.saved_by_caching_usd
    report.saved_by_caching_usd = saved
    report.prompt_tokens = usage.prompt_tokens
    report.completion_tokens = usage.completion_tokens
    report.cached_tokens = usage.cached_tokens
    report.cost_usd = spent if after.cost_complete else None
    report.usage_by_model = {name: model.model_dump() for name, model in after.models.items()}


def write_report(run: RunDir, report: RunReport) -> None:
    for path, text in (
        (run.report_json, report.model_dump_json(indent=2) + "\n"),
        (run.report_md, report.markdown()),
    ):
        tmp = RunDir.temporary(path)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

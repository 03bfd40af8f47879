"""What a generation run writes: examples in corpus order, rejections, the report.

Examples stream to a partial file as they are finished, in whatever order the workers finish
them; only their offsets are kept, and :func:`write_ordered` copies them into
``examples.jsonl`` in corpus order (chunk, then question) at the end, so a resumed run writes
the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftkit.llm.usage import UsageLedger, UsageReport
from raftkit.pipeline.config import RaftConfig
from raftkit.run_dir import RunDir
from raftkit.run_report import RunReport
from raftkit.synth import AnswerResult
from raftkit.types import Chunk, Question, RaftExample, Usage

__all__ = ["Outcome", "add_usage", "outcome", "write_ordered", "write_report"]


@dataclass
class Outcome:
    """One question's fate: an example or a rejection, at its place in corpus order."""

    order: tuple[int, int]
    example: RaftExample | None
    rejection: dict[str, Any] | None
    short: bool = False


def outcome(
    order: tuple[int, int],
    question: Question,
    oracle: Chunk,
    context: Any,
    result: AnswerResult,
    config: RaftConfig,
) -> Outcome:
    short = bool(context.short)
    if not result.accepted:
        rejection = {
            "question_id": question.id,
            "chunk_id": oracle.id,
            "question": question.text,
            "reason": result.reason or "invalid_response",
            "attempts": result.attempts,
            "last_answer": result.cot_answer,
        }
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
        metadata={"attempts": result.attempts, "page_start": oracle.page_start},
    )
    return Outcome(order, example, None, short)


def write_ordered(sink: Any, offsets: list[tuple[tuple[int, int], int, int]], target: Path) -> None:
    """Write the examples in corpus order (chunk, then question): the same file on every run."""
    tmp = target.with_suffix(".jsonl.tmp")
    fd = sink.fileno()
    with tmp.open("wb") as f:
        for _, offset, length in sorted(offsets):
            f.write(os.pread(fd, length, offset))
    os.replace(tmp, target)


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
    run.report_json.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    run.report_md.write_text(report.markdown(), encoding="utf-8")

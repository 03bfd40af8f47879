"""The chat-template audit: every training row rendered with the student's tokenizer before
anyone pays for a GPU.

For each row of a chat JSONL file (``{"messages": [...]}``, as ``raftkit export`` writes) the
audit renders it with the student's chat template (:mod:`raftkit.students.template`), checks
that the trained span decodes to exactly the assistant's answer plus the end-of-turn token, and
counts its tokens against the student's context window and ``max_seq_length``. A row that would
be truncated is an error: silently cut rows lose their ``<ANSWER>:`` line, the very thing RAFT
teaches.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from raftkit.dataset.io import iter_jsonl_lines
from raftkit.students.base import load_tokenizer, resolve_base
from raftkit.students.template import (
    MaskSource,
    TemplateError,
    chat_template_of,
    decoded_spans,
    has_generation_markers,
    render_chat_row,
)

__all__ = [
    "NO_MARKERS_WARNING",
    "AuditIssue",
    "AuditIssueKind",
    "TemplateAudit",
    "TokenSummary",
    "audit_chat_jsonl",
    "audit_student",
]

AuditIssueKind = Literal["invalid_row", "template", "span_mismatch", "too_long"]

_LISTED = 20  # errors shown by render(); the report keeps every one

NO_MARKERS_WARNING = (
    "the chat template has no {% generation %} markers: the loss mask is built by rendering "
    "each prompt with add_generation_prompt=True (the prompt the served model sees) and "
    "training only what the full conversation adds after it, checked on every row"
)


class AuditIssue(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: int
    kind: AuditIssueKind
    message: str


class TokenSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    min: int
    mean: float
    p95: int
    max: int
    trained_total: int
    """Tokens the loss is computed on, over all rows (per epoch)."""
    total: int


class TemplateAudit(BaseModel):
    """What :func:`audit_chat_jsonl` found; ``ok`` when no row has an error."""

    model_config = ConfigDict(frozen=True)

    path: str
    base: str
    rows: int
    mask_source: MaskSource | None
    context_window: int | None
    max_seq_length: int | None
    tokens: TokenSummary | None
    errors: list[AuditIssue] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.rows > 0

    @property
    def limit(self) -> int | None:
        limits = [n for n in (self.context_window, self.max_seq_length) if n]
        return min(limits) if limits else None

    def render(self) -> str:
        verdict = "ok" if self.ok else f"{len(self.errors)} error(s)"
        out = [f"template audit of {self.path} with {self.base}: {self.rows} rows, {verdict}"]
        if self.mask_source is not None:
            out.append(f"  loss mask from: {self.mask_source}")
        if self.tokens is not None:
            t = self.tokens
            out.append(
                f"  tokens per row: min {t.min:,}, mean {t.mean:,.0f}, p95 {t.p95:,}, "
                f"max {t.max:,}; trained tokens {t.trained_total:,} of {t.total:,}"
            )
        limits = []
        if self.context_window:
            limits.append(f"context window {self.context_window:,}")
        if self.max_seq_length:
            limits.append(f"max_seq_length {self.max_seq_length:,}")
        if limits:
            out.append(f"  limits: {', '.join(limits)}")
        out.extend(f"  warning: {w}" for w in self.warnings)
        for issue in self.errors[:_LISTED]:
            out.append(f"  line {issue.line}: {issue.message}")
        if len(self.errors) > _LISTED:
            out.append(f"  ... and {len(self.errors) - _LISTED} more errors")
        if self.rows == 0:
            out.append("  the file has no rows")
        return "\n".join(out)


def _limit_text(tokens: int, context_window: int | None, max_seq_length: int | None) -> str:
    parts = []
    if max_seq_length and tokens > max_seq_length:
        parts.append(f"max_seq_length {max_seq_length:,}")
    if context_window and tokens > context_window:
        parts.append(f"the student's context window {context_window:,}")
    return " and ".join(parts)


def audit_chat_jsonl(
    path: str | os.PathLike[str],
    tokenizer: Any,
    *,
    base: str,
    context_window: int | None = None,
    max_seq_length: int | None = None,
) -> TemplateAudit:
    """Audit every row of the chat JSONL file ``path`` with the student's ``tokenizer``.

    ``base`` names the student in the report. Blocking (tokenization); async callers run it
    in a worker thread.
    """
    errors: list[AuditIssue] = []
    warnings: list[str] = []
    try:
        markers = has_generation_markers(chat_template_of(tokenizer))
    except TemplateError as e:
        return TemplateAudit(
            path=os.fspath(path),
            base=base,
            rows=0,
            mask_source=None,
            context_window=context_window,
            max_seq_length=max_seq_length,
            tokens=None,
            errors=[AuditIssue(line=0, kind="template", message=str(e))],
        )
    if context_window and max_seq_length and max_seq_length > context_window:
        warnings.append(
            f"max_seq_length {max_seq_length:,} is beyond the student's context window "
            f"{context_window:,}; rows are checked against both"
        )
    lengths: list[int] = []
    trained = 0
    rows = 0
    for line in iter_jsonl_lines(path):
        if not line.text.strip():
            continue
        rows += 1
        issue, counts = _audit_line(line.number, line.text, tokenizer)
        if issue is not None:
            errors.append(issue)
        if counts is None:
            continue
        tokens, trained_here = counts
        lengths.append(tokens)
        trained += trained_here
        over = _limit_text(tokens, context_window, max_seq_length)
        if over:
            errors.append(
                AuditIssue(
                    line=line.number,
                    kind="too_long",
                    message=f"{tokens:,} tokens, more than {over}: the row would be "
                    "truncated; use fewer distractors (--distractors) or smaller chunks "
                    "(--chunk-size) when generating, or raise --max-seq-length",
                )
            )
    if not markers and not any(e.kind == "template" for e in errors):
        warnings.append(NO_MARKERS_WARNING)
    return TemplateAudit(
        path=os.fspath(path),
        base=base,
        rows=rows,
        mask_source="generation markers" if markers else "prompt prefix",
        context_window=context_window,
        max_seq_length=max_seq_length,
        tokens=_summary(lengths, trained) if lengths else None,
        errors=errors,
        warnings=warnings,
    )


def _audit_line(
    number: int, text: str, tokenizer: Any
) -> tuple[AuditIssue | None, tuple[int, int] | None]:
    try:
        record = json.loads(text)
    except ValueError as e:
        return AuditIssue(line=number, kind="invalid_row", message=f"not JSON: {e}"), None
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        message = "no 'messages' list of objects"
        return AuditIssue(line=number, kind="invalid_row", message=message), None
    try:
        row = render_chat_row(tokenizer, messages)
    except TemplateError as e:
        return AuditIssue(line=number, kind="template", message=str(e)), None
    for got, want in zip(decoded_spans(tokenizer, row), row.expected, strict=True):
        if got != want:
            at = next(
                (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                min(len(got), len(want)),
            )
            message = (
                f"the trained tokens decode to {got[max(0, at - 20) : at + 20]!r} where the "
                f"answer plus end-of-turn reads {want[max(0, at - 20) : at + 20]!r} "
                f"(character {at})"
            )
            issue = AuditIssue(line=number, kind="span_mismatch", message=message)
            return issue, (row.n_tokens, row.n_trained)
    return None, (row.n_tokens, row.n_trained)


def _summary(lengths: list[int], trained: int) -> TokenSummary:
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return TokenSummary(
        min=ordered[0],
        mean=sum(ordered) / len(ordered),
        p95=p95,
        max=ordered[-1],
        trained_total=trained,
        total=sum(ordered),
    )


def audit_student(
    path: str | os.PathLike[str],
    base: str | os.PathLike[str],
    *,
    max_seq_length: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> TemplateAudit:
    """Resolve ``base``, load its tokenizer (offline) and audit ``path`` against it.

    Blocking; raises :class:`~raftkit.errors.UsageError` for a BASE that cannot be used.
    """
    student = resolve_base(base)
    tokenizer = load_tokenizer(student, cache_dir=cache_dir)
    return audit_chat_jsonl(
        path,
        tokenizer,
        base=student.spec,
        context_window=student.context_window,
        max_seq_length=max_seq_length,
    )

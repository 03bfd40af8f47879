"""What :func:`~raftkit.dataset.validate.validate_chat_jsonl` finds: the issue kinds, one
issue, token statistics and the report with its command-line rendering."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from raftkit.dataset.cost import TrainingCost

__all__ = ["ExampleProblem", "Issue", "IssueKind", "Purpose", "TokenStats", "ValidationReport"]

IssueKind = Literal[
    # errors: the service would reject the file
    "invalid_utf8",
    "invalid_json",
    "empty_file",
    "too_few_examples",
    "data_type",
    "missing_messages_list",
    "message_missing_key",
    "message_unrecognized_key",
    "unrecognized_role",
    "missing_content",
    "invalid_weight",
    "example_missing_assistant_message",
    # warnings: the file is accepted, but look again
    "few_examples",
    "too_long",
    "missing_user_message",
    "blank_line",
]

#: What a file is for: training files are held to the size minimum and priced.
Purpose = Literal["training", "validation"]


class Issue(BaseModel):
    """One problem found in the file; ``line`` is 1-based, None for file-level issues."""

    model_config = ConfigDict(frozen=True)

    line: int | None
    kind: IssueKind
    message: str
    field: str | None = None

    def render(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        field = f" {self.field}:" if self.field else ""
        return f"{where}: {self.kind}:{field} {self.message}"


class ExampleProblem(BaseModel):
    """A format problem inside one example, before a line number is attached."""

    model_config = ConfigDict(frozen=True)

    kind: IssueKind
    message: str
    field: str | None = None


class TokenStats(BaseModel):
    """Distribution of a per-example count (percentiles interpolate linearly, as numpy does)."""

    model_config = ConfigDict(frozen=True)

    count: int
    total: int
    min: int
    max: int
    mean: float
    median: float
    p90: float

    @classmethod
    def of(cls, values: Sequence[int]) -> TokenStats | None:
        if not values:
            return None
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            total=sum(ordered),
            min=ordered[0],
            max=ordered[-1],
            mean=sum(ordered) / len(ordered),
            median=_quantile(ordered, 0.5),
            p90=_quantile(ordered, 0.9),
        )

    def render(self) -> str:
        return (
            f"min {self.min:,}  max {self.max:,}  mean {self.mean:,.1f}  "
            f"median {self.median:,.1f}  p90 {self.p90:,.1f}  total {self.total:,}"
        )


class ValidationReport(BaseModel):
    """The outcome of :func:`validate_chat_jsonl`; ``ok`` is True when there are no errors."""

    path: str
    model: str
    purpose: Purpose = "training"
    lines: int
    examples: int = Field(description="lines that are well-formed examples")
    errors: list[Issue]
    warnings: list[Issue]
    error_counts: dict[str, int] = Field(description="every error by kind, even those not listed")
    warning_counts: dict[str, int]
    max_tokens_per_example: int
    too_long: int = Field(description="examples over the limit: truncated and billed at the limit")
    example_tokens: TokenStats | None
    assistant_tokens: TokenStats | None
    messages_per_example: TokenStats | None
    cost: TrainingCost | None

    @property
    def ok(self) -> bool:
        return not self.error_counts

    def render(self) -> str:
        """A readable summary for the command line."""
        n_errors = sum(self.error_counts.values())
        n_warnings = sum(self.warning_counts.values())
        verdict = "OK" if self.ok else "REJECTED"
        role = "" if self.purpose == "training" else ", validation file"
        out = [
            f"{self.path}: {verdict} — {self.examples} examples on {self.lines} lines, "
            f"{n_errors} errors, {n_warnings} warnings (model {self.model}{role})"
        ]
        for title, issues, counts in (
            ("errors", self.errors, self.error_counts),
            ("warnings", self.warnings, self.warning_counts),
        ):
            if not counts:
                continue
            summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
            out.append(f"{title}: {summary}")
            out.extend(f"  {issue.render()}" for issue in issues)
            hidden = sum(counts.values()) - len(issues)
            if hidden > 0:
                out.append(f"  ... and {hidden} more")
        if self.example_tokens is not None:
            out.append(f"tokens per example: {self.example_tokens.render()}")
        if self.assistant_tokens is not None:
            out.append(f"assistant tokens:   {self.assistant_tokens.render()}")
        if self.too_long:
            out.append(
                f"{self.too_long} examples exceed {self.max_tokens_per_example:,} tokens and "
                "will be truncated"
            )
        if self.cost is not None:
            out.append(f"training: {self.cost.render()}")
        return "\n".join(out)


def _quantile(ordered: Sequence[int], q: float) -> float:
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

"""What a generation run did, as JSON and Markdown (``report.json``, ``report.md``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from raftkit.html_page import simulated_markdown

__all__ = ["CostEstimate", "QualityCounts", "RunReport"]


class CostEstimate(BaseModel):
    """A ``--dry-run``'s forecast: what the run would ask of the teacher, before paying."""

    documents: int
    pages: int
    chunks: int
    questions: int
    teacher_calls_min: int = Field(description="calls if no answer is ever re-asked")
    teacher_calls_max: int = Field(description="calls if every answer uses every attempt")
    vision_calls_max: int = Field(0, description="PDF pages that may be sent to a vision model")
    critique_calls: int = Field(0, description="question-critique judge calls (in the calls)")
    multi_hop_calls: int = Field(0, description="multi-hop question and answer calls (in them)")
    prompt_tokens: int
    completion_tokens: int
    embedding_tokens: int = 0
    cost_usd: float | None = Field(description="cost without re-asks; None if a price is unknown")
    cost_usd_max: float | None = None
    price_note: str = ""
    extraction_errors: list[str] = Field(default_factory=list)
    limit: int | None = Field(None, description="the run's --limit: its first N chunks")
    limited: CostEstimate | None = Field(
        None, description="the forecast for the first `limit` chunks (this one: the corpus)"
    )

    def _rows(self) -> list[tuple[str, str]]:
        def money(x: float | None) -> str:
            return "unknown (no price for the model)" if x is None else f"${x:,.2f}"

        return [
            ("documents", f"{self.documents}"),
            ("pages", f"{self.pages}"),
            ("chunks", f"{self.chunks}"),
            ("questions (at most)", f"{self.questions}"),
            ("teacher calls", f"{self.teacher_calls_min:,} – {self.teacher_calls_max:,}"),
            (
                "of which question critique / multi-hop",
                f"{self.critique_calls:,} / {self.multi_hop_calls:,}",
            ),
            ("vision calls (at most)", f"{self.vision_calls_max:,}"),
            ("prompt tokens (est.)", f"{self.prompt_tokens:,}"),
            ("completion tokens (est., upper bound)", f"{self.completion_tokens:,}"),
            ("embedding tokens (est.)", f"{self.embedding_tokens:,}"),
            ("cost", f"{money(self.cost_usd)} – {money(self.cost_usd_max)}"),
        ]

    def markdown(self) -> str:
        lines = ["# raftkit dry run", ""]
        if self.limited is not None:
            lines += [
                f"| | this run (--limit {self.limit}: first {self.limited.chunks} chunks) "
                "| the whole corpus |",
                "|---|---|---|",
            ]
            lines += [
                f"| {name} | {part} | {whole} |"
                for (name, part), (_, whole) in zip(self.limited._rows(), self._rows(), strict=True)
            ]
        else:
            lines += ["| | |", "|---|---|"]
            lines += [f"| {name} | {value} |" for name, value in self._rows()]
        if self.price_note:
            lines += ["", self.price_note]
        if self.extraction_errors:
            lines += ["", "Files that could not be extracted:", ""]
            lines += [f"- {e}" for e in self.extraction_errors]
        return "\n".join(lines) + "\n"


class QualityCounts(BaseModel):
    """What question critique, de-duplication, refusals and multi-hop questions did and cost.

    Calls and tokens count replayed responses too, so a rerun reports what the run cost in all.
    """

    critique_calls: int = Field(0, description="judge calls (one per chunk with questions left)")
    critique_prompt_tokens: int = 0
    critique_completion_tokens: int = 0
    questions_judged: int = 0
    questions_unjudged: int = Field(0, description="kept because the judge gave no rating")
    duplicate_questions: int = 0
    dedup_embedding_calls: int = 0
    duplicate_chunk_groups: int = Field(0, description="sets of chunks sharing their text")
    chunks_in_duplicate_groups: int = 0
    refusals: int = Field(0, description="examples that refuse (their context lacks the oracle)")
    multi_hop_calls: int = Field(0, description="calls that wrote multi-hop questions")
    multi_hop_prompt_tokens: int = 0
    multi_hop_completion_tokens: int = 0
    multi_hop_questions: int = 0
    multi_hop_examples: int = 0
    multi_hop_unpaired: int = Field(0, description="chunks drawn for one with no related chunk")
    questions_by_type: dict[str, int] = Field(default_factory=dict)
    examples_by_type: dict[str, int] = Field(default_factory=dict)

    def active(self) -> bool:
        return any(bool(v) for v in self.model_dump().values())

    def markdown(self, teacher_tokens: int | None) -> list[str]:
        """The report's section; ``teacher_tokens`` (the run's, all paid this time) gives the
        critique's share of them."""
        critique_tokens = self.critique_prompt_tokens + self.critique_completion_tokens
        share = (
            f" ({critique_tokens / teacher_tokens:.1%} of the run's tokens)"
            if teacher_tokens and critique_tokens
            else ""
        )
        lines = ["", "## Question quality", "", "| | |", "|---|---|"]
        lines.append(
            f"| critique: judge calls / questions judged | {self.critique_calls} / "
            f"{self.questions_judged} |"
        )
        lines.append(
            f"| critique tokens prompt / completion | {self.critique_prompt_tokens:,} / "
            f"{self.critique_completion_tokens:,}{share} |"
        )
        lines.append(f"| duplicate questions dropped | {self.duplicate_questions} |")
        lines.append(
            f"| chunks sharing text (groups) | {self.chunks_in_duplicate_groups} "
            f"({self.duplicate_chunk_groups}) |"
        )
        lines.append(f"| refusals (no teacher call) | {self.refusals} |")
        if self.multi_hop_calls or self.multi_hop_unpaired:
            lines.append(
                f"| multi-hop: calls / questions / examples / unpaired | {self.multi_hop_calls} / "
                f"{self.multi_hop_questions} / {self.multi_hop_examples} / "
                f"{self.multi_hop_unpaired} |"
            )
        if self.questions_by_type:
            lines += ["", "| question type | questions | examples |", "|---|---|---|"]
            lines += [
                f"| {name} | {count} | {self.examples_by_type.get(name, 0)} |"
                for name, count in sorted(self.questions_by_type.items())
            ]
        return lines


class RunReport(BaseModel):
    """Counts, rejections, usage and speed of one generation run."""

    status: Literal["completed", "stopped", "interrupted", "failed"] = Field(
        "completed",
        description="completed (with examples), stopped (budget), interrupted (Ctrl-C, "
        "SIGTERM), failed (an account-level error, a mistake, or no examples at all)",
    )
    stop_reason: str | None = Field(None, description="the root cause of a stop, one line")
    source: str
    run_dir: str
    teacher_model: str
    simulated_teacher: bool = Field(
        False, description="some response of this run (or of its journal) came from the simulator"
    )
    limit: int | None = Field(None, description="only the first N chunks were worked on")
    files: int = 0
    documents: int = 0
    pages: int = 0
    extraction_errors: list[str] = Field(default_factory=list)
    skipped_files: list[str] = Field(default_factory=list)
    chunks: int = 0
    chunks_done: int = 0
    chunks_failed: int = Field(0, description="chunks whose question call failed for good")
    questions: int = 0
    examples: int = 0
    examples_with_oracle: int = 0
    rejections: dict[str, int] = Field(default_factory=dict)
    failures: dict[str, int] = Field(
        default_factory=dict,
        description="calls of one chunk or question that failed for good, by cause",
    )
    short_contexts: int = Field(0, description="contexts with fewer distractors than asked")
    teacher_calls_paid: int = 0
    teacher_calls_replayed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = 0.0
    saved_by_caching_usd: float = Field(
        0.0, description="what cached prompt tokens would have cost more at the full price"
    )
    max_tokens_policy: str = Field(
        "adaptive", description="how teacher calls were capped: adaptive or server-default"
    )
    completion_caps: list[dict[str, Any]] = Field(
        default_factory=list, description="the completion caps learned, per call kind and model"
    )
    wall_seconds: float = 0.0
    batch_rounds: int = Field(0, description="Batch API rounds (batch mode only)")
    usage_by_model: dict[str, Any] = Field(default_factory=dict)
    structured_modes: dict[str, str] = Field(
        default_factory=dict, description="per model, how structured output was asked for"
    )
    quality: QualityCounts = Field(default_factory=QualityCounts)

    @property
    def examples_per_minute(self) -> float:
        return 60.0 * self.examples / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def markdown(self) -> str:
        cost = (
            "unknown (no price for the model)"
            if self.cost_usd is None
            else f"${self.cost_usd:,.4f}"
        )
        status = self.status + (f" ({self.stop_reason})" if self.stop_reason else "")
        teacher = self.teacher_model + (" — SIMULATED" if self.simulated_teacher else "")
        lines = ["# raftkit generation report", ""]
        if self.simulated_teacher:
            lines += [simulated_markdown(), ""]
        chunks = f"{self.chunks_done} / {self.chunks}"
        if self.limit is not None:
            chunks += f" (--limit {self.limit}: the first chunks of the corpus)"
        lines += [
            "| | |",
            "|---|---|",
            f"| status | {status} |",
            f"| source | `{self.source}` |",
            f"| teacher | {teacher} |",
            f"| files / documents / pages | {self.files} / {self.documents} / {self.pages} |",
            f"| chunks (done / all) | {chunks} |",
            f"| questions | {self.questions} |",
            f"| examples (with oracle) | {self.examples} ({self.examples_with_oracle}) |",
            f"| rejected questions | {sum(self.rejections.values())} |",
            f"| contexts short of distractors | {self.short_contexts} |",
            f"| paid calls (teacher, vision, embeddings) / replayed from journal | "
            f"{self.teacher_calls_paid} / {self.teacher_calls_replayed} |",
            f"| tokens prompt / cached / completion | {self.prompt_tokens:,} / "
            f"{self.cached_tokens:,} / {self.completion_tokens:,} |",
            f"| cost this run | {cost} |",
            f"| saved by prompt caching | ${self.saved_by_caching_usd:,.4f} |",
            f"| wall time | {self.wall_seconds:,.1f} s |",
            f"| examples per minute | {self.examples_per_minute:,.1f} |",
        ]
        if self.structured_modes:
            modes = ", ".join(f"{m}: {mode}" for m, mode in sorted(self.structured_modes.items()))
            lines.append(f"| structured output | {modes} |")
        if self.quality.active():
            paid_all = self.teacher_calls_replayed == 0
            tokens = self.prompt_tokens + self.completion_tokens if paid_all else None
            lines += self.quality.markdown(tokens)
        if self.completion_caps:
            lines += [
                "",
                f"## Completion caps ({self.max_tokens_policy})",
                "",
                "| calls | model | replies | replies let finish | cap / unit | cut, asked again"
                " | still cut |",
                "|---|---|---:|---:|---:|---:|---:|",
            ]
            for cap in self.completion_caps:
                share = cap.get("percentile")
                lines.append(
                    f"| {cap.get('kind')} | {cap.get('model')} | {cap.get('replies', 0)} | "
                    f"{'—' if share is None else f'{share:.1%}'} | "
                    f"{cap.get('cap_per_unit') or '—'} | {cap.get('retried', 0)} | "
                    f"{cap.get('cut', 0)} |"
                )
        if self.rejections:
            lines += ["", "## Rejections by reason", "", "| reason | questions |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in sorted(self.rejections.items())]
        if self.failures:
            lines += [
                "",
                "## Calls that failed for good (the rest of the corpus went on)",
                "",
                "| cause | calls |",
                "|---|---|",
            ]
            lines += [f"| {k} | {v} |" for k, v in sorted(self.failures.items())]
            lines += ["", "Each is in rejections.jsonl with its message; run again to retry them."]
        if self.extraction_errors:
            lines += ["", "## Files that could not be extracted", ""]
            lines += [f"- {e}" for e in self.extraction_errors]
        if self.skipped_files:
            lines += ["", "## Files of unsupported types (skipped)", ""]
            lines += [f"- {e}" for e in self.skipped_files]
        return "\n".join(lines) + "\n"

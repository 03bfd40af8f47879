"""A retrieval report: every system's scores and each one against the baseline, with intervals.

Rendered as Markdown (for a terminal or a pull request) and as one self-contained HTML file
(inline CSS, no scripts, nothing fetched).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.html_page import simulated_html, simulated_markdown
from raftkit.retrieval.measure import RetrievalResult, compare_results
from raftkit.stats import Comparison

__all__ = ["DEFAULT_REPORT_METRICS", "RetrievalReport", "SystemRow", "build_report"]

DEFAULT_REPORT_METRICS: tuple[str, ...] = ("hit@1", "hit@5", "mrr@10", "recall@10", "ndcg@10")


class SystemRow(BaseModel):
    """One system's mean scores and, unless it is the baseline, its comparisons."""

    model_config = ConfigDict(frozen=True)

    system: str
    queries: int
    means: dict[str, float]
    versus_baseline: dict[str, Comparison] = Field(default_factory=dict)


class RetrievalReport(BaseModel):
    """Scores of several systems on the same questions."""

    model_config = ConfigDict(frozen=True)

    title: str = "Retrieval evaluation"
    split: str = "test"
    baseline: str
    metrics: list[str]
    rows: list[SystemRow]
    notes: list[str] = Field(default_factory=list)
    simulated: bool = Field(
        default=False, description="the questions or embeddings came from raftkit's simulator"
    )

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        if self.simulated:
            lines += [simulated_markdown(), ""]
        lines += [f"Questions: {self.split} split; baseline: `{self.baseline}`.", ""]
        lines.append("| system | queries | " + " | ".join(self.metrics) + " |")
        lines.append("|---|---:|" + "---:|" * len(self.metrics))
        for row in self.rows:
            cells = [_fmt(row.means.get(m, math.nan)) for m in self.metrics]
            lines.append(f"| {row.system} | {row.queries} | " + " | ".join(cells) + " |")
        compared = [row for row in self.rows if row.versus_baseline]
        if compared:
            lines += ["", "## Against the baseline (paired bootstrap, 95% interval)", ""]
            lines.append("| system | metric | difference | interval | verdict |")
            lines.append("|---|---|---:|---|---|")
            for row in compared:
                for metric, c in row.versus_baseline.items():
                    lines.append(
                        f"| {row.system} | {metric} | {_signed(c.difference)} | "
                        f"[{_signed(c.ci_low)}, {_signed(c.ci_high)}] | {c.verdict} |"
                    )
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(m)}</th>" for m in self.metrics)
        body = "".join(
            f"<tr><td>{esc(r.system)}</td><td>{r.queries}</td>"
            + "".join(f"<td>{_fmt(r.means.get(m, math.nan))}</td>" for m in self.metrics)
            + "</tr>"
            for r in self.rows
        )
        comparisons = "".join(
            f"<tr class='{_css(c.verdict)}'><td>{esc(r.system)}</td><td>{esc(m)}</td>"
            f"<td>{_signed(c.difference)}</td><td>[{_signed(c.ci_low)}, {_signed(c.ci_high)}]</td>"
            f"<td>{esc(c.verdict)}</td></tr>"
            for r in self.rows
            for m, c in r.versus_baseline.items()
        )
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(self.title)}</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
            "table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
            "td:first-child,th:first-child{text-align:left}"
            ".better{background:#e6f4e6}.worse{background:#fbe6e6}"
            "</style></head><body>"
            f"<h1>{esc(self.title)}</h1>"
            + (simulated_html() if self.simulated else "")
            + f"<p>Questions: {esc(self.split)} split; baseline: "
            f"<code>{esc(self.baseline)}</code>.</p>"
            f"<table><tr><th>system</th><th>queries</th>{head}</tr>{body}</table>"
            + (
                "<h2>Against the baseline (paired bootstrap, 95% interval)</h2><table><tr>"
                "<th>system</th><th>metric</th><th>difference</th><th>interval</th>"
                f"<th>verdict</th></tr>{comparisons}</table>"
                if comparisons
                else ""
            )
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</body></html>\n"
        )


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _signed(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.3f}"


def _css(verdict: str) -> str:
    return verdict if verdict in ("better", "worse") else "same"


def build_report(
    results: Sequence[RetrievalResult],
    *,
    metrics: Sequence[str] = DEFAULT_REPORT_METRICS,
    split: str = "test",
    title: str = "Retrieval evaluation",
    notes: Sequence[str] = (),
    n_resamples: int = 10_000,
    seed: int = 0,
) -> RetrievalReport:
    """The report of ``results``; the first is the baseline the others are compared with."""
    if not results:
        raise UsageError("build_report needs at least one result")
    base = results[0]
    available = [m for m in metrics if m in base.per_query]
    rows = []
    for index, result in enumerate(results):
        versus = (
            {
                m: compare_results(base, result, m, n_resamples=n_resamples, seed=seed)
                for m in available
            }
            if index > 0
            else {}
        )
        rows.append(
            SystemRow(
                system=result.system,
                queries=len(result.query_ids),
                means={m: result.mean(m) for m in available},
                versus_baseline=versus,
            )
        )
    return RetrievalReport(
        title=title,
        split=split,
        baseline=base.system,
        metrics=available,
        rows=rows,
        notes=list(notes),
    )

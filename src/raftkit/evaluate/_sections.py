"""The report sections beyond the per-setting tables: what each model label stood for, the
per-question-type breakdown, hit@k per retriever and the retriever × model grid, in Markdown
and in HTML (kept apart from :mod:`raftkit.evaluate.render` so that each stays short)."""

from __future__ import annotations

from raftkit.evaluate._format import interval, md, num, percent, verdict_class, verdict_sentence
from raftkit.evaluate.grid import GridSummary
from raftkit.evaluate.report import EvaluationReport, MetricSummary
from raftkit.html_page import escape_html
from raftkit.stats import Interval

__all__ = [
    "about_models",
    "html_breakdown",
    "html_retrieval",
    "markdown_breakdown",
    "markdown_retrieval",
]

_e = escape_html


def type_label(question_type: str | None) -> str:
    return "(no type)" if question_type is None else question_type


def estimate(i: Interval) -> str:
    return f"{num(i.mean)} {interval(i.ci_low, i.ci_high)}"


def about_models(report: EvaluationReport) -> list[str]:
    """One line per model label: the model id, where it was served, its answer cap."""
    lines = []
    for name in report.models:
        d = report.model_details.get(name)
        if d is None:
            continue
        where = d.endpoint or "the default endpoint"
        cap = f", max_tokens {d.max_tokens}" if d.max_tokens is not None else ""
        lines.append(f"{name}: {d.model} at {where}{cap}")
    return lines


def breakdown_rows(report: EvaluationReport, setting: str) -> list[tuple[MetricSummary, str]]:
    return [
        (s, type_label(s.question_type)) for s in report.by_question_type if s.setting == setting
    ]


def grid_sentences(grid: GridSummary) -> list[str]:
    base = f"{grid.baseline_retriever} + {grid.baseline_model}"
    out = []
    for cell in grid.cells:
        if cell.versus_baseline is not None:
            pair = f"{cell.retriever} + {cell.model}"
            out.append(verdict_sentence(pair, base, grid.metric, cell.versus_baseline))
    return out


def markdown_breakdown(report: EvaluationReport, setting: str) -> list[str]:
    rows = breakdown_rows(report, setting)
    if not rows:
        return []
    pct = percent(report.confidence)
    lines = [
        "",
        f"### By question type ({md(setting)})",
        "",
        f"| metric | question type | model | mean | {pct} CI | measured | Δ vs "
        f"{md(report.baseline)} | {pct} CI of Δ | verdict |",
        "|---|---|---|---:|---|---:|---:|---|---|",
    ]
    for summary, label in rows:
        for m in summary.models:
            c = summary.versus_baseline.get(m.model)
            lines.append(
                f"| {md(summary.metric.name)} | {md(label)} | {md(m.model)} | "
                f"{num(m.mean)} | {interval(m.ci_low, m.ci_high)} | {m.n_measured} | "
                f"{num(c.difference, signed=True) if c else '—'} | "
                f"{interval(c.ci_low, c.ci_high, signed=True) if c else '—'} | "
                f"{c.verdict if c else '(baseline)'} |"
            )
    return lines


def markdown_retrieval(report: EvaluationReport) -> list[str]:
    if not report.retrieval:
        return []
    pct = percent(report.confidence)
    first = report.retrieval[0].retriever
    lines = [
        "",
        "## Retriever in the loop",
        "",
        "Each question's documents were the top-k chunks the retriever returned over the whole "
        "corpus; hit@k is the share of questions whose oracle chunk was among them.",
        "",
        f"| retriever | k | hit@k | {pct} CI | Δ vs {md(first)} | {pct} CI of Δ | verdict |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for r in report.retrieval:
        c = r.versus_baseline
        lines.append(
            f"| {md(r.retriever)} | {r.k if r.k is not None else '?'} | "
            f"{num(r.hit_rate.mean)} | {interval(r.hit_rate.ci_low, r.hit_rate.ci_high)} | "
            f"{num(c.difference, signed=True) if c else '—'} | "
            f"{interval(c.ci_low, c.ci_high, signed=True) if c else '—'} | "
            f"{c.verdict if c else '(baseline)'} |"
        )
    for grid in report.grid:
        models = list(dict.fromkeys(cell.model for cell in grid.cells))
        lines += [
            "",
            f"### {md(grid.metric)}: retriever × model (mean, {pct} CI)",
            "",
            "| retriever | " + " | ".join(md(m) for m in models) + " |",
            "|---|" + "---|" * len(models),
        ]
        for retriever in dict.fromkeys(cell.retriever for cell in grid.cells):
            cells = {c.model: c for c in grid.cells if c.retriever == retriever}
            row = [estimate(cells[m].score) if m in cells else "—" for m in models]
            lines.append(f"| {md(retriever)} | " + " | ".join(row) + " |")
        sentences = grid_sentences(grid)
        if sentences:
            lines += ["", *(f"- {md(s)}" for s in sentences)]
    return lines


def html_breakdown(report: EvaluationReport, setting: str) -> str:
    rows = breakdown_rows(report, setting)
    if not rows:
        return ""
    pct = _e(percent(report.confidence))
    head = (
        f"<tr><th>metric</th><th>question type</th><th>model</th><th>mean</th><th>{pct} CI</th>"
        f"<th>measured</th><th>Δ vs {_e(report.baseline)}</th><th>{pct} CI of Δ</th>"
        "<th>verdict</th></tr>"
    )
    body = []
    for summary, label in rows:
        for m in summary.models:
            c = summary.versus_baseline.get(m.model)
            verdict = (
                f'<td class="{verdict_class(c.verdict)}">{_e(c.verdict)}</td>'
                if c
                else '<td class="muted">baseline</td>'
            )
            body.append(
                f"<tr><td>{_e(summary.metric.name)}</td><td>{_e(label)}</td>"
                f"<td>{_e(m.model)}</td><td class='n'>{_e(num(m.mean))}</td>"
                f"<td>{_e(interval(m.ci_low, m.ci_high))}</td><td class='n'>{m.n_measured}</td>"
                f"<td class='n'>{_e(num(c.difference, signed=True)) if c else '—'}</td>"
                f"<td>{_e(interval(c.ci_low, c.ci_high, signed=True)) if c else '—'}</td>"
                f"{verdict}</tr>"
            )
    return (
        f"<h3>By question type ({_e(setting)})</h3>"
        f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
    )


def html_retrieval(report: EvaluationReport) -> str:
    if not report.retrieval:
        return ""
    pct = _e(percent(report.confidence))
    first = report.retrieval[0].retriever
    parts = [
        "<h2>Retriever in the loop</h2>",
        '<p class="muted">Each question\'s documents were the top-k chunks the retriever '
        "returned over the whole corpus; hit@k is the share of questions whose oracle chunk "
        "was among them.</p>",
        f"<table><thead><tr><th>retriever</th><th>k</th><th>hit@k</th><th>{pct} CI</th>"
        f"<th>Δ vs {_e(first)}</th><th>{pct} CI of Δ</th><th>verdict</th></tr></thead><tbody>",
    ]
    for r in report.retrieval:
        c = r.versus_baseline
        verdict = (
            f'<td class="{verdict_class(c.verdict)}">{_e(c.verdict)}</td>'
            if c
            else '<td class="muted">baseline</td>'
        )
        parts.append(
            f"<tr><td>{_e(r.retriever)}</td><td class='n'>{r.k if r.k is not None else '?'}</td>"
            f"<td class='n'>{_e(num(r.hit_rate.mean))}</td>"
            f"<td>{_e(interval(r.hit_rate.ci_low, r.hit_rate.ci_high))}</td>"
            f"<td class='n'>{_e(num(c.difference, signed=True)) if c else '—'}</td>"
            f"<td>{_e(interval(c.ci_low, c.ci_high, signed=True)) if c else '—'}</td>"
            f"{verdict}</tr>"
        )
    parts.append("</tbody></table>")
    for grid in report.grid:
        models = list(dict.fromkeys(cell.model for cell in grid.cells))
        parts.append(f"<h3>{_e(grid.metric)}: retriever × model</h3>")
        head = "".join(f"<th>{_e(m)}</th>" for m in models)
        rows = []
        for retriever in dict.fromkeys(cell.retriever for cell in grid.cells):
            cells = {c.model: c for c in grid.cells if c.retriever == retriever}
            tds = []
            for m in models:
                cell = cells.get(m)
                if cell is None:
                    tds.append("<td>—</td>")
                    continue
                c = cell.versus_baseline
                verdict = (
                    f'<br><span class="{verdict_class(c.verdict)}">{_e(c.verdict)}</span>'
                    if c
                    else '<br><span class="muted">baseline</span>'
                )
                tds.append(f"<td>{_e(estimate(cell.score))}{verdict}</td>")
            rows.append(f"<tr><th>{_e(retriever)}</th>{''.join(tds)}</tr>")
        parts.append(
            f"<table><thead><tr><th>retriever \\ model</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        sentences = grid_sentences(grid)
        if sentences:
            parts.append("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in sentences) + "</ul>")
    return "".join(parts)

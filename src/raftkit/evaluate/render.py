"""An :class:`~raftkit.evaluate.report.EvaluationReport` as Markdown, as one HTML file, as JSON.

The HTML page is self-contained (inline CSS, inline SVG charts, a few lines of inline JS to
sort the per-question table): it can be mailed or archived and opened offline years later.
Every string that came from data (questions, answers, model names) is HTML-escaped. Beside the
per-setting tables both renderings show what each model label stood for, the run's notes and
links, the per-question-type breakdown and, with the retriever in the loop, hit@k and the
retriever × model grid.
"""

from __future__ import annotations

import math
from pathlib import Path

import anyio

from raftkit.evaluate._format import interval as _interval
from raftkit.evaluate._format import md as _md
from raftkit.evaluate._format import num as _num
from raftkit.evaluate._format import percent as _pct
from raftkit.evaluate._format import verdict_class as _verdict_class
from raftkit.evaluate._format import verdict_sentence as _verdict_sentence
from raftkit.evaluate._sections import (
    about_models,
    html_breakdown,
    html_retrieval,
    markdown_breakdown,
    markdown_retrieval,
)
from raftkit.evaluate.report import EvaluationReport, MetricSummary, setting_description
from raftkit.html_page import (
    SORTABLE_TABLE_JS,
    escape_html,
    html_document,
    simulated_html,
    simulated_markdown,
)

__all__ = [
    "render_html",
    "render_markdown",
    "write_report",
]


# ---------------------------------------------------------------- Markdown


def render_markdown(report: EvaluationReport) -> str:
    """The report as Markdown: one table per setting, then one verdict line per comparison."""
    pct = _pct(report.confidence)
    lines = ["# raftkit evaluation report", ""]
    if report.simulated:
        lines += [simulated_markdown(), ""]
    lines += [
        f"- Baseline: **{_md(report.baseline)}**; models: "
        + ", ".join(f"`{_md(m)}`" for m in report.models),
        f"- Questions: {report.n_questions}; intervals: {pct} percentile bootstrap, "
        f"{report.n_resamples} resamples, seed {report.seed}",
        "- Δ is the paired mean difference (model − baseline) over questions measured for both;"
        " a verdict names a direction only when its interval excludes 0.",
        "- *not measured* counts questions without a score (failed call, metric not applicable);"
        " they are left out of the means, never counted as 0.",
        *(f"- Model {_md(line)}" for line in about_models(report)),
        *(f"- {_md(note)}" for note in report.notes),
        *(f"- {_md(label)}: [{_md(path)}]({path})" for label, path in report.links.items()),
    ]
    lines += markdown_retrieval(report)
    for setting in report.settings:
        lines += [
            "",
            f"## Setting: {setting}",
            "",
            setting_description(setting),
            "",
            f"| metric | model | mean | {pct} CI | measured | not measured | Δ vs "
            f"{_md(report.baseline)} | {pct} CI of Δ | verdict |",
            "|---|---|---:|---|---:|---:|---:|---|---|",
        ]
        sentences: list[str] = []
        for summary in (s for s in report.summaries if s.setting == setting):
            name = _md(summary.metric.name)
            for m in summary.models:
                c = summary.versus_baseline.get(m.model)
                delta = _num(c.difference, signed=True) if c else "—"
                delta_ci = _interval(c.ci_low, c.ci_high, signed=True) if c else "—"
                verdict = c.verdict if c else "(baseline)"
                lines.append(
                    f"| {name} | {_md(m.model)} | {_num(m.mean)} | "
                    f"{_interval(m.ci_low, m.ci_high)} | {m.n_measured} | {m.n_not_measured} | "
                    f"{delta} | {delta_ci} | {verdict} |"
                )
            for model, c in summary.versus_baseline.items():
                sentences.append(
                    "- " + _md(_verdict_sentence(model, report.baseline, summary.metric.name, c))
                )
        if sentences:
            lines += ["", "### Verdicts", "", *sentences]
        lines += markdown_breakdown(report, setting)
    failed = sum(1 for r in report.results if r.status == "failed")
    skipped = sum(1 for r in report.results if r.status == "skipped")
    truncated = sum(1 for r in report.results if "truncated" in r.notes)
    cut = f"; {truncated} cut off at max_tokens" if truncated else ""
    lines += [
        "",
        f"Per-question results: {len(report.results)} answers ({failed} failed, {skipped} "
        f"skipped{cut}); see the JSON or HTML report.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- HTML

# what only the evaluation report needs beside the shared style
_CSS = """
.better{color:#1a7f37;font-weight:600}.worse{color:#cf222e;font-weight:600}
.higher,.lower{color:#0969da}.nodiff{color:#57606a}
.answer{max-width:28rem;white-space:pre-wrap;word-break:break-word}
"""

_e = escape_html


def _chart(summary: MetricSummary, confidence: float) -> str:
    """Horizontal bars of each model's mean with its interval as an error bar, in SVG."""
    rows = summary.models
    values = [v for m in rows for v in (m.mean, m.ci_low, m.ci_high) if not math.isnan(v)]
    lo = min([0.0, *values])
    hi = max([1.0 if summary.metric.higher_is_better is not None else 0.0, *values])
    if hi <= lo:
        hi = lo + 1.0
    label_w, plot_w, row_h, top = 170, 380, 28, 10
    width = label_w + plot_w + 150
    height = top + row_h * len(rows) + 24

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    parts = [
        f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{_e(summary.metric.name)}: means with {_e(_pct(confidence))} intervals</title>",
    ]
    for i, m in enumerate(rows):
        y = top + i * row_h
        cy = y + row_h / 2
        parts.append(
            f'<text x="{label_w - 8}" y="{cy + 4:.1f}" text-anchor="end">{_e(m.model)}</text>'
        )
        if math.isnan(m.mean):
            parts.append(f'<text x="{x(lo) + 4:.1f}" y="{cy + 4:.1f}">not measured</text>')
            continue
        x0, x1 = x(max(lo, 0.0)), x(m.mean)
        fill = "#8c959f" if i == 0 else "#0969da"
        parts.append(
            f'<rect x="{min(x0, x1):.1f}" y="{y + 5}" width="{abs(x1 - x0):.1f}" '
            f'height="{row_h - 10}" fill="{fill}" opacity="0.75"/>'
        )
        if not (math.isnan(m.ci_low) or math.isnan(m.ci_high)):
            a, b = x(m.ci_low), x(m.ci_high)
            parts.append(
                f'<path d="M{a:.1f} {cy:.1f}H{b:.1f}M{a:.1f} {cy - 6:.1f}V{cy + 6:.1f}'
                f'M{b:.1f} {cy - 6:.1f}V{cy + 6:.1f}" stroke="#1f2328" stroke-width="1.5" '
                'fill="none"/>'
            )
        note = f" ({m.n_not_measured} n/m)" if m.n_not_measured else ""
        parts.append(
            f'<text x="{label_w + plot_w + 8}" y="{cy + 4:.1f}">{_e(_num(m.mean))}{_e(note)}</text>'
        )
    axis_y = top + row_h * len(rows) + 4
    parts.append(
        f'<path d="M{label_w} {axis_y}H{label_w + plot_w}" stroke="#8c959f" stroke-width="1"/>'
    )
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(
            f'<text x="{x(v):.1f}" y="{axis_y + 16}" text-anchor="middle">{_e(_num(v, 2))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _summary_table(summary: MetricSummary, report: EvaluationReport) -> str:
    pct = _e(_pct(report.confidence))
    head = (
        f"<tr><th>model</th><th>mean</th><th>{pct} CI</th><th>measured</th>"
        f"<th>not measured</th><th>Δ vs {_e(report.baseline)}</th><th>{pct} CI of Δ</th>"
        "<th>verdict</th></tr>"
    )
    rows = []
    for m in summary.models:
        c = summary.versus_baseline.get(m.model)
        if c is None:
            tail = '<td class="n">—</td><td>—</td><td class="muted">baseline</td>'
        else:
            tail = (
                f'<td class="n">{_e(_num(c.difference, signed=True))}</td>'
                f"<td>{_e(_interval(c.ci_low, c.ci_high, signed=True))}</td>"
                f'<td class="{_verdict_class(c.verdict)}">{_e(c.verdict)}</td>'
            )
        rows.append(
            f"<tr><td>{_e(m.model)}</td><td class='n'>{_e(_num(m.mean))}</td>"
            f"<td>{_e(_interval(m.ci_low, m.ci_high))}</td><td class='n'>{m.n_measured}</td>"
            f"<td class='n'>{m.n_not_measured}</td>{tail}</tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _question_table(report: EvaluationReport, setting: str) -> str:
    names = [m.name for m in report.metrics]
    columns = ["question id", "question", "model", "status", "final answer", "reference", *names]
    head = "".join(f'<th class="sortable">{_e(c)}</th>' for c in columns)
    rows = []
    for r in (r for r in report.results if r.setting == setting):
        answer = r.final_answer if r.final_answer is not None else (r.error or r.status)
        cells = [
            f'<td data-v="{_e(r.question_id)}">{_e(r.question_id)}</td>',
            f'<td data-v="{_e(r.question)}" class="answer">{_e(r.question)}</td>',
            f'<td data-v="{_e(r.model)}">{_e(r.model)}</td>',
            f'<td data-v="{_e(r.status)}">{_e(r.status)}</td>',
            f'<td data-v="{_e(answer)}" class="answer">{_e(answer)}</td>',
            f'<td data-v="{_e(r.reference)}" class="answer">{_e(r.reference)}</td>',
        ]
        for name in names:
            value = r.scores.get(name, math.nan)
            note = r.notes.get(name)
            title = f' title="{_e(note)}"' if note else ""
            sort_key = "" if math.isnan(value) else f"{value:.6g}"
            cells.append(f'<td class="n" data-v="{sort_key}"{title}>{_e(_num(value))}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<div class="scroll"><table class="sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_html(report: EvaluationReport) -> str:
    """The report as one self-contained HTML page: no external stylesheet, script or image."""
    pct = _pct(report.confidence)
    body = [
        "<h1>raftkit evaluation report</h1>",
        simulated_html() if report.simulated else "",
        f"<p>Baseline <b>{_e(report.baseline)}</b>; models "
        + ", ".join(f"<code>{_e(m)}</code>" for m in report.models)
        + f". {report.n_questions} questions. Bars: means; whiskers: {_e(pct)} percentile "
        f"bootstrap intervals ({report.n_resamples} resamples, seed {report.seed}). "
        "Δ is the paired mean difference against the baseline; a verdict names a direction "
        "only when its interval excludes 0. <i>n/m</i>: not measured, left out of the means."
        "</p>",
    ]
    about = [*(f"Model {line}" for line in about_models(report)), *report.notes]
    if about or report.links:
        items = [f"<li>{_e(line)}</li>" for line in about]
        items += [
            f'<li><a href="{_e(path)}">{_e(label)}</a></li>' for label, path in report.links.items()
        ]
        body.append(f"<ul>{''.join(items)}</ul>")
    body.append(html_retrieval(report))
    for setting in report.settings:
        body.append(f"<h2>Setting: {_e(setting)}</h2>")
        body.append(f'<p class="muted">{_e(setting_description(setting))}</p>')
        for summary in (s for s in report.summaries if s.setting == setting):
            body.append(f"<h3>{_e(summary.metric.name)}</h3>")
            if summary.metric.description:
                body.append(f'<p class="muted">{_e(summary.metric.description)}</p>')
            body.append(_chart(summary, report.confidence))
            body.append(_summary_table(summary, report))
        body.append(html_breakdown(report, setting))
        body.append(f"<h3>Per question ({_e(setting)})</h3>")
        body.append('<p class="muted">Click a column header to sort.</p>')
        body.append(_question_table(report, setting))
    return html_document(
        "raftkit evaluation report", "".join(body), css=_CSS, script=SORTABLE_TABLE_JS
    )


async def write_report(report: EvaluationReport, directory: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``directory``."""
    root = anyio.Path(directory)
    await root.mkdir(parents=True, exist_ok=True)

    def render_all() -> dict[str, tuple[str, str]]:
        return {
            "json": ("report.json", report.model_dump_json(indent=2)),
            "markdown": ("report.md", render_markdown(report)),
            "html": ("report.html", render_html(report)),
        }

    # rendering thousands of rows is CPU work: keep it off the event loop
    outputs = await anyio.to_thread.run_sync(render_all)
    written: dict[str, Path] = {}
    for kind, (name, text) in outputs.items():
        path = root / name
        await path.write_text(text, encoding="utf-8")
        written[kind] = Path(path)
    return written

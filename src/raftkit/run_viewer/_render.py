"""A :class:`~raftkit.run_viewer.RunView` as one self-contained HTML page with inline SVG plots.

Every string that came from data (questions, answers, document names, reasons, settings) goes
through :func:`~raftkit.html_page.escape_html`; nothing from data is ever placed in a script.
The page's sections are rendered here side by side (a little over 400 lines) so that the
escaping rule is checked in one module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from raftkit.html_page import SORTABLE_TABLE_JS, escape_html, html_document
from raftkit.run_viewer._plots import bar_chart, histogram, share
from raftkit.run_viewer._quotes import locate_quotes
from raftkit.run_viewer._scan import RunView, SampledExample
from raftkit.synth import BEGIN_QUOTE, END_QUOTE

__all__ = ["render_run_html"]

_e = escape_html

# Coverage rows beyond this are left out (counted in the totals, and the page says so): a
# corpus of 50,000 files must not make a page of 50,000 rows.
_MAX_DOCUMENT_ROWS = 500
# A context document longer than this is cut on the page (chunks are normally far shorter).
_MAX_DOC_CHARS = 20_000
_MAX_REJECTED_ANSWER_CHARS = 1_200

_QUOTED = re.compile(re.escape(BEGIN_QUOTE) + r"(.*?)" + re.escape(END_QUOTE), re.DOTALL)

_CSS = """
.banner{background:#ffebe9;border:2px solid #cf222e;border-radius:6px;padding:.7rem 1rem;
margin:1rem 0;font-size:1.05rem}.banner b{color:#cf222e;letter-spacing:.05em}
.tiles{display:flex;flex-wrap:wrap;gap:.6rem;margin:1rem 0}
.tile{border:1px solid #d0d7de;border-radius:6px;padding:.4rem .8rem;min-width:7.5rem}
.tile b{display:block;font-size:1.5rem;font-variant-numeric:tabular-nums}
.tile span{color:#57606a;font-size:.85rem}
nav a{margin-right:1rem}
.ex{border:1px solid #d0d7de;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.ex h3{margin:.2rem 0 .5rem;font-size:1rem}
.q{font-size:1.05rem;font-weight:600}
.text{white-space:pre-wrap;word-break:break-word}
.doc{border-left:4px solid #d0d7de;margin:.4rem 0;padding:.1rem .6rem}
.doc.oracle{border-left-color:#1a7f37;background:#f6fff8}
.doc .text{font-size:.85rem;max-height:22rem;overflow:auto}
.badge{display:inline-block;border-radius:1em;padding:0 .55em;font-size:.75rem;
font-weight:600;background:#eaeef2;color:#57606a}
.badge.oracle{background:#1a7f37;color:#fff}.badge.withheld{background:#9a6700;color:#fff}
mark{background:#fff1a8;padding:0 1px}
summary{cursor:pointer}
.plots{display:flex;flex-wrap:wrap;gap:1.5rem}.plot p{margin:.2rem 0}
"""


def _count(n: int) -> str:
    return f"{n:,}"


# ---------------------------------------------------------------- sections


def _highlighted(text: str, spans: list[tuple[int, int]]) -> str:
    out, at = [], 0
    for start, end in spans:
        out.append(_e(text[at:start]))
        out.append(f"<mark>{_e(text[start:end])}</mark>")
        at = end
    out.append(_e(text[at:]))
    return "".join(out)


def _oracle_html(text: str, quotes: list[str]) -> tuple[str, str, int]:
    """The oracle's text (cut if huge) with its quotes marked; the cut note; quotes found."""
    spans, found = locate_quotes(quotes, text)
    shown, more = _cut(text, _MAX_DOC_CHARS)
    visible = [(a, min(b, len(shown))) for a, b in spans if a < len(shown)]
    return _highlighted(shown, visible), more, found


def _cut(text: str, limit: int) -> tuple[str, str]:
    if len(text) <= limit:
        return text, ""
    return text[:limit], f"<p class='muted'>… {len(text) - limit:,} more characters not shown</p>"


def _answer_html(answer: str) -> str:
    """The chain-of-thought answer with its quotes marked instead of the quote markers."""
    out, at = [], 0
    for m in _QUOTED.finditer(answer):
        out.append(_e(answer[at : m.start()]))
        out.append(f"<mark>{_e(m.group(1).strip())}</mark>")
        at = m.end()
    out.append(_e(answer[at:]))
    return "".join(out)


def _document_html(doc: dict[str, Any], quotes: list[str], total: int) -> tuple[str, int]:
    text = str(doc.get("text", ""))
    oracle = doc.get("is_oracle") is True
    position = int(doc.get("position", 0)) + 1
    title = f" · {doc['title']}" if doc.get("title") else ""
    found = 0
    if oracle:
        body, more, found = _oracle_html(text, quotes)
        badge = '<span class="badge oracle">ORACLE</span>'
    else:
        shown, more = _cut(text, _MAX_DOC_CHARS)
        body = _e(shown)
        badge = '<span class="badge">distractor</span>'
    return (
        f'<details class="doc{" oracle" if oracle else ""}"{" open" if oracle else ""}>'
        f"<summary>{badge} document {position} of {total} · "
        f"<code>{_e(doc.get('chunk_id', ''))}</code>{_e(title)}</summary>"
        f'<div class="text">{body}</div>{more}</details>'
    ), found


def _example_html(sample: SampledExample) -> str:
    r = sample.record
    quotes = [str(q) for q in r.get("quotes") or []]
    docs = sorted(
        (d for d in r["documents"] if isinstance(d, dict)), key=lambda d: d.get("position", 0)
    )
    parts: list[str] = []
    found = 0
    for doc in docs:
        html, n = _document_html(doc, quotes, len(docs))
        found += n
        parts.append(html)
    if r["oracle_present"]:
        status = '<span class="badge oracle">oracle in context</span>'
    else:
        status = '<span class="badge withheld">oracle withheld</span>'
        found = 0
        which = "the" if len(sample.oracle_ids) == 1 else "a"
        for chunk_id in sample.oracle_ids:
            text = sample.withheld_oracles.get(chunk_id)
            if text is None:
                continue
            body, more, n = _oracle_html(text, quotes)
            found += n
            parts.append(
                '<details class="doc oracle" open><summary><span class="badge withheld">ORACLE, '
                f"not in this context</span> {which} chunk the question was written from "
                f"(<code>{_e(chunk_id)}</code>; RAFT leaves it out on purpose in a share of "
                f'examples)</summary><div class="text">{body}</div>{more}</details>'
            )
    found = min(found, len(quotes))  # a quote may be found in both oracles of a multi-hop one
    quote_note = (
        f"{found} of {len(quotes)} verified quote{'s' if len(quotes) != 1 else ''} "
        f"highlighted in the oracle{'s' if len(sample.oracle_ids) > 1 else ''}"
        if quotes
        else "no quotes"
    )
    return (
        f'<article class="ex"><h3>examples.jsonl line {sample.line:,} · '
        f"<code>{_e(r['document_id'])}</code> · {status}</h3>"
        f'<p class="q">{_e(r["question"])}</p>'
        f"<p><b>Final answer:</b> {_e(r.get('final_answer', ''))}</p>"
        f"<details><summary>Chain-of-thought answer ({_e(quote_note)})</summary>"
        f'<div class="text">{_answer_html(str(r["cot_answer"]))}</div></details>'
        f"{''.join(parts)}</article>"
    )


def _examples_section(view: RunView) -> str:
    head = (
        f'<h2 id="examples">Examples</h2><p class="muted">A random sample of '
        f"{len(view.samples):,} of {view.examples:,} examples (seed {view.seed}; the same seed "
        "always draws the same ones). The oracle is the chunk the question was written from; "
        "its verified quotes are <mark>highlighted</mark>. Distractors are folded: click to "
        "open.</p>"
    )
    if not view.samples:
        return head + "<p>No examples to show.</p>"
    return head + "".join(_example_html(s) for s in view.samples)


def _attempts(n: object) -> str:
    if isinstance(n, int):
        return f"{n} attempt{'s' if n != 1 else ''}"
    return "attempts unknown"


def _rejections_section(view: RunView) -> str:
    total = sum(view.rejections.values())
    questions = total + view.examples
    out = [
        f'<h2 id="rejections">Rejections</h2><p>{total:,} of {questions:,} questions '
        f"({_e(share(total, questions))}) were rejected: the teacher's answer failed "
        "verification after every attempt.</p>"
    ]
    if not total:
        return "".join(out)
    rows = view.rejections.most_common()
    out.append(bar_chart(rows, "Rejected questions by reason", colors=["#cf222e"] * len(rows)))
    for reason, count in rows:
        samples = view.rejection_samples.get(reason, [])
        out.append(f"<h3>{_e(reason)} — {count:,}</h3>")
        for s in samples:
            r = s.record
            answer, more = _cut(str(r.get("last_answer") or ""), _MAX_REJECTED_ANSWER_CHARS)
            out.append(
                f'<div class="ex"><p class="q">{_e(r.get("question", ""))}</p>'
                f'<p class="muted">rejections.jsonl line {s.line:,} · chunk '
                f"<code>{_e(r.get('chunk_id', ''))}</code> · {_e(_attempts(r.get('attempts')))}"
                "</p><details><summary>last answer</summary>"
                f'<div class="text">{_e(answer) or "<i>empty</i>"}</div>{more}</details></div>'
            )
    return "".join(out)


def _coverage_section(view: RunView) -> str:
    docs = view.documents
    columns = [
        "document",
        "chunks",
        "chunks with examples",
        "questions",
        "examples",
        "rejected",
        "oracle share",
    ]
    head = "".join(f'<th class="sortable">{_e(c)}</th>' for c in columns)
    shown = sorted(docs, key=lambda d: -d.questions)[:_MAX_DOCUMENT_ROWS]
    shown_ids = {d.document_id for d in shown}
    rows = []
    for d in (d for d in docs if d.document_id in shown_ids):  # corpus order
        share = d.with_oracle / d.examples if d.examples else None
        cells = [
            f'<td data-v="{_e(d.document_id)}">{_e(d.document_id)}</td>',
            *(
                f'<td class="n" data-v="{v}">{v:,}</td>'
                for v in (d.chunks, d.chunks_with_examples, d.questions, d.examples, d.rejections)
            ),
            f'<td class="n" data-v="{"" if share is None else f"{share:.4f}"}">'
            f"{'—' if share is None else f'{100 * share:.0f}%'}</td>",
        ]
        warn = ' style="background:#fff8c5"' if d.chunks and not d.examples else ""
        rows.append(f"<tr{warn}>{''.join(cells)}</tr>")
    note = ""
    if len(docs) > len(shown):
        note = (
            f'<p class="muted">The {len(shown):,} documents with the most questions are listed; '
            f"{len(docs) - len(shown):,} more are counted in the totals above only.</p>"
        )
    no_examples = sum(1 for d in docs if d.chunks and not d.examples)
    lead = (
        f"<p>{len(docs):,} documents; {no_examples:,} produced no example (highlighted). "
        "Click a column header to sort.</p>"
    )
    return (
        f'<h2 id="coverage">Coverage per document</h2>{lead}'
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{note}"
    )


def _distributions_section(view: RunView) -> str:
    k = view.settings.get("distractors")
    seen = {p for p in view.oracle_positions if p >= 0}
    if isinstance(k, int) and 0 <= k < 100:
        seen |= set(range(k + 1))  # show empty positions too: a gap is worth seeing
    positions = sorted(seen)
    rows = [(f"oracle at position {p + 1}", view.oracle_positions.get(p, 0)) for p in positions]
    rows.append(("oracle withheld", view.oracle_positions.get(-1, 0)))
    p = view.settings.get("oracle_probability")
    expected = f" (the run asked for p = {_e(p)})" if isinstance(p, int | float) else ""
    context = f"{k} distractors and the oracle" if isinstance(k, int) else "the context"
    counted = (
        f"Token counts are exact ({view.token_encoding} vocabulary)"
        if view.tokens_exact
        else "Token counts are offline estimates (pip install 'raftkit[tokens]' for exact ones)"
    )
    return (
        f'<h2 id="distributions">Distributions</h2><p class="muted">{_e(counted)}. Tokens per '
        "example: the context documents, the question and the chain-of-thought answer — "
        "about what one training row costs.</p>"
        '<div class="plots">'
        + histogram(view.question_tokens, "Question length", "tokens")
        + histogram(view.answer_tokens, "Answer length (chain of thought)", "tokens")
        + histogram(view.example_tokens, "Tokens per example", "tokens")
        + bar_chart(
            rows,
            f"Oracle share: {share(view.with_oracle, view.examples)} of examples keep it{expected}",
            colors=["#1a7f37"] * (len(rows) - 1) + ["#9a6700"],
        )
        + "</div>"
        + f'<p class="muted">Position: where the oracle sits among {_e(context)}.</p>'
    )


def _table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _cost_section(view: RunView) -> str:
    out = ['<h2 id="cost">Cost and tokens</h2>']
    report = view.report
    if report is None:
        out.append('<p class="muted">No report.json in this run (it did not finish).</p>')
    else:
        cost = (
            "unknown (no price for a model)"
            if report.cost_usd is None
            else (f"${report.cost_usd:,.4f}")
        )
        out.append(
            _table(
                [
                    ("cost this run", _e(cost)),
                    ("prompt tokens", _count(report.prompt_tokens)),
                    ("cached prompt tokens", _count(report.cached_tokens)),
                    ("completion tokens", _count(report.completion_tokens)),
                    ("paid calls", _count(report.teacher_calls_paid)),
                    ("calls replayed from the journal", _count(report.teacher_calls_replayed)),
                    ("wall time", f"{report.wall_seconds:,.1f} s"),
                    ("examples per minute", f"{report.examples_per_minute:,.1f}"),
                ]
            )
        )
        if report.usage_by_model:
            columns = [
                "model",
                "calls",
                "retries",
                "rate limited",
                "prompt",
                "cached",
                "completion",
                "embedding",
                "cost",
            ]
            head = "".join(f"<th>{c}</th>" for c in columns)
            rows = []
            for name, u in sorted(report.usage_by_model.items()):
                u = u if isinstance(u, dict) else {}
                cost_cell = (
                    f"${u['cost_usd']:,.4f}"
                    if isinstance(u.get("cost_usd"), int | float) and u.get("cost_known", True)
                    else "unknown"
                )
                nums = "".join(
                    f'<td class="n">{_e(_fmt(u.get(key)))}</td>'
                    for key in (
                        "calls",
                        "retries",
                        "rate_limited",
                        "prompt_tokens",
                        "cached_tokens",
                        "completion_tokens",
                        "embedding_tokens",
                    )
                )
                rows.append(f"<tr><td>{_e(name)}</td>{nums}<td class='n'>{_e(cost_cell)}</td></tr>")
            out.append(
                f"<h3>By model</h3><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>"
            )
    scalars = [(k, v) for k, v in sorted(view.settings.items()) if not isinstance(v, dict | list)]
    if scalars:
        out.append("<h3>Settings</h3>")
        out.append(_table([(k, f"<code>{_e(_fmt(v))}</code>") for k, v in scalars]))
    return "".join(out)


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _header(view: RunView) -> str:
    report = view.report
    name = view.run_dir.name or str(view.run_dir)
    out = [f"<h1>raftkit run: {_e(name)}</h1>"]
    if view.simulated:
        out.append(
            '<div class="banner" role="alert"><b>SIMULATED</b> — this run\'s teacher was '
            "raftkit's built-in simulator: its questions and answers are deterministic "
            "placeholders built from your documents. Fine for trying raftkit; do not train a "
            "model on them.</div>"
        )
    if report is not None:
        status = report.status + (f" ({report.stop_reason})" if report.stop_reason else "")
        out.append(
            f"<p>Source <code>{_e(report.source)}</code> · teacher "
            f"<code>{_e(report.teacher_model)}</code> · status <b>{_e(status)}</b></p>"
        )
    rejected = sum(view.rejections.values())
    questions = view.examples + rejected
    documents = len(view.documents) if report is None else report.documents
    tiles: list[tuple[str, str]] = [
        (_count(documents), "documents"),
        (_count(view.chunks) if view.chunks is not None else "—", "chunks"),
        (_count(questions), "questions"),
        (_count(view.examples), "examples"),
        (share(view.with_oracle, view.examples), "keep the oracle"),
        (share(rejected, questions), f"rejected ({rejected:,})"),
    ]
    if report is not None:
        cost = "?" if report.cost_usd is None else f"${report.cost_usd:,.2f}"
        tokens = report.prompt_tokens + report.completion_tokens
        tiles += [(cost, "cost"), (_count(tokens), "tokens")]
    out.append(
        '<div class="tiles">'
        + "".join(f"<div class='tile'><b>{_e(v)}</b><span>{_e(k)}</span></div>" for v, k in tiles)
        + "</div>"
    )
    if report is not None and report.extraction_errors:
        items = "".join(f"<li>{_e(e)}</li>" for e in report.extraction_errors)
        out.append(
            f"<details><summary>{len(report.extraction_errors)} files could not be "
            f"extracted</summary><ul>{items}</ul></details>"
        )
    out.append(
        '<nav><a href="#examples">examples</a><a href="#rejections">rejections</a>'
        '<a href="#coverage">coverage</a><a href="#distributions">distributions</a>'
        '<a href="#cost">cost and settings</a></nav>'
    )
    return "".join(out)


def render_run_html(view: RunView) -> str:
    """The run as one self-contained HTML page: no external stylesheet, script or image."""
    body = [
        _header(view),
        _examples_section(view),
        _rejections_section(view),
        _coverage_section(view),
        _distributions_section(view),
        _cost_section(view),
        f'<p class="muted">Written by <code>raftkit show</code> with --sample {view.sample_size} '
        f"--seed {view.seed}.</p>",
    ]
    title = f"raftkit run: {view.run_dir.name or view.run_dir}"
    return html_document(title, "".join(body), css=_CSS, script=SORTABLE_TABLE_JS)

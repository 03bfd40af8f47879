from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from raftkit.errors import UsageError
from raftkit.evaluate import (
    EvaluationReport,
    MetricInfo,
    QuestionResult,
    compare,
    render_html,
    render_markdown,
    write_report,
)

_METRICS = [
    MetricInfo(name="exact_match", description="normalised equality"),
    MetricInfo(name="answer_length", higher_is_better=None),
]
_EVIL = '<script>alert("x")</script>'


def _result(model: str, i: int, em: float, length: float, **kw: object) -> QuestionResult:
    return QuestionResult(
        setting="dataset",
        model=model,
        example_id=f"ex{i}",
        question_id=f"q{i}",
        question=f"问题 {i} {_EVIL}" if i == 0 else f"问题 {i}？",
        reference=f"答案{i}",
        response=f"<ANSWER>: {model} {i}",
        final_answer=f"{model} {i} {_EVIL}" if i == 1 else f"{model} {i}",
        scores={"exact_match": em, "answer_length": length},
        **kw,
    )


def _results(n: int = 40) -> list[QuestionResult]:
    results = []
    for i in range(n):
        results.append(_result("base", i, float(i % 4 == 0), 10.0 + i % 3))
        # tuned: right on 3 of 4; one question not measured
        em = math.nan if i == 5 else float(i % 4 != 1)
        results.append(_result("tuned", i, em, 10.0 + i % 3))
        # teacher: same as base -> no detectable difference
        results.append(_result("teacher <b>", i, float(i % 4 == 0), 10.0 + i % 3))
    return results


@pytest.fixture(scope="module")
def report() -> EvaluationReport:
    return compare(_results(), _METRICS, baseline="base", n_resamples=2000, seed=3)


def test_compare_summarises_and_pairs(report: EvaluationReport) -> None:
    assert report.models == ["base", "tuned", "teacher <b>"]
    assert report.n_questions == 40
    em = report.summary("exact_match")
    base, tuned, _teacher = em.models
    assert base.mean == pytest.approx(0.25)
    assert (tuned.n_measured, tuned.n_not_measured) == (39, 1)
    c = report.comparison("exact_match", "tuned")
    assert c.verdict == "better"
    assert c.n == 39
    assert c.n_excluded == 1
    assert report.comparison("exact_match", "teacher <b>").verdict == "no detectable difference"
    length = report.comparison("answer_length", "tuned")
    assert length.higher_is_better is None
    assert length.verdict == "no detectable difference"
    assert base.ci_low <= base.mean <= base.ci_high
    with pytest.raises(UsageError):
        report.summary("bleu")


def test_baseline_is_first_whatever_the_result_order() -> None:
    report = compare(_results(8), _METRICS, baseline="tuned", n_resamples=200)
    assert report.models[0] == "tuned"
    assert set(report.summary("exact_match").versus_baseline) == {"base", "teacher <b>"}
    with pytest.raises(UsageError, match="baseline"):
        compare(_results(2), _METRICS, baseline="nobody")


def test_json_round_trips_with_nan(report: EvaluationReport) -> None:
    text = report.model_dump_json()
    assert "NaN" not in text
    again = EvaluationReport.model_validate_json(text)
    tuned5 = next(r for r in again.results if r.model == "tuned" and r.example_id == "ex5")
    assert math.isnan(tuned5.scores["exact_match"])
    assert again.comparison("exact_match", "tuned") == report.comparison("exact_match", "tuned")


def test_markdown_contains_the_verdicts(report: EvaluationReport) -> None:
    md = render_markdown(report)
    assert "## Setting: dataset" in md
    assert "tuned is better than base on exact_match" in md
    assert "no detectable difference between teacher &lt;b&gt; and base on exact_match" in md
    assert "1 pair not measured" in md
    assert "<b>" not in md  # HTML from data is escaped, Markdown renderers would run it
    row = next(line for line in md.splitlines() if line.startswith("| exact_match | tuned |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4:6] == ["39", "1"]  # measured, not measured
    assert cells[-1] == "better"
    assert "95% CI" in md


def test_markdown_escapes_table_pipes() -> None:
    results = [
        r.model_copy(update={"model": "a|b"}) if r.model == "tuned" else r for r in _results(6)
    ]
    md = render_markdown(compare(results, _METRICS, baseline="base", n_resamples=100))
    assert "| exact_match | a\\|b |" in md


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.scripts += 1
        for name, value in attrs:
            if name in {"src", "href", "xlink:href", "action"} and value:
                self.urls.append(value)


def test_html_is_self_contained_and_escapes_data(report: EvaluationReport) -> None:
    page = render_html(report)
    parser = _Collector()
    parser.feed(page)
    assert parser.urls == []
    assert not re.search(r"https?://", page)
    assert "<link" not in page
    assert "@import" not in page
    assert parser.scripts == 1  # our own inline sorter; the data's <script> is text
    assert _EVIL not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "teacher &lt;b&gt;" in page
    assert "<b>teacher" not in page
    assert parser.tags.count("svg") == len(report.summaries)
    assert 'class="sortable"' in page
    assert "addEventListener" in page
    assert "问题 3？" in page  # CJK passes through unescaped


def test_html_error_bars_and_not_measured() -> None:
    results = [
        r.model_copy(update={"scores": {"exact_match": math.nan, "answer_length": 1.0}})
        if r.model == "tuned"
        else r
        for r in _results(10)
    ]
    page = render_html(compare(results, _METRICS, baseline="base", n_resamples=100))
    assert "not measured" in page
    assert "<rect" in page
    assert "<path" in page


@pytest.mark.anyio
async def test_write_report(anyio_backend: str, tmp_path: Path, report: EvaluationReport) -> None:
    written = await write_report(report, tmp_path / "out")
    assert set(written) == {"json", "markdown", "html"}
    assert EvaluationReport.model_validate_json(written["json"].read_text("utf-8")) == report
    assert written["markdown"].read_text("utf-8") == render_markdown(report)
    assert written["html"].read_text("utf-8").startswith("<!DOCTYPE html>")

"""``raftkit show RUN``: the run viewer page, from a simulator run and from hand-made runs."""

from __future__ import annotations

import json
import re
import webbrowser
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from raftkit.cli import main
from raftkit.run_viewer import (
    locate_quotes,
    render_run_html,
    scan_run,
    write_run_viewer,
)
from raftkit.synth import verify_answer
from raftkit.types import ContextDocument, RaftExample
from viewer_support import make_simulated_run


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_simulated_run(tmp_path_factory.mktemp("viewer"))


# ---------------------------------------------------------------- a hand-made run


def _example(
    n: int,
    *,
    question: str = "What do bats eat?",
    document_id: str = "bats.txt",
    oracle_text: str = "Most bats eat insects. Some drink nectar.",
    quotes: tuple[str, ...] = ("Most bats eat insects.",),
    oracle_present: bool = True,
) -> RaftExample:
    chunk_id = f"{document_id}#{n % 3}"
    documents = [
        ContextDocument(chunk_id="other.txt#0", position=0, is_oracle=False, text="Surfboards.")
    ]
    if oracle_present:
        documents.append(
            ContextDocument(chunk_id=chunk_id, position=1, is_oracle=True, text=oracle_text)
        )
    answer = " ".join(f"##begin_quote##{q}##end_quote##" for q in quotes)
    return RaftExample(
        id=f"q{n}",
        question_id=f"q{n}",
        question=question,
        chunk_id=chunk_id,
        document_id=document_id,
        documents=documents,
        oracle_present=oracle_present,
        cot_answer=f"The text says {answer}\n<ANSWER>: insects",
        final_answer="insects",
        quotes=list(quotes),
    )


def make_run(
    root: Path,
    examples: list[RaftExample],
    *,
    rejections: Sequence[Mapping[str, object]] = (),
    chunks: Sequence[Mapping[str, object]] | None = None,
    report: Mapping[str, object] | None = None,
    settings: Mapping[str, object] | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "examples.jsonl").open("w", encoding="utf-8") as f:
        for e in examples:
            f.write(e.model_dump_json() + "\n")
    with (root / "rejections.jsonl").open("w", encoding="utf-8") as f:
        for r in rejections:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    if chunks is not None:
        with (root / "chunks.jsonl").open("w", encoding="utf-8") as f:
            for c in chunks:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
    if report is not None:
        (root / "report.json").write_text(json.dumps(report), encoding="utf-8")
    if settings is not None:
        (root / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    return root


def _report(**fields: object) -> dict[str, object]:
    return {"source": "docs", "run_dir": "run", "teacher_model": "gpt-4o", **fields}


# ---------------------------------------------------------------- tests on the simulator run


def test_show_writes_a_self_contained_page_for_a_simulated_run(
    sim_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(sim_run)]) == 0
    page_path = sim_run / "report.html"
    assert capsys.readouterr().out.strip() == str(page_path)
    page = page_path.read_text(encoding="utf-8")
    report = json.loads((sim_run / "report.json").read_text(encoding="utf-8"))

    assert "SIMULATED" in page
    # nothing is fetched from elsewhere: no external script, style, image or font
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert page.count("<script") == 1
    # the counts on the page are the run's
    assert f"<b>{report['examples']:,}</b><span>examples</span>" in page
    rejected = sum(report["rejections"].values())
    assert rejected > 0, "the simulator was told to misbehave"
    assert f"{rejected:,} of {report['questions']:,} questions" in page
    for reason, count in report["rejections"].items():
        assert f"<h3>{reason} — {count:,}</h3>" in page
    # coverage: one row per document with its chunk count
    chunks = [json.loads(line) for line in (sim_run / "chunks.jsonl").open(encoding="utf-8")]
    for document in {c["document_id"] for c in chunks}:
        assert f'<td data-v="{document}">{document}</td>' in page
    # the plots: three histograms and the oracle bars, as inline SVG
    assert page.count("<svg") >= 5
    for title in ("Question length", "Answer length", "Tokens per example", "Oracle share"):
        assert title in page
    assert "<mark>" in page
    assert "ORACLE" in page
    assert "$" in page


def test_every_verified_quote_is_highlighted_in_its_oracle(sim_run: Path) -> None:
    """All examples of the real run, Chinese and PDF-broken lines included."""
    view = scan_run(sim_run, sample=10_000)
    chunks = {
        json.loads(line)["id"]: json.loads(line)["text"]
        for line in (sim_run / "chunks.jsonl").open(encoding="utf-8")
    }
    assert len(view.samples) == view.examples > 0
    chinese = 0
    for sample in view.samples:
        record = sample.record
        oracle = chunks[record["chunk_id"]]
        assert verify_answer(record["cot_answer"], oracle).ok
        spans, found = locate_quotes(record["quotes"], oracle)
        assert found == len(record["quotes"]), (record["quotes"], oracle)
        assert spans
        chinese += bool(re.search(r"[\u4e00-\u9fff]", record["question"]))
    assert chinese, "the run has Chinese examples"


def test_withheld_oracles_are_shown_from_the_chunks_file(sim_run: Path) -> None:
    view = scan_run(sim_run, sample=10_000)
    withheld = [s for s in view.samples if not s.record["oracle_present"]]
    assert withheld, "p = 0.8 leaves the oracle out of some contexts"
    for sample in withheld:
        assert list(sample.withheld_oracles) == [sample.record["chunk_id"]]
        assert all(sample.withheld_oracles.values())
        assert not any(d["is_oracle"] for d in sample.record["documents"])
    assert "ORACLE, not in this context" in render_run_html(view)


def test_a_multi_hop_example_without_its_oracles_shows_both_with_their_quotes(
    tmp_path: Path,
) -> None:
    bats, farms = "Vampire bats drink blood.", "Cattle ranches host vampire bats."
    example = _example(0, quotes=(bats, farms), oracle_present=False)
    example = example.model_copy(
        update={"metadata": {"oracle_chunk_ids": ["bats.txt#0", "farms.txt#0"]}}
    )
    chunks = [
        {"id": "bats.txt#0", "document_id": "bats.txt", "text": f"Intro. {bats}"},
        {"id": "farms.txt#0", "document_id": "farms.txt", "text": f"{farms} Outro."},
    ]
    view = scan_run(make_run(tmp_path / "run", [example], chunks=chunks), sample=10)
    (sample,) = view.samples
    assert sample.withheld_oracles == {c["id"]: c["text"] for c in chunks}
    page = render_run_html(view)
    assert page.count("ORACLE, not in this context") == 2
    assert f"<mark>{bats}</mark>" in page
    assert f"<mark>{farms}</mark>" in page
    assert "2 of 2 verified quotes highlighted in the oracles" in page


def test_the_page_is_reproducible_and_the_seed_picks_the_sample(sim_run: Path) -> None:
    first = render_run_html(scan_run(sim_run, sample=3, seed=1))
    assert render_run_html(scan_run(sim_run, sample=3, seed=1)) == first
    lines = {
        seed: [s.line for s in scan_run(sim_run, sample=3, seed=seed).samples] for seed in range(6)
    }
    assert all(len(v) == 3 for v in lines.values())
    assert len({tuple(v) for v in lines.values()}) > 1, "different seeds draw different examples"


def test_open_hands_the_page_to_the_web_browser(
    sim_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def fake_open(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    assert main(["show", str(sim_run), "--open", "--sample", "2"]) == 0
    assert opened == [(sim_run / "report.html").resolve().as_uri()]


# ---------------------------------------------------------------- hand-made runs


def test_special_tokens_in_the_data_are_counted_not_fatal(tmp_path: Path) -> None:
    question = "What does <|endoftext|> mean?"
    run = make_run(tmp_path / "run", [_example(0, question=question)])
    view = scan_run(run)
    assert sum(view.question_tokens.values()) == 1
    assert min(view.question_tokens) > 3
    assert "&lt;|endoftext|&gt;" in render_run_html(view)


def test_every_string_from_data_is_escaped(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    run = make_run(
        tmp_path / "run",
        [
            _example(
                0,
                question=f"Is {evil} a question?",
                document_id=f"<img src=x onerror=alert(2)>{evil}.txt",
                oracle_text=f"Bats {evil} eat insects.",
                quotes=(f"{evil} eat insects.",),
            )
        ],
        rejections=[
            {
                "question_id": "q9",
                "chunk_id": f"{evil}#0",
                "question": f"Why {evil}?",
                "reason": f"<b>{evil}</b>",
                "attempts": 1,
                "last_answer": evil,
            }
        ],
        report=_report(teacher_model=evil, source=evil, extraction_errors=[evil]),
        settings={"teacher_model": evil, "note": evil},
    )
    page = render_run_html(scan_run(run))
    assert "<script>alert" not in page
    assert "<img" not in page
    assert "<b><script" not in page
    assert page.count("<script") == 1  # the page's own sorting script
    assert "Is &lt;script&gt;alert(1)&lt;/script&gt; a question?" in page
    # the quote is still found and marked inside the escaped oracle
    assert "<mark>&lt;script&gt;alert(1)&lt;/script&gt; eat insects.</mark>" in page


def test_locate_quotes_tolerates_what_verification_tolerates() -> None:
    text = "蝙蝠依靠回声\n定位 捕食。Full-width ＡＢＣ１２３ and “curly” — dashes.\nA long\nline."
    # each quote has the substance verification asks for, and the final answer restates it,
    # so the one thing that varies is the normalisation the quote needs to be found
    cases = {
        "蝙蝠依靠回声定位捕食。": "蝙蝠依靠回声\n定位 捕食。",
        "Full-width ABC123 and": "Full-width ＡＢＣ１２３ and",
        'and "curly" - dashes.': "and “curly” — dashes.",
        "A long line.": "A long\nline.",
        "「蝙蝠依靠回声定位」": "蝙蝠依靠回声\n定位",  # wrapping quotation marks are not quoted
    }
    for quote, covered in cases.items():
        answer = f"##begin_quote##{quote}##end_quote##\n<ANSWER>: {quote}"
        assert verify_answer(answer, text).ok, quote
        spans, found = locate_quotes([quote], text)
        assert found == 1, quote
        assert [text[a:b] for a, b in spans] == [covered], quote
    # an elided quote marks each piece; a quote not in the text marks nothing
    spans, found = locate_quotes(["蝙蝠依靠…捕食。"], text)
    assert (found, [text[a:b] for a, b in spans]) == (1, ["蝙蝠依靠", "捕食。"])
    assert locate_quotes(["not in the text"], text) == ([], 0)


def test_counts_coverage_and_distributions(tmp_path: Path) -> None:
    examples = [_example(i, oracle_present=i % 5 != 0) for i in range(20)]
    examples += [_example(20 + i, document_id="猫.txt") for i in range(4)]
    chunks = [
        {"id": f"{doc}#{i}", "document_id": doc, "index": i, "text": "t", "start": 0, "end": 1}
        for doc in ("bats.txt", "猫.txt", "empty.pdf")
        for i in range(3)
    ]
    rejections = [
        {"question_id": f"r{i}", "chunk_id": "猫.txt#1", "question": "?", "reason": reason}
        for i, reason in enumerate(["no_quotes", "no_quotes", "quote_not_in_oracle"])
    ]
    run = make_run(
        tmp_path / "run",
        examples,
        rejections=rejections,
        chunks=chunks,
        settings={"distractors": 1, "oracle_probability": 0.8},
    )
    view = scan_run(run, sample=5)
    assert (view.examples, view.with_oracle, view.chunks) == (24, 20, 9)
    assert view.rejections == {"no_quotes": 2, "quote_not_in_oracle": 1}
    assert [len(s) for s in view.rejection_samples.values()] == [2, 1]
    coverage = {d.document_id: d for d in view.documents}
    assert list(coverage) == ["bats.txt", "猫.txt", "empty.pdf"]  # corpus order
    bats, cat, empty = coverage["bats.txt"], coverage["猫.txt"], coverage["empty.pdf"]
    assert (bats.chunks, bats.chunks_with_examples, bats.examples, bats.with_oracle) == (
        3,
        3,
        20,
        16,
    )
    assert (cat.examples, cat.rejections, cat.questions, cat.chunks_with_examples) == (4, 3, 7, 3)
    assert (empty.chunks, empty.questions) == (3, 0)
    assert sum(view.question_tokens.values()) == 24
    assert sum(view.example_tokens.values()) == 24
    assert view.oracle_positions == {1: 20, -1: 4}
    assert len(view.samples) == 5
    page = render_run_html(view)
    assert "1 produced no example" in page
    assert "oracle at position 2" in page  # k = 1: positions 1 and 2, even the empty one
    assert "83.3%" in page  # 20 of 24 keep the oracle


def test_the_banner_follows_report_or_settings(tmp_path: Path) -> None:
    def page(name: str, **files: dict[str, object]) -> str:
        run = make_run(tmp_path / name, [_example(0)], **files)  # type: ignore[arg-type]
        return render_run_html(scan_run(run))

    assert "SIMULATED" in page("a", report=_report(simulated_teacher=True))
    assert "SIMULATED" in page("b", settings={"simulated": True})
    assert "SIMULATED" not in page("c", report=_report(simulated_teacher=False))
    assert "SIMULATED" not in page("d", settings={"simulated": False})
    assert "No report.json" in page("e")


def test_a_big_run_makes_a_small_page(tmp_path: Path) -> None:
    text = "Bats eat insects. " * 100
    examples = [
        _example(i, oracle_text=text, quotes=("Bats eat insects.",), document_id=f"d{i % 50}")
        for i in range(3000)
    ]
    run = make_run(tmp_path / "run", examples)
    view = scan_run(run, sample=12)
    page = render_run_html(view)
    assert view.examples == 3000
    assert len(view.samples) == 12
    lines = [s.line for s in view.samples]
    assert lines == sorted(lines)
    assert max(lines) > 12, "a sample of the whole file, not its head"
    data = (run / "examples.jsonl").stat().st_size
    assert len(page.encode()) < data / 20


def test_bad_input_is_a_one_line_error_naming_the_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err

    (tmp_path / "empty").mkdir()
    assert main(["show", str(tmp_path / "empty")]) == 2
    assert "examples.jsonl: not found" in capsys.readouterr().err

    run = make_run(tmp_path / "torn", [_example(0), _example(1)])
    with (run / "examples.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"id": "q2", "question": \n')
    assert main(["show", str(run)]) == 2
    err = capsys.readouterr().err
    assert "examples.jsonl:3: not a JSON line" in err
    assert "Traceback" not in err

    run = make_run(tmp_path / "nofield", [_example(0)])
    record = json.loads((run / "examples.jsonl").read_text(encoding="utf-8"))
    del record["cot_answer"]
    (run / "examples.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    assert main(["show", str(run)]) == 2
    assert "examples.jsonl:1: field 'cot_answer' is missing" in capsys.readouterr().err

    run = make_run(tmp_path / "badreport", [_example(0)])
    (run / "report.json").write_text('{"status": "exploded"}', encoding="utf-8")
    assert main(["show", str(run)]) == 2
    assert "report.json" in capsys.readouterr().err

    assert main(["show", str(tmp_path / "torn"), "--sample", "-1"]) == 2
    assert "--sample" in capsys.readouterr().err


@pytest.mark.anyio
async def test_write_run_viewer_writes_the_page(anyio_backend: str, tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [_example(i) for i in range(4)])
    path = await write_run_viewer(run, sample=2, seed=3)
    assert path == run / "report.html"
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "--sample 2 --seed 3" in page
    assert not list(run.glob("*.tmp"))


def test_every_public_name_is_exported() -> None:
    import raftkit.html_page
    import raftkit.run_viewer

    for module in (raftkit.run_viewer, raftkit.html_page):
        assert sorted(module.__all__) == sorted(set(module.__all__))
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"

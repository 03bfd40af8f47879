"""The generation pipeline end to end against the loopback simulator."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from caps_support import seed_generous_caps
from data_files import CORPUS, FOILBOARD
from raftkit.errors import ResumeMismatchError
from raftkit.extract import Extractor, default_extractors
from raftkit.llm import OpenAIClient, PollPolicy
from raftkit.llm.usage import UsageLedger
from raftkit.pipeline import RaftConfig, RaftPipeline, estimate_cost
from raftkit.synth import QUESTION_REJECTION_REASONS, verify_answer
from raftkit.testing import Simulator, SimulatorConfig
from raftkit.types import Document, RaftExample

pytestmark = pytest.mark.anyio

SMALL_PDF = FOILBOARD

CHINESE = (
    "# 蝙蝠\n\n蝙蝠是唯一能够真正飞行的哺乳动物。它们的前肢演化成了翼。\n\n"
    "## 回声定位\n\n大多数小型蝙蝠依靠回声定位在黑暗中捕食。它们发出高频声波。\n"
)


def make_docs(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(SMALL_PDF, docs / SMALL_PDF.name)
    (docs / "蝙蝠.md").write_text(CHINESE, encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 this is not really a pdf")
    (docs / "empty.txt").write_bytes(b"")
    return docs


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


def read_examples(run_dir: Path) -> list[RaftExample]:
    lines = (run_dir / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    return [RaftExample.model_validate_json(line) for line in lines]


def read_chunk_texts(run_dir: Path) -> dict[str, str]:
    lines = (run_dir / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["id"]: json.loads(line)["text"] for line in lines}


async def test_run_writes_verified_examples_and_a_report(sim: Simulator, tmp_path: Path) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(questions_per_chunk=3, chunk_size=256, seed=3, concurrency=4)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(docs, tmp_path / "run")

    examples = read_examples(tmp_path / "run")
    assert report.status == "completed"
    assert report.examples == len(examples) > 0
    assert report.documents == 2
    assert len(report.extraction_errors) == 2
    assert any("broken.pdf" in e for e in report.extraction_errors)
    assert any("empty.txt" in e for e in report.extraction_errors)
    chunks = read_chunk_texts(tmp_path / "run")
    assert report.chunks == len(chunks)
    assert any(e.document_id == "蝙蝠.md" for e in examples), "the Chinese document is used"
    for example in examples:
        assert len(example.documents) == config.distractors + 1 or len(chunks) <= config.distractors
        assert [d.position for d in example.documents] == list(range(len(example.documents)))
        assert example.oracle_present == any(d.is_oracle for d in example.documents)
        assert verify_answer(example.cot_answer, chunks[example.chunk_id]).ok
        assert example.final_answer
    written = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    assert written["examples"] == report.examples
    assert "generation report" in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")


async def test_a_second_run_replays_the_journal_and_pays_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(questions_per_chunk=2, chunk_size=256)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        first = await RaftPipeline(client, config).run(docs, tmp_path / "run")
        before = (tmp_path / "run" / "examples.jsonl").read_bytes()
        paid = len(sim.requests)
        second = await RaftPipeline(client, config).run(docs, tmp_path / "run")
    assert len(sim.requests) == paid, "no request reaches the server on a replay"
    assert second.teacher_calls_paid == 0
    assert second.teacher_calls_replayed == first.teacher_calls_paid
    assert (tmp_path / "run" / "examples.jsonl").read_bytes() == before


async def test_resuming_with_other_settings_is_refused(sim: Simulator, tmp_path: Path) -> None:
    docs = make_docs(tmp_path)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        await RaftPipeline(client, RaftConfig(questions_per_chunk=1)).run(docs, tmp_path / "run")
        with pytest.raises(ResumeMismatchError, match="oracle_probability"):
            await RaftPipeline(
                client, RaftConfig(questions_per_chunk=1, oracle_probability=1.0)
            ).run(docs, tmp_path / "run")
        # concurrency does not shape the data, so it may change on resume
        await RaftPipeline(client, RaftConfig(questions_per_chunk=1, concurrency=1)).run(
            docs, tmp_path / "run"
        )


async def test_misbehaving_teacher_never_reaches_the_dataset(tmp_path: Path) -> None:
    docs = make_docs(tmp_path)
    config = SimulatorConfig(
        misbehaviour={"missing_answer": 0.3, "invented_quote": 0.3, "invalid_json": 0.2}
    )
    async with (
        Simulator(config) as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
    ):
        report = await RaftPipeline(
            client, RaftConfig(questions_per_chunk=3, chunk_size=256, max_answer_attempts=1)
        ).run(docs, tmp_path / "run")
    chunks = read_chunk_texts(tmp_path / "run")
    examples = read_examples(tmp_path / "run")
    answer_reasons = set(report.rejections) - set(QUESTION_REJECTION_REASONS)
    assert answer_reasons, "some answers were rejected"
    assert answer_reasons <= {"no_answer_line", "quote_not_in_oracle", "empty_answer"}
    for example in examples:
        assert verify_answer(example.cot_answer, chunks[example.chunk_id]).ok
    rejected = (tmp_path / "run" / "rejections.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rejected) == sum(report.rejections.values())
    rejected_ids = {json.loads(line)["question_id"] for line in rejected}
    assert rejected_ids.isdisjoint({e.question_id for e in examples})


async def test_budget_cap_stops_the_run_and_keeps_finished_work(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    ledger = UsageLedger(max_cost_usd=0.02)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, ledger=ledger) as client:
        report = await RaftPipeline(
            client, RaftConfig(questions_per_chunk=5, chunk_size=128, concurrency=2)
        ).run(docs, tmp_path / "run")
    assert report.status == "stopped"
    assert report.stop_reason is not None
    assert "budget" in report.stop_reason
    # the budget reserves each call's learned estimate, not its worst case: the calls in flight
    # at the stop may pass the cap by what they cost above their estimates (here a few per cent)
    assert ledger.report().total_cost_usd <= 0.02 * 1.1
    assert len(read_examples(tmp_path / "run")) == report.examples


async def test_dry_run_estimates_without_calls(tmp_path: Path) -> None:
    docs = make_docs(tmp_path)
    estimate = await estimate_cost(docs, RaftConfig(questions_per_chunk=2, chunk_size=256))
    assert estimate.chunks > 0
    assert estimate.questions == 2 * estimate.chunks
    # one critique judge call per chunk (on by default) besides the question and answer calls
    assert estimate.critique_calls == estimate.chunks
    assert estimate.teacher_calls_min == 2 * estimate.chunks + estimate.questions
    assert estimate.cost_usd is not None
    assert estimate.cost_usd_max is not None
    assert 0 < estimate.cost_usd <= estimate.cost_usd_max
    assert len(estimate.extraction_errors) == 2


def _generate_command(docs: Path, out: Path, base_url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "raftkit.cli",
        "generate",
        str(docs),
        "--out",
        str(out),
        "--base-url",
        base_url,
        "--questions",
        "3",
        "--chunk-size",
        "128",
        "--concurrency",
        "2",
        "--quiet",
    ]


def _journal_lines(run_dir: Path) -> int:
    path = run_dir / "journal.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_dataset(tmp_path: Path) -> None:
    """SIGKILL a generating process mid-run, run it again: the same dataset, nothing paid twice."""
    docs = make_docs(tmp_path)
    # Latency keeps the run going long enough to be killed in the middle of it.
    with Simulator(SimulatorConfig(latency_base=0.05)) as sim:
        env = {**os.environ, "OPENAI_API_KEY": sim.api_key}
        reference = tmp_path / "reference"
        crashed = tmp_path / "crashed"
        for run in (reference, crashed):  # no reply cut by a cap learned in another order
            seed_generous_caps(run, RaftConfig().teacher_model)
        subprocess.run(_generate_command(docs, reference, sim.base_url), env=env, check=True)
        uninterrupted_calls = len(sim.requests)
        total = _journal_lines(reference)

        sim.clear_requests()
        process = subprocess.Popen(_generate_command(docs, crashed, sim.base_url), env=env)
        deadline = time.monotonic() + 60
        while _journal_lines(crashed) < total // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        journaled_at_kill = _journal_lines(crashed)
        assert 0 < journaled_at_kill < total, "the kill landed in the middle of the run"

        subprocess.run(_generate_command(docs, crashed, sim.base_url), env=env, check=True)
        resumed_calls = len(sim.requests)

    assert (crashed / "examples.jsonl").read_bytes() == (reference / "examples.jsonl").read_bytes()
    assert _journal_lines(crashed) == total
    # Calls in flight at the kill (at most the limiter's concurrency) may be paid twice; no other.
    in_flight_bound = 2 * 3
    assert resumed_calls <= uninterrupted_calls + in_flight_bound
    report = json.loads((crashed / "report.json").read_text(encoding="utf-8"))
    assert report["teacher_calls_replayed"] >= journaled_at_kill


async def test_batch_mode_ends_with_the_online_dataset_at_the_batch_price(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(questions_per_chunk=2, chunk_size=256, seed=5)
    fast = PollPolicy(initial=0.01, maximum=0.05, timeout=60.0)
    for run in ("online", "batched"):  # no reply cut by a cap learned in another order
        seed_generous_caps(tmp_path / run, config.teacher_model)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        online = await RaftPipeline(client, config).run(docs, tmp_path / "online")
    batch_ledger = UsageLedger()
    async with OpenAIClient(
        base_url=sim.base_url, api_key=sim.api_key, ledger=batch_ledger
    ) as client:
        batched = await RaftPipeline(client, config, batch=True, batch_poll=fast).run(
            docs, tmp_path / "batched"
        )
        chat_calls = [r for r in sim.requests if r.path.endswith("/chat/completions")]
        sim.clear_requests()
        again = await RaftPipeline(client, config, batch=True, batch_poll=fast).run(
            docs, tmp_path / "batched"
        )
    online_bytes = (tmp_path / "online" / "examples.jsonl").read_bytes()
    assert (tmp_path / "batched" / "examples.jsonl").read_bytes() == online_bytes
    assert batched.examples == online.examples
    assert batched.batch_rounds >= 2  # questions first, then answers
    assert batched.teacher_calls_paid == online.teacher_calls_paid
    usage = batch_ledger.report().models
    assert sum(m.batch_calls for m in usage.values()) == batched.teacher_calls_paid
    assert len(chat_calls) == online.teacher_calls_paid, "online calls only; the batch is apart"
    assert again.batch_rounds == 0
    assert again.teacher_calls_paid == 0
    assert sim.requests == []
    # each pass counts from scratch: the report is the last pass's, not the sum of the passes
    for field in ("files", "documents", "pages", "chunks", "chunks_done", "questions"):
        assert getattr(batched, field) == getattr(online, field), field
    assert batched.extraction_errors == online.extraction_errors


class NotesExtractor:
    """A user's own format: ``.notes`` files, one document each."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def supports(self, path: Path) -> bool:
        return path.suffix == ".notes"

    async def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document]:
        self.read.append(path.name)
        text = await anyio.Path(path).read_text(encoding="utf-8")
        yield Document(id=doc_id, source=str(path), text=text)


class CountingExtractor:
    """Counts the files a built-in extractor reads."""

    def __init__(self, inner: Extractor) -> None:
        self.inner = inner
        self.read: list[str] = []

    def supports(self, path: Path) -> bool:
        return self.inner.supports(path)

    async def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document]:
        self.read.append(path.name)
        async for item in self.inner.extract(path, doc_id=doc_id):
            yield item  # type: ignore[misc]


NOTES = "Echolocation lets bats hunt insects in complete darkness by listening to echoes.\n"


async def test_extractors_reach_the_run_the_plan_and_the_settings(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    (docs / "bats.notes").write_text(NOTES, encoding="utf-8")
    config = RaftConfig(questions_per_chunk=1, chunk_size=256)
    notes = NotesExtractor()
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        pipeline = RaftPipeline(client, config, extractors=[*default_extractors(), notes])
        plan = await pipeline.plan(docs)
        report = await pipeline.run(docs, tmp_path / "run")
        without = await RaftPipeline(client, config).plan(docs)
    assert notes.read == ["bats.notes", "bats.notes"]  # the dry run and the run both read it
    assert plan.documents == without.documents + 1 == report.documents
    assert "bats.notes#0" in read_chunk_texts(tmp_path / "run")
    settings = json.loads((tmp_path / "run" / "settings.json").read_text(encoding="utf-8"))
    recorded = settings["plugins"]["extractors"]
    assert recorded[-1] == f"{__name__}.NotesExtractor"
    assert recorded[0] == "raftkit.extract.pdf.PdfExtractor"
    # the plug-ins are part of what a resumed run must share
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        with pytest.raises(ResumeMismatchError, match="plugins"):
            await RaftPipeline(client, config).run(docs, tmp_path / "run")


async def test_runs_with_the_default_plug_ins_record_none(sim: Simulator, tmp_path: Path) -> None:
    docs = make_docs(tmp_path)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        await RaftPipeline(client, RaftConfig(questions_per_chunk=1)).run(docs, tmp_path / "run")
    settings = json.loads((tmp_path / "run" / "settings.json").read_text(encoding="utf-8"))
    assert "plugins" not in settings
    endpoint = settings.pop("endpoint")
    assert endpoint == {
        "provider": "openai",
        "host": sim.base_url.split("//")[1].split("/")[0],
        "path": "/v1",
        "api_version": None,
    }
    assert settings.pop("simulated") is True  # the simulator marked its responses
    assert settings == RaftConfig(questions_per_chunk=1).data_settings()


async def test_batch_passes_after_the_first_read_chunks_jsonl(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(questions_per_chunk=2, chunk_size=256, seed=5)
    fast = PollPolicy(initial=0.01, maximum=0.05, timeout=60.0)
    counting = [CountingExtractor(e) for e in default_extractors()]
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(
            client, config, extractors=counting, batch=True, batch_poll=fast
        ).run(docs, tmp_path / "run")
    assert report.batch_rounds >= 2
    read = sorted(name for extractor in counting for name in extractor.read)
    # the walk reads each file once, in the first pass; the later passes read chunks.jsonl
    assert read == sorted(["Foilboard - Wikipedia.pdf", "蝙蝠.md", "broken.pdf", "empty.txt"])
    assert report.examples > 0


@pytest.mark.slow
async def test_the_whole_corpus(sim: Simulator, tmp_path: Path) -> None:
    """Every document of tests/data/corpus end to end: PDFs in two folders, a Chinese note and
    the licence README (one question per chunk keeps it quick)."""
    config = RaftConfig(questions_per_chunk=1, sampler="bm25", concurrency=32)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(CORPUS, tmp_path / "run")
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    pdfs = [p for p in files if p.suffix == ".pdf"]
    # the corpus as tests/data/README.md lists it
    assert [p.relative_to(CORPUS).as_posix() for p in files] == [
        "README.md",
        "bats/Desmodus draculae - Wikipedia.pdf",
        "bats/Vampire bat - Wikipedia.pdf",
        "surfing/Foilboard - Wikipedia.pdf",
        "surfing/Wakeboarding - Wikipedia.pdf",
        "surfing/冲浪.md",
    ]
    assert report.status == "completed"
    assert report.documents == len(files)
    assert report.extraction_errors == []
    assert report.pages == 2 + 5 + 2 + 3
    assert report.chunks_done == report.chunks
    assert report.examples + sum(report.rejections.values()) == report.questions
    assert report.examples >= 0.95 * report.chunks
    examples = read_examples(tmp_path / "run")
    used = {e.document_id for e in examples}
    assert used >= {p.relative_to(CORPUS).as_posix() for p in pdfs} | {"surfing/冲浪.md"}
    chunks = read_chunk_texts(tmp_path / "run")
    for example in examples:
        assert verify_answer(example.cot_answer, chunks[example.chunk_id]).ok

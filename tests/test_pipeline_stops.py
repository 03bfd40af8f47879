"""How a generation run ends: one chunk's failure never ends it; an account-level failure, a
budget stop or a cancel ends it with nothing paid lost and a true report; no output is not
success."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from data_files import FOILBOARD
from raftkit.cli import main
from raftkit.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    StructuredOutputError,
    UnprocessableEntityError,
    UsageError,
    root_cause,
)
from raftkit.extract import Extractor, default_extractors
from raftkit.llm import LLMClient, OpenAIClient
from raftkit.llm.usage import UsageLedger
from raftkit.pipeline import Progress, RaftConfig, RaftPipeline
from raftkit.pipeline.halt import classify_failure, describe
from raftkit.run_dir import RunDir
from raftkit.synth import AnswerGenerator, AnswerResult, TeacherAnswerGenerator
from raftkit.testing import Fault, Simulator
from raftkit.types import Chunk, Document, Question

pytestmark = pytest.mark.anyio

CHINESE = (
    "# 蝙蝠\n\n蝙蝠是唯一能够真正飞行的哺乳动物。它们的前肢演化成了翼。\n\n"
    "## 回声定位\n\n大多数小型蝙蝠依靠回声定位在黑暗中捕食。它们发出高频声波。\n"
)
TOPICS = [
    "Bats are the only mammals capable of true flight. Their wings are membranes of skin.",
    "Vampire bats feed on the blood of cattle and horses and share meals with roost mates.",
    "Fruit bats eat fruit and nectar and pollinate bananas, mangoes and durian.",
    "Echolocation lets insect-eating bats hunt moths in complete darkness.",
    "Surfing is riding breaking waves on a board; longboards suit small waves.",
    "Kiteboarding uses a large kite to pull the rider across the water.",
]


def make_docs(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(FOILBOARD, docs / FOILBOARD.name)
    (docs / "蝙蝠.md").write_text(CHINESE, encoding="utf-8")
    return docs


def many_docs(root: Path) -> Path:
    docs = root / "many"
    docs.mkdir()
    for i, text in enumerate(TOPICS):
        (docs / f"topic{i}.txt").write_text(text + "\n", encoding="utf-8")
    return docs


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


def leftovers(run: Path) -> list[str]:
    """Temporary files a run must never leave behind."""
    return sorted(p.name for p in run.rglob("*") if p.name.endswith((".tmp", ".partial")))


def journal_lines(run: Path) -> int:
    return len(RunDir(run).journal.read_bytes().splitlines())


def answered_chats(sim: Simulator) -> int:
    """Chat calls the server answered with 200: each was paid for."""
    return sum(1 for r in sim.requests if r.path.endswith("/chat/completions") and r.status == 200)


def sent_chats(sim: Simulator) -> int:
    """Chat calls that reached the server, answered or not (a client that hung up)."""
    return sum(1 for r in sim.requests if r.path.endswith("/chat/completions"))


def report_of(run: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(RunDir(run).report_json.read_text(encoding="utf-8"))
    return report


# ---------------------------------------------------------------- one chunk's failure


async def test_a_chunks_failed_question_call_is_recorded_and_the_corpus_completes(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    context_full = Fault.error(
        400,
        type="invalid_request_error",
        code="context_length_exceeded",
        message="This model's maximum context length is 8192 tokens.",
        path="/chat/completions",
    )
    sim.add_fault(context_full, times=2)  # one worker: the first two chunks' question calls
    config = RaftConfig(questions_per_chunk=2, chunk_size=128, concurrency=1)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(docs, tmp_path / "run")
    assert report.status == "completed"
    assert report.chunks_done == report.chunks > 2
    assert report.chunks_failed == 2
    assert report.failures == {"BadRequestError 400 context_length_exceeded": 2}
    assert report.rejections["questions_failed"] == 2
    assert report.examples > 0
    lines = RunDir(tmp_path / "run").rejections.read_text(encoding="utf-8").splitlines()
    failed = [json.loads(line) for line in lines if "questions_failed" in line]
    assert len(failed) == 2
    assert all("context_length_exceeded" in f["cause"] for f in failed)
    assert "Calls that failed for good" in report.markdown()


class FailingFirstAnswer:
    """The teacher's answerer, except that the first answer of each chunk fails (a 422)."""

    def __init__(self, client: LLMClient) -> None:
        self.inner = TeacherAnswerGenerator(client, "gpt-4o")
        self.failed: set[str] = set()

    async def generate(self, question: Question, oracle: Chunk, *, sample: int = 0) -> AnswerResult:
        if oracle.id not in self.failed:
            self.failed.add(oracle.id)
            raise UnprocessableEntityError(
                "Invalid value for 'messages'.", status_code=422, code="invalid_value"
            )
        return await self.inner.generate(question, oracle, sample=sample)


async def test_a_failed_answer_is_recorded_and_the_other_questions_go_on(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(questions_per_chunk=3, chunk_size=128)
    answerers: list[FailingFirstAnswer] = []

    def answerer(client: LLMClient) -> AnswerGenerator:
        answerers.append(FailingFirstAnswer(client))
        return answerers[-1]

    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config, answerer=answerer).run(docs, tmp_path / "run")
    assert report.status == "completed"
    assert report.chunks_done == report.chunks
    assert report.failures == {"UnprocessableEntityError 422 invalid_value": report.chunks}
    assert report.rejections["answer_failed"] == report.chunks
    assert report.examples + sum(report.rejections.values()) == report.questions
    assert report.examples > 0


# ---------------------------------------------------------------- account-level failures


async def test_an_account_level_failure_stops_the_run_and_loses_nothing_paid(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    run = tmp_path / "run"

    def progress(p: Progress) -> None:
        if p.chunks_done == 1:
            sim.set_insufficient_quota()  # the account runs dry in the middle of the run

    config = RaftConfig(questions_per_chunk=3, chunk_size=128, concurrency=3)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        with pytest.raises(QuotaExceededError):
            await RaftPipeline(client, config, progress=progress).run(docs, run)
    report = report_of(run)
    assert report["status"] == "failed"
    assert report["stop_reason"].startswith("QuotaExceededError: 429 insufficient_quota")
    assert "Group" not in report["stop_reason"]
    assert journal_lines(run) == answered_chats(sim) > 0, "every paid response is journaled"
    assert report["files"] == 2
    assert report["documents"] == 2
    assert report["chunks"] > 0
    assert leftovers(run) == []


class SlowExtractor:
    """Reads text files slowly, so that a stop lands while the corpus is still being walked."""

    def __init__(self, inner: Extractor) -> None:
        self.inner = inner
        self.read = 0

    def supports(self, path: Path) -> bool:
        return self.inner.supports(path)

    async def extract(self, path: Path, *, doc_id: str) -> AsyncIterator[Document]:
        if self.read:
            await anyio.sleep(1.5)
        self.read += 1
        async for item in self.inner.extract(path, doc_id=doc_id):
            yield item  # type: ignore[misc]


async def test_a_budget_stop_journals_every_paid_response_and_reports_the_walk(
    tmp_path: Path,
) -> None:
    docs = many_docs(tmp_path)
    run = tmp_path / "run"
    slow = SlowExtractor(default_extractors()[1])
    ledger = UsageLedger(max_cost_usd=0.01)
    config = RaftConfig(questions_per_chunk=3, chunk_size=128, concurrency=4)
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, ledger=ledger) as client,
    ):
        sim.add_random_fault(Fault.latency(0.05), 1.0)
        report = await RaftPipeline(client, config, extractors=[slow]).run(docs, run)
        paid, sent = answered_chats(sim), sent_chats(sim)
    assert report.status == "stopped"
    assert report.stop_reason is not None
    assert report.stop_reason.startswith("budget")
    assert journal_lines(run) == paid > 0, "nothing paid for is lost"
    assert sent == paid, "the calls in flight at the stop were answered, not abandoned"
    written = report_of(run)
    assert 0 < written["files"] == written["documents"] == slow.read < len(TOPICS)
    assert written["chunks"] == len(RunDir(run).chunks.read_text("utf-8").splitlines()) > 0
    assert written["examples"] == len(RunDir(run).examples.read_text("utf-8").splitlines())
    assert leftovers(run) == []


async def test_a_cancelled_run_says_interrupted(sim: Simulator, tmp_path: Path) -> None:
    docs = make_docs(tmp_path)
    run = tmp_path / "run"
    config = RaftConfig(questions_per_chunk=3, chunk_size=128, concurrency=2)
    async with (
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
        anyio.create_task_group() as tg,
    ):

        def progress(p: Progress) -> None:
            tg.cancel_scope.cancel()  # Ctrl-C, as anyio delivers it: a cancellation

        tg.start_soon(RaftPipeline(client, config, progress=progress).run, docs, run)
    report = report_of(run)
    assert report["status"] == "interrupted"
    assert "Cancel" not in report["stop_reason"]
    assert "run it again" in report["stop_reason"]
    assert report["files"] == 2
    assert report["chunks"] == len(RunDir(run).chunks.read_text("utf-8").splitlines()) > 0
    assert leftovers(run) == []


# ---------------------------------------------------------------- no output


async def test_a_run_whose_answers_are_all_rejected_is_not_a_success(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    sim.set_misbehaviour("invented_quote", 1.0)
    config = RaftConfig(questions_per_chunk=2, chunk_size=256, max_answer_attempts=1)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(docs, tmp_path / "run")
    assert report.status == "failed"
    assert report.examples == 0
    # every answer is rejected; the critique's filters may drop a question before it is asked
    assert report.rejections["quote_not_in_oracle"] > 0
    assert sum(report.rejections.values()) == report.questions
    counted = ", ".join(f"{reason} {n}" for reason, n in sorted(report.rejections.items()))
    assert report.stop_reason == (
        f"no examples: all {report.questions} questions were rejected "
        f"({counted}); see rejections.jsonl"
    )


async def test_a_run_without_a_usable_question_is_not_a_success(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    sim.add_random_fault(Fault.error(400, code="context_length_exceeded"), 1.0)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, RaftConfig(chunk_size=256)).run(docs, tmp_path / "r")
    assert report.status == "failed"
    assert report.stop_reason is not None
    assert report.stop_reason.startswith(f"no usable questions from {report.chunks} chunk(s)")
    assert f"BadRequestError 400 context_length_exceeded {report.chunks}" in report.stop_reason


def test_the_command_exits_non_zero_on_zero_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = make_docs(tmp_path)
    with Simulator() as sim:
        sim.set_misbehaviour("invented_quote", 1.0)
        monkeypatch.setenv("OPENAI_API_KEY", sim.api_key)
        argv = ["generate", str(docs), "--out", str(tmp_path / "run"), "--quiet"]
        code = main([*argv, "--base-url", sim.base_url, "--max-answer-attempts", "1"])
    assert code == 1
    assert "failed: no examples" in capsys.readouterr().err


# ---------------------------------------------------------------- empty input


def test_a_folder_without_text_is_refused_naming_what_was_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "slides.pptx").write_bytes(b"PK\x03\x04 not really")
    (docs / "data.xyz").write_text("?", encoding="utf-8")
    (docs / "empty.txt").write_text("   \n", encoding="utf-8")
    for extra in ([], ["--dry-run"]):
        argv = ["generate", str(docs), "--out", str(tmp_path / "run"), "--provider", "simulator"]
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert "nothing to generate from" in err
        assert "data.xyz" in err
        assert "slides.pptx" in err
        assert "empty.txt" in err  # could not be extracted: no text
        assert ".pdf, .txt" in err
        assert ".jsonl" in err


def test_export_of_a_run_without_examples_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.examples.write_text("\n", encoding="utf-8")
    assert main(["export", str(run.root)]) == 2
    assert "no examples" in capsys.readouterr().err
    assert not run.dataset.exists()


async def test_a_wrong_key_stops_the_run_with_the_root_cause(
    sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    async with OpenAIClient(base_url=sim.base_url, api_key="sk-wrong") as client:
        with pytest.raises(AuthenticationError):
            await RaftPipeline(client, RaftConfig(chunk_size=128)).run(docs, tmp_path / "run")
    report = report_of(tmp_path / "run")
    assert report["status"] == "failed"
    assert report["stop_reason"].startswith("AuthenticationError: 401 invalid_api_key")
    assert report["rejections"] == {}, "not one rejection per chunk: the run stopped"
    assert leftovers(tmp_path / "run") == []


async def test_an_endpoint_that_cannot_be_reached_stops_the_run(tmp_path: Path) -> None:
    docs = make_docs(tmp_path)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with OpenAIClient(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", max_retries=0
    ) as client:
        with pytest.raises(APIConnectionError):
            await RaftPipeline(client, RaftConfig(chunk_size=128)).run(docs, tmp_path / "run")
    report = report_of(tmp_path / "run")
    assert report["status"] == "failed"
    assert report["stop_reason"].startswith("APIConnectionError")
    assert report["chunks_done"] == 0


def _status(cls: type[APIStatusError], status: int, code: str | None = None) -> APIStatusError:
    return cls("refused", status_code=status, code=code)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_status(BadRequestError, 400, "context_length_exceeded"), "chunk"),
        (_status(UnprocessableEntityError, 422), "chunk"),
        (_status(RateLimitError, 429, "rate_limit_exceeded"), "chunk"),
        (_status(InternalServerError, 503), "chunk"),
        (StructuredOutputError("no JSON", attempts=3, last_output="{"), "chunk"),
        (APITimeoutError("read timeout"), "chunk"),
        (_status(AuthenticationError, 401, "invalid_api_key"), "stop"),
        (_status(PermissionDeniedError, 403), "stop"),
        (_status(QuotaExceededError, 429, "insufficient_quota"), "stop"),
        (_status(NotFoundError, 404, "model_not_found"), "stop"),
        (APIConnectionError("connection refused"), "stop"),
        (BudgetExceededError("spent", spent_usd=1.0, limit_usd=1.0), "stop"),
        (UsageError("a bad argument"), "fail"),
        (TypeError("a bug in a plug-in"), "fail"),
        (ExceptionGroup("g", [_status(AuthenticationError, 401)]), "stop"),
    ],
)
def test_what_each_failure_means_for_the_run(error: BaseException, kind: str) -> None:
    assert classify_failure(error) == kind


def test_the_root_cause_comes_out_of_exception_groups() -> None:
    cause = _status(AuthenticationError, 401, "invalid_api_key")
    group = BaseExceptionGroup("outer", [ExceptionGroup("inner", [cause])])
    assert root_cause(group) is cause
    assert describe(group) == "AuthenticationError: 401 invalid_api_key: refused"

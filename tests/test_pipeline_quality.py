"""Question quality in a generation run, end to end against the simulator: critique,
de-duplication, duplicate chunks in one split group, refusals, multi-hop questions, question
types, and the command line's options for them."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from raftkit.cli import main
from raftkit.dataset import (
    ChatExporter,
    EvalExporter,
    RaftReferenceExporter,
    leaked_groups,
    split_examples,
)
from raftkit.errors import NotFoundError, ResumeMismatchError
from raftkit.evaluate import refusal_answer_of
from raftkit.llm import OpenAIClient
from raftkit.pipeline import RaftConfig, RaftPipeline, estimate_cost
from raftkit.reference_data import default_models
from raftkit.synth import (
    MULTI_HOP_TYPE,
    QUESTION_REJECTION_REASONS,
    REJECTION_REASONS,
    AbstentionRules,
    CritiqueRules,
    DedupRules,
    QuestionMix,
    verify_answer,
)
from raftkit.testing import Simulator, SimulatorConfig
from raftkit.testing._behaviour import BAD_QUESTION_KINDS, ModelBehaviour
from raftkit.types import DEFAULT_REFUSAL_ANSWER, RaftExample

pytestmark = pytest.mark.anyio

BATS = (
    "# Vampire bats\n\n"
    "The common vampire bat lives in Mexico, Brazil and Argentina. It feeds on the blood of "
    "cattle and horses at night. Heat sensors on its nose show where blood flows near the skin. "
    "A vampire bat drinks about half its weight in blood each night. Its saliva holds "
    "Draculin, a protein that keeps blood from clotting. Colonies roost in caves, hollow trees "
    "and old mines, often with thousands of bats.\n"
)
FARMS = (
    "# Cattle ranching\n\n"
    "Ranchers in Mexico and Brazil lose cattle to rabies that the common vampire bat carries. "
    "Vaccination campaigns began in Argentina in the 1970s. Draculin from bat saliva is studied "
    "as a drug against strokes. Fences and lights keep some herds safe at night. Many ranches "
    "keep records of bites to find the roosts nearby.\n"
)
SURF = (
    "# Surfing\n\n"
    "Surfing began in Hawaii, where riders stood on long wooden boards. Modern boards are made "
    "of polyurethane foam and fibreglass. A hydrofoil lifts a foilboard above the water, so it "
    "glides with less drag. Competitions judge the difficulty of each manoeuvre on the wave. "
    "Beginners learn on soft longboards in small waves.\n"
)
CHINESE = (
    "# 蝙蝠\n\n蝙蝠是唯一能够真正飞行的哺乳动物。它们的前肢演化成了翼。大多数小型蝙蝠依靠回声"
    "定位在黑暗中捕食。它们发出高频声波，再根据回声判断猎物的位置。\n"
)


def make_docs(root: Path, *, duplicate: bool = False) -> Path:
    docs = root / "docs"
    docs.mkdir()
    (docs / "bats.md").write_text(BATS, encoding="utf-8")
    (docs / "farms.md").write_text(FARMS, encoding="utf-8")
    (docs / "surf.md").write_text(SURF, encoding="utf-8")
    (docs / "蝙蝠.md").write_text(CHINESE, encoding="utf-8")
    if duplicate:
        # the bats paragraph again, inside another page
        (docs / "zoo.md").write_text(
            "# Zoo guide\n\nThe night house opens at six and closes at ten in the evening.\n\n"
            + BATS.split("\n\n", 1)[1],
            encoding="utf-8",
        )
    return docs


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_examples(run: Path) -> list[RaftExample]:
    lines = (run / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    return [RaftExample.model_validate_json(line) for line in lines]


def chunk_texts(run: Path) -> dict[str, str]:
    return {str(c["id"]): str(c["text"]) for c in read_jsonl(run / "chunks.jsonl")}


@pytest.fixture
async def lazy() -> AsyncIterator[Simulator]:
    """A teacher that writes bad questions of every kind the simulator knows."""
    behaviour = ModelBehaviour(bad_questions=0.5, bad_question_kinds=BAD_QUESTION_KINDS)
    teacher = default_models().teacher
    async with Simulator(SimulatorConfig(model_behaviour={teacher: behaviour})) as simulator:
        yield simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


async def test_bad_questions_never_reach_the_dataset_and_a_rerun_pays_nothing(
    anyio_backend: str, lazy: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    run = tmp_path / "run"
    config = RaftConfig(questions_per_chunk=4, chunk_size=64, chunk_overlap=0, concurrency=3)
    async with OpenAIClient(base_url=lazy.base_url, api_key=lazy.api_key) as client:
        report = await RaftPipeline(client, config).run(docs, run)
        first = {name: (run / name).read_bytes() for name in ("examples.jsonl", "rejections.jsonl")}
        paid = len(lazy.requests)
        again = await RaftPipeline(client, config).run(docs, run)
    assert len(lazy.requests) == paid, "a rerun makes no new call"
    assert again.teacher_calls_paid == 0
    assert (run / "examples.jsonl").read_bytes() == first["examples.jsonl"]
    # rejections are written as they come: the same lines, maybe in another order
    lines = (run / "rejections.jsonl").read_bytes().splitlines()
    assert sorted(lines) == sorted(first["rejections.jsonl"].splitlines())

    examples = read_examples(run)
    for example in examples:
        assert not re.search(r"\bthe text\b|文中", example.question)
        assert not re.fullmatch(r"What is known about \w+\?", example.question)
        assert example.metadata["critique"]["answerable"] >= 3
    rejected = read_jsonl(run / "rejections.jsonl")
    stage = [r for r in rejected if r.get("stage") == "question"]
    reasons = {str(r["reason"]) for r in stage}
    # the filters catch references and copies; the judge, vague and unanswerable ones (the
    # lazy teacher's repeated "What is the main point?" is unanswerable before it is a duplicate)
    assert {"question_text_reference", "question_copies_chunk"} <= reasons
    assert reasons & {"question_not_specific", "question_not_answerable"}
    assert reasons <= set(QUESTION_REJECTION_REASONS)
    for record in rejected:
        assert record["reason"] in (*REJECTION_REASONS, *QUESTION_REJECTION_REASONS)
        if str(record["reason"]) in ("question_not_specific", "question_not_answerable"):
            scores = record["scores"]
            assert isinstance(scores, dict)
            assert set(scores) == {"self_contained", "answerable", "specific", "language"}
    # every question is an example or a rejection; the report counts them by reason
    assert report.questions == len(examples) + len(rejected)
    assert sum(report.rejections.values()) == len(rejected)
    quality = report.quality
    assert quality.critique_calls == report.chunks
    assert quality.questions_judged > 0
    assert quality.critique_prompt_tokens + quality.critique_completion_tokens > 0
    assert quality.duplicate_questions == report.rejections.get("duplicate_question", 0)
    assert again.quality.critique_calls == quality.critique_calls, "replays are counted too"
    assert "## Question quality" in (run / "report.md").read_text(encoding="utf-8")


async def test_the_critique_can_be_turned_off(
    anyio_backend: str, lazy: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(
        questions_per_chunk=3,
        chunk_size=64,
        chunk_overlap=0,
        critique=CritiqueRules(mode="off"),
        dedup=DedupRules(questions=False),
    )
    async with OpenAIClient(base_url=lazy.base_url, api_key=lazy.api_key) as client:
        report = await RaftPipeline(client, config).run(docs, tmp_path / "run")
    assert report.quality.critique_calls == 0
    assert not set(report.rejections) & set(QUESTION_REJECTION_REASONS)
    structured = [r for r in lazy.requests if "ratings" in json.dumps(r.json or {})]
    assert structured == []


async def test_a_paragraph_in_two_documents_is_one_split_group_and_asked_once(
    anyio_backend: str, sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path, duplicate=True)
    run = tmp_path / "run"
    config = RaftConfig(questions_per_chunk=3, chunk_size=512, distractors=3, seed=2)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(docs, run)
    texts = chunk_texts(run)
    bats = next(i for i in texts if i.startswith("bats.md"))
    zoo = next(i for i in texts if i.startswith("zoo.md"))
    assert report.quality.duplicate_chunk_groups == 1
    assert report.quality.chunks_in_duplicate_groups == 2
    examples = read_examples(run)
    groups = {e.chunk_id: e.split_group for e in examples if e.chunk_id in (bats, zoo)}
    assert set(groups.values()) == {bats}, "both chunks carry the first one's group"
    assert all(e.split_group is None for e in examples if e.chunk_id not in (bats, zoo))
    # the copy never stands in as a distractor for the original (it holds the answer)
    for example in examples:
        shown = {d.chunk_id for d in example.documents}
        if example.chunk_id in (bats, zoo):
            other = zoo if example.chunk_id == bats else bats
            assert other not in shown
    # the zoo page's copies of the bats questions were dropped, the bats ones kept
    duplicates = [
        r for r in read_jsonl(run / "rejections.jsonl") if r["reason"] == "duplicate_question"
    ]
    assert duplicates
    assert {r["chunk_id"] for r in duplicates} == {zoo}
    asked_of_bats = {e.question_id for e in examples if e.chunk_id == bats} | {
        str(r["question_id"]) for r in read_jsonl(run / "rejections.jsonl") if r["chunk_id"] == bats
    }
    assert {r["duplicate_of"] for r in duplicates} <= asked_of_bats
    for group_by in ("chunk", "document"):
        split = split_examples(examples, ratios=(0.5, 0.25, 0.25), seed=0, group_by=group_by)
        sides = {
            e.split
            for e in [*split.train, *split.validation, *split.test]
            if e.chunk_id in (bats, zoo)
        }
        assert len(sides) == 1, f"grouped by {group_by}"
        assert not leaked_groups(split, lambda e: e.split_group or e.chunk_id)


async def test_refusals_replace_answers_without_the_oracle_and_cost_no_call(
    anyio_backend: str, sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    reports = {}
    for spec in ("paper", "refuse", "mix:0.5"):
        config = RaftConfig(
            questions_per_chunk=4,
            chunk_size=64,
            chunk_overlap=0,
            oracle_probability=0.5,
            no_oracle_answer=AbstentionRules.parse(spec),
            critique=CritiqueRules(mode="filters"),
        )
        async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
            reports[spec] = await RaftPipeline(client, config).run(docs, tmp_path / spec)
    paper = read_examples(tmp_path / "paper")
    refused = read_examples(tmp_path / "refuse")
    mixed = read_examples(tmp_path / "mix:0.5")
    assert all(e.answer_kind == "answer" for e in paper)
    assert any(not e.oracle_present for e in paper)
    for example in refused:
        if example.oracle_present:
            assert example.answer_kind == "answer"
            continue
        assert example.answer_kind == "refusal"
        assert example.final_answer == DEFAULT_REFUSAL_ANSWER
        assert example.quotes == []
        assert "##begin_quote##" not in example.cot_answer
        assert example.cot_answer.endswith(f"<ANSWER>: {DEFAULT_REFUSAL_ANSWER}")
        assert example.metadata["refusal"] == "template"
        if example.document_id == "蝙蝠.md":
            assert "文档" in example.cot_answer
    # the same questions and contexts: only the answers of oracle-less examples differ
    assert [(e.id, e.oracle_present) for e in refused] == [(e.id, e.oracle_present) for e in paper]
    refusals = sum(e.answer_kind == "refusal" for e in refused)
    assert refusals == reports["refuse"].quality.refusals > 0
    assert reports["refuse"].teacher_calls_paid < reports["paper"].teacher_calls_paid
    without = [e for e in mixed if not e.oracle_present]
    kinds = {e.answer_kind for e in without}
    assert kinds == {"answer", "refusal"}, "a share refuses, the rest keep the paper's answer"
    assert refusal_answer_of(refused) == DEFAULT_REFUSAL_ANSWER


async def test_multi_hop_questions_need_both_chunks_which_share_a_split_group(
    anyio_backend: str, sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    run = tmp_path / "run"
    config = RaftConfig(
        questions_per_chunk=2, chunk_size=512, multi_hop=1.0, oracle_probability=0.5, seed=4
    )
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(docs, run)
    texts = chunk_texts(run)
    examples = read_examples(run)
    multi = [e for e in examples if e.question_type == MULTI_HOP_TYPE]
    assert multi, "the bats and ranching pages share names: a pair"
    assert report.quality.multi_hop_examples == len(multi)
    assert report.quality.multi_hop_calls >= report.quality.multi_hop_questions >= len(multi)
    for example in multi:
        first, second = example.metadata["oracle_chunk_ids"]
        assert example.chunk_id == first
        assert {first, second} == {
            next(i for i in texts if i.startswith("bats.md")),
            next(i for i in texts if i.startswith("farms.md")),
        }
        oracles = {d.chunk_id for d in example.documents if d.is_oracle}
        assert oracles == ({first, second} if example.oracle_present else set())
        if not example.oracle_present:
            assert not {first, second} & {d.chunk_id for d in example.documents}
        check = verify_answer(example.cot_answer, [texts[first], texts[second]])
        assert check.ok
        assert {c.oracle for c in check.quote_checks} == {0, 1}
        group = example.split_group
        assert group is not None
        partners = [e for e in examples if e.chunk_id in (first, second)]
        assert {e.split_group for e in partners} == {group}
    assert any(e.oracle_present for e in multi) or len(multi) == 1
    # exports still work on two-oracle examples
    for exporter in (ChatExporter(), RaftReferenceExporter(), EvalExporter()):
        assert all(exporter.row(e) for e in multi)


class FailingMultiHopCalls(httpx.AsyncBaseTransport):
    """The network, except that every call writing a multi-hop question fails with a 422."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.failed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if b"BOTH documents" in request.content:
            self.failed += 1
            error = {"message": "Invalid 'messages'.", "type": "invalid_request_error"}
            return httpx.Response(422, json={"error": {**error, "code": "invalid_value"}})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_failed_multi_hop_call_is_its_own_rejection_not_a_failed_chunk(
    anyio_backend: str, sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    run = tmp_path / "run"
    config = RaftConfig(questions_per_chunk=2, chunk_size=512, multi_hop=1.0, seed=4)
    transport = FailingMultiHopCalls()
    async with (
        httpx.AsyncClient(transport=transport) as http,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, http_client=http) as client,
    ):
        report = await RaftPipeline(client, config).run(docs, run)
    assert transport.failed > 0
    assert report.status == "completed"
    assert report.chunks_failed == 0, "every chunk's own questions were asked and answered"
    assert report.rejections.get("multi_hop_failed") == transport.failed
    assert "questions_failed" not in report.rejections
    assert report.failures == {"UnprocessableEntityError 422 invalid_value": transport.failed}
    # a failed multi-hop call asked no question: a rejection that is not one of the questions
    assert report.examples + sum(report.rejections.values()) - transport.failed == report.questions
    rejected = [json.loads(line) for line in (run / "rejections.jsonl").read_text().splitlines()]
    hops = [r for r in rejected if r["reason"] == "multi_hop_failed"]
    assert len(hops) == transport.failed
    assert all(r["question"] is None and "422" in r["cause"] for r in hops)


async def test_question_types_are_recorded_counted_and_part_of_the_settings(
    anyio_backend: str, sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    run = tmp_path / "run"
    mix = QuestionMix.parse("factoid=0.5,explanation=0.3,comparison=0.2", personas=["a vet"])
    config = RaftConfig(questions_per_chunk=5, chunk_size=512, question_mix=mix)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(docs, run)
        other = RaftConfig(
            questions_per_chunk=5, chunk_size=512, question_mix=QuestionMix.parse("factoid=1")
        )
        with pytest.raises(ResumeMismatchError, match="question_mix"):
            await RaftPipeline(client, other).run(docs, run)
    examples = read_examples(run)
    assert {e.question_type for e in examples} == {"factoid", "explanation", "comparison"}
    assert all(e.metadata["persona"] == "a vet" for e in examples)
    by_type = report.quality.examples_by_type
    assert sum(by_type.values()) == len(examples)
    assert sum(report.quality.questions_by_type.values()) == report.questions
    settings = json.loads((run / "settings.json").read_text(encoding="utf-8"))
    assert settings["question_mix"]["personas"] == ["a vet"]
    assert "| question type | questions | examples |" in (run / "report.md").read_text("utf-8")


async def test_embedding_similarity_embeds_each_chunks_questions_once(
    anyio_backend: str, sim: Simulator, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(questions_per_chunk=3, chunk_size=512, dedup=DedupRules(similarity=0.999))
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(docs, tmp_path / "run")
    embeddings = [r for r in sim.requests if r.path.endswith("/embeddings")]
    assert len(embeddings) == report.chunks == report.quality.dedup_embedding_calls


async def test_the_dry_run_counts_the_judge_and_multi_hop_calls(
    anyio_backend: str, tmp_path: Path
) -> None:
    docs = make_docs(tmp_path)
    plain = await estimate_cost(docs, RaftConfig(critique=CritiqueRules(mode="off")))
    judged = await estimate_cost(docs, RaftConfig())
    hops = await estimate_cost(docs, RaftConfig(multi_hop=0.5))
    refused = await estimate_cost(
        docs, RaftConfig(no_oracle_answer=AbstentionRules.parse("refuse"))
    )
    assert plain.critique_calls == 0
    assert judged.critique_calls == judged.chunks
    assert judged.teacher_calls_min == plain.teacher_calls_min + judged.chunks
    assert judged.prompt_tokens > plain.prompt_tokens
    assert hops.multi_hop_calls == 2 * round(0.5 * hops.chunks)
    assert refused.teacher_calls_min < judged.teacher_calls_min
    assert refused.prompt_tokens < judged.prompt_tokens


def test_the_command_line_takes_every_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    docs = make_docs(tmp_path)
    run = tmp_path / "run"
    code = main(
        [
            "generate",
            str(docs),
            "--out",
            str(run),
            "--questions",
            "2",
            "--quiet",
            "--critique",
            "--critique-threshold",
            "4",
            "--critique-context",
            "chunk",
            "--dedup-similarity",
            "0.99",
            "--duplicate-chunk-overlap",
            "0.6",
            "--no-oracle-answer",
            "mix:0.5",
            "--refusal-answer",
            "Not in the documents.",
            "--multi-hop",
            "0.5",
            "--question-mix",
            "factoid=0.5,explanation=0.5",
            "--personas",
            "a nurse;a pilot",
        ]
    )
    assert code == 0, capsys.readouterr().err
    settings = json.loads((run / "settings.json").read_text(encoding="utf-8"))
    assert settings["critique"]["threshold"] == 4
    assert settings["critique"]["context"] == "chunk"
    assert settings["dedup"] == {"questions": True, "similarity": 0.99, "chunk_overlap": 0.6}
    assert settings["no_oracle_answer"] == {
        "mode": "mix",
        "share": 0.5,
        "phrase": "Not in the documents.",
    }
    assert settings["multi_hop"] == 0.5
    assert settings["question_mix"]["personas"] == ["a nurse", "a pilot"]
    assert main(["generate", str(docs), "--out", str(run), "--quiet", "--no-critique"]) != 0
    assert "critique" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--no-oracle-answer", "sometimes"], "paper, refuse or mix:SHARE"),
        (["--question-mix", "factoid=0.2"], "sum to 1"),
        (["--personas", "a nurse"], "--personas needs --question-mix"),
        (["--multi-hop", "1.5"], "multi_hop"),
        (["--critique-threshold", "9"], "threshold"),
    ],
)
def test_bad_options_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    docs = make_docs(tmp_path)
    code = main(["generate", str(docs), "--out", str(tmp_path / "run"), "--dry-run", *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


async def test_a_judge_the_endpoint_lacks_stops_the_run_without_a_hang(
    anyio_backend: str, sim: Simulator, tmp_path: Path
) -> None:
    """A 404 on the judge call ends the run like any account-level failure; the chunks left in
    the queue still take their de-duplication turn, so no worker waits for them for ever."""
    docs = make_docs(tmp_path, duplicate=True)
    run = tmp_path / "run"
    config = RaftConfig(
        questions_per_chunk=3,
        chunk_size=64,
        chunk_overlap=0,
        concurrency=3,
        critique=CritiqueRules(model="no-such-judge"),
    )
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        with anyio.fail_after(60), pytest.raises(NotFoundError):
            await RaftPipeline(client, config).run(docs, run)
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed"
    assert "no-such-judge" in report["stop_reason"] or "404" in report["stop_reason"]
    assert report["examples"] == 0
    assert not list(run.glob("*.partial"))

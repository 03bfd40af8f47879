"""Generation at default settings: capped calls, cache keys, several answers a call, the budget.

Against the loopback simulator: every teacher call of a run carries a learned cap (or none
under ``max_tokens_policy="server-default"``) and its chunk's ``prompt_cache_key``; caps do not
change the data; several answers a call make fewer calls for the same verified examples;
what was learned is kept in the run directory and shown in the report; prompt caching is
measured and priced; a budget a little below a run's cost still ends with most examples; and
a run killed and resumed with other learned caps pays for nothing twice and writes the same
dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from caps_support import seed_generous_caps
from data_files import FOILBOARD, VAMPIRE_BAT
from raftkit.llm import CompletionCaps, OpenAIClient
from raftkit.llm.usage import PriceTable, UsageLedger
from raftkit.pipeline import RaftConfig, RaftPipeline
from raftkit.synth import verify_answer
from raftkit.synth.prompts import chunk_cache_key
from raftkit.testing import Simulator, SimulatorConfig
from raftkit.types import RaftExample

pytestmark = pytest.mark.anyio

CHINESE = (
    "# 蝙蝠\n\n蝙蝠是唯一能够真正飞行的哺乳动物。它们的前肢演化成了翼。\n\n"
    "## 回声定位\n\n大多数小型蝙蝠依靠回声定位在黑暗中捕食。它们发出高频声波。\n"
)


def make_docs(root: Path, *pdfs: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    for pdf in pdfs or (FOILBOARD,):
        shutil.copy(pdf, docs / pdf.name)
    (docs / "蝙蝠.md").write_text(CHINESE, encoding="utf-8")
    return docs


def examples(run_dir: Path) -> list[RaftExample]:
    lines = (run_dir / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    return [RaftExample.model_validate_json(line) for line in lines]


def chunk_texts(run_dir: Path) -> dict[str, str]:
    lines = (run_dir / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["id"]: json.loads(line)["text"] for line in lines}


def chat_bodies(sim: Simulator) -> list[dict[str, Any]]:
    return [r.json for r in sim.requests if r.path.endswith("/chat/completions")]


async def test_every_call_is_capped_and_keyed_by_chunk_and_caps_do_not_change_the_data(
    tmp_path: Path,
) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(questions_per_chunk=3, chunk_size=256, seed=1)
    runs: dict[str, list[dict[str, Any]]] = {}
    async with Simulator() as sim:
        for policy in ("adaptive", "server-default"):
            sim.clear_requests()
            policed = config.model_copy(update={"max_tokens_policy": policy})
            async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
                report = await RaftPipeline(client, policed).run(docs, tmp_path / policy)
            assert report.status == "completed"
            assert report.max_tokens_policy == policy
            runs[policy] = chat_bodies(sim)
    field = "max_tokens"  # what an OpenAI-compatible server at another URL is sent
    assert runs["adaptive"]
    assert all(isinstance(body.get(field), int) for body in runs["adaptive"])
    assert not any(field in body for body in runs["server-default"])
    # one cache key per chunk, on every call made for that chunk
    keys = {chunk_cache_key(chunk_id) for chunk_id in chunk_texts(tmp_path / "adaptive")}
    used = Counter(body["prompt_cache_key"] for body in runs["adaptive"])
    assert set(used) == keys
    assert all(count >= 1 + config.questions_per_chunk for count in used.values())
    # the caps cut nothing the data needs: the same questions and answers either way
    adaptive = [(e.question, e.cot_answer) for e in examples(tmp_path / "adaptive")]
    assert adaptive == [(e.question, e.cot_answer) for e in examples(tmp_path / "server-default")]


async def test_several_answers_a_call_make_fewer_calls_for_the_same_verified_examples(
    tmp_path: Path,
) -> None:
    docs = make_docs(tmp_path)
    counts: dict[int, tuple[int, int, int]] = {}
    async with Simulator() as sim:
        for k in (1, 3):
            sim.clear_requests()
            config = RaftConfig(questions_per_chunk=3, chunk_size=256, answers_per_call=k, seed=2)
            async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
                report = await RaftPipeline(client, config).run(docs, tmp_path / f"k{k}")
            assert report.status == "completed"
            texts = chunk_texts(tmp_path / f"k{k}")
            for example in examples(tmp_path / f"k{k}"):
                assert verify_answer(example.cot_answer, texts[example.chunk_id]).ok
            counts[k] = (report.examples, len(chat_bodies(sim)), report.prompt_tokens)
    examples_1, calls_1, prompt_1 = counts[1]
    examples_3, calls_3, prompt_3 = counts[3]
    assert examples_3 >= examples_1 - 1
    assert calls_3 < calls_1
    assert prompt_3 < 0.75 * prompt_1


async def test_learned_caps_are_kept_in_the_run_and_shown_in_the_report(tmp_path: Path) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(questions_per_chunk=4, chunk_size=128)
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
    ):
        pipeline = RaftPipeline(client, config)
        report = await pipeline.run(docs, tmp_path / "run")
        saved = CompletionCaps()
        assert saved.load(tmp_path / "run" / "completion_caps.json")
        kinds = {(s.kind, s.replies) for s in saved.stats()}
        assert {kind for kind, _ in kinds} == {"questions", "critique", "answers"}
        assert kinds == {(c["kind"], c["replies"]) for c in report.completion_caps}
        answers = next(c for c in report.completion_caps if c["kind"] == "answers")
        assert answers["cap_per_unit"] is not None
        markdown = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
        assert "Completion caps (adaptive)" in markdown
        assert "saved by prompt caching" in markdown
        # a resumed run starts from what was learned
        resumed = RaftPipeline(client, config)
        await resumed.run(docs, tmp_path / "run")
        before = {s.kind: s.replies for s in saved.stats()}
        after = {s.kind: s.replies for s in resumed.caps.stats()}
        assert all(after[kind] >= before[kind] for kind in before)


async def test_prompt_caching_is_measured_and_priced(tmp_path: Path) -> None:
    # chunks long enough that the rules and the oracle make a prefix of 1,024 tokens or more
    docs = make_docs(tmp_path, VAMPIRE_BAT)
    config = RaftConfig(teacher_model="gpt-4o-mini", questions_per_chunk=4, chunk_size=1600)
    ledger = UsageLedger()
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key, ledger=ledger) as client,
    ):
        report = await RaftPipeline(client, config).run(docs, tmp_path / "run")
    assert report.cached_tokens > 0
    price = PriceTable().lookup("gpt-4o-mini")
    assert price is not None
    assert price.input is not None
    assert price.cached_input is not None
    expected = report.cached_tokens * (price.input - price.cached_input) / 1e6
    assert report.saved_by_caching_usd == pytest.approx(expected)
    assert ledger.report().saved_by_caching_usd == pytest.approx(expected)


async def test_a_budget_a_little_below_the_runs_cost_ends_with_most_examples(
    tmp_path: Path,
) -> None:
    docs = make_docs(tmp_path)
    config = RaftConfig(questions_per_chunk=4, chunk_size=128, concurrency=4)
    async with Simulator() as sim:
        async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
            full = await RaftPipeline(client, config).run(docs, tmp_path / "full")
        assert full.cost_usd is not None
        cap = 0.9 * full.cost_usd
        ledger = UsageLedger(max_cost_usd=cap)
        async with OpenAIClient(
            base_url=sim.base_url, api_key=sim.api_key, ledger=ledger
        ) as client:
            capped = await RaftPipeline(client, config).run(docs, tmp_path / "capped")
    assert capped.status == "stopped"
    assert capped.stop_reason is not None
    assert "budget" in capped.stop_reason
    assert capped.examples >= 0.7 * full.examples
    # past the cap by at most what the calls in flight cost: one chunk's question call and
    # each of its answers, per chunk in flight
    in_flight = config.concurrency * (1 + config.questions_per_chunk)
    worst_call = PriceTable().worst_case(
        config.teacher_model, prompt_tokens=2_000, max_completion_tokens=1_024, kind="chat"
    )
    assert worst_call is not None
    assert ledger.spent_usd <= cap + in_flight * worst_call
    assert len(examples(tmp_path / "capped")) == capped.examples


def _generate_command(docs: Path, out: Path, base_url: str) -> list[str]:
    return [
        sys.executable, "-m", "raftkit.cli", "generate", str(docs), "--out", str(out),
        "--base-url", base_url, "--questions", "3", "--chunk-size", "128",
        "--concurrency", "2", "--answers-per-call", "2", "--quiet",
    ]  # fmt: skip


def _journal_keys(run_dir: Path) -> list[str]:
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["key"] for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_a_run_resumed_with_other_learned_caps_pays_nothing_twice(tmp_path: Path) -> None:
    """SIGKILL a run, give its resume other caps than it learned: it replays every journaled
    response (caps are not in the keys) and writes the uninterrupted run's dataset."""
    docs = make_docs(tmp_path)
    teacher = RaftConfig().teacher_model
    with Simulator(SimulatorConfig(latency_base=0.05)) as sim:
        env = {**os.environ, "OPENAI_API_KEY": sim.api_key}
        reference = tmp_path / "reference"
        crashed = tmp_path / "crashed"
        # both runs start from caps that cut no reply: a cap learned in another order could
        # cut (and re-ask) a reply in one run only, and the two datasets' usage would differ
        for run in (reference, crashed):
            seed_generous_caps(run, teacher)
        subprocess.run(_generate_command(docs, reference, sim.base_url), env=env, check=True)
        uninterrupted = len(chat_bodies(sim))
        total = len(_journal_keys(reference))
        assert all(isinstance(body.get("max_tokens"), int) for body in chat_bodies(sim))
        reference_caps = {_prompt(r): r["max_tokens"] for r in _journal_requests(reference)}

        sim.clear_requests()
        process = subprocess.Popen(_generate_command(docs, crashed, sim.base_url), env=env)
        deadline = time.monotonic() + 60
        while len(_journal_keys(crashed)) < total // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        journaled_at_kill = len(_journal_keys(crashed))
        assert 0 < journaled_at_kill < total, "the kill landed in the middle of the run"
        # the resumed run learned something else: twice the caps
        seed_generous_caps(crashed, teacher, factor=2)
        subprocess.run(_generate_command(docs, crashed, sim.base_url), env=env, check=True)
        resumed = chat_bodies(sim)

    # what the resume paid for is journaled after what the killed run had (the server may
    # still log the killed run's calls in flight, so its own log cannot tell them apart)
    paid_on_resume = _journal_requests(crashed)[journaled_at_kill:]
    assert paid_on_resume, "the resumed run asked for what was not journaled"
    for request in paid_on_resume:
        assert request["max_tokens"] != reference_caps[_prompt(request)]
    assert (crashed / "examples.jsonl").read_bytes() == (reference / "examples.jsonl").read_bytes()
    keys = _journal_keys(crashed)
    assert len(keys) == len(set(keys)) == total
    # calls in flight at the kill (at most 2 chunks, 2 calls each) may be paid twice; no other
    assert len(resumed) <= uninterrupted + 2 * 2
    report = json.loads((crashed / "report.json").read_text(encoding="utf-8"))
    assert report["teacher_calls_replayed"] >= journaled_at_kill


def _journal_requests(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["request"] for line in lines]


def _prompt(body: dict[str, Any]) -> str:
    return json.dumps(body["messages"], sort_keys=True)

"""Preference pairs (DPO): from the answers a run rejected, and from a teacher asked for flawed
ones; their OpenAI/Azure and TRL rows; and DPO jobs, end to end against the simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

import raftkit.cli
from finetune_support import example
from openapi_schemas import validate, validate_azure
from raftkit.dataset import (
    ChatExporter,
    DpoExporter,
    PreferencePair,
    TrlDpoExporter,
    read_examples,
    validate_preference_jsonl,
)
from raftkit.llm import OpenAIClient
from raftkit.pipeline import RaftConfig, RaftPipeline
from raftkit.preference_pairs import collect_natural_pairs, read_pairs
from raftkit.synth import verify_answer
from raftkit.testing import Simulator
from raftkit.types import Chunk

AZURE_2025 = "azure/azure-authoring-preview-2025-04-01.json"

NOTES = (
    "Bats are the only mammals capable of true flight. Their wings are modified forelimbs.\n\n"
    "Most small bats hunt insects at night. They find their prey by echolocation.\n\n"
    "Vampire bats feed on blood. They share meals with roost mates that failed to feed.\n\n"
    "Fruit bats pollinate many tropical plants. Some fruit bats have a wingspan of 1.5 metres.\n\n"
    "Foilboards rise above the water on a hydrofoil. The foil lifts the board at low speed.\n\n"
    "Wakeboarding riders are towed behind a motorboat. The sport began in the 1980s.\n\n"
    "Surfers wait for waves beyond the break. A longboard paddles easier than a shortboard.\n\n"
    "The Great Wall of China is thousands of kilometres long. Its oldest parts are earthen.\n"
)
CHINESE = "蝙蝠是唯一能够真正飞行的哺乳动物。大多数小型蝙蝠依靠回声定位在黑暗中捕食。\n"


def _pair(n: int, **fields: Any) -> PreferencePair:
    return PreferencePair(
        example_id=f"ex-{n}",
        question_id=f"q-{n}",
        chunk_id=f"doc#{n % 20}",
        rejected=fields.pop("rejected", f"It is in Rome. <ANSWER>: never {n}"),
        reason=fields.pop("reason", "no_quotes"),
        **fields,
    )


def test_rows_share_the_chat_prompt_and_write_one_line_per_pair() -> None:
    examples = [example(n) for n in range(4)]
    pairs = {"ex-1": [_pair(1), _pair(1, rejected="x <ANSWER>: y", reason="no_quotes")]}
    dpo = DpoExporter(pairs, system_prompt="Answer from the documents.")
    rows = list(dpo.rows(examples))
    assert len(rows) == 2
    chat = ChatExporter("Answer from the documents.").messages(examples[1])
    assert rows[0] == {
        "input": {"messages": chat[:-1]},
        "preferred_output": [chat[-1]],
        "non_preferred_output": [{"role": "assistant", "content": pairs["ex-1"][0].rejected}],
    }
    trl = list(TrlDpoExporter(pairs).rows(examples))
    assert trl[1] == {
        "prompt": ChatExporter().messages(examples[1])[:-1],
        "chosen": [{"role": "assistant", "content": examples[1].cot_answer}],
        "rejected": [{"role": "assistant", "content": "x <ANSWER>: y"}],
    }


def test_preference_files_are_checked_as_the_services_do(tmp_path: Path) -> None:
    examples = [example(n) for n in range(3)]
    good = tmp_path / "good.jsonl"
    DpoExporter({e.id: [_pair(int(e.id[3:]))] for e in examples}).export(examples, good)
    report = validate_preference_jsonl(good)
    assert report.ok, report.render()
    assert report.rows == 3
    assert report.billed_tokens_per_epoch > 0
    rows = [json.loads(line) for line in good.read_text(encoding="utf-8").splitlines()]
    rows[0]["input"]["messages"].append({"role": "assistant", "content": "hm"})
    rows[1]["non_preferred_output"] = rows[1]["preferred_output"]
    rows[2] = {"messages": rows[2]["input"]["messages"]}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    checked = validate_preference_jsonl(bad)
    assert not checked.ok
    assert checked.problems == [
        "line 1: input.messages must end with a user message",
        "line 2: preferred_output and non_preferred_output are identical",
        "line 3: key 'input' is missing (a chat example?)",
        "line 4: not valid JSON",
    ]


def _generate(sim: Simulator, docs: Path, run: Path, attempts: int = 3) -> None:
    async def go() -> None:
        async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
            config = RaftConfig(
                questions_per_chunk=2,
                chunk_size=24,
                chunk_overlap=0,
                max_answer_attempts=attempts,
                concurrency=4,
            )
            await RaftPipeline(client, config).run(docs, run, simulated_teacher=True)

    anyio.run(go)


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bats.txt").write_text(NOTES, encoding="utf-8")
    (docs / "蝙蝠.txt").write_text(CHINESE, encoding="utf-8")
    return docs


def _oracles(run: Path) -> dict[str, str]:
    lines = (run / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    return {c.id: c.text for c in (Chunk.model_validate_json(line) for line in lines)}


def test_the_answers_a_run_rejected_become_natural_pairs(
    tmp_path: Path, raftkit_simulator: Simulator
) -> None:
    sim = raftkit_simulator
    sim.set_misbehaviour("invented_quote", 0.35)
    sim.set_misbehaviour("missing_answer", 0.15)
    run = tmp_path / "run"
    _generate(sim, _docs(tmp_path), run)
    examples = {e.id: e for e in read_examples(run / "examples.jsonl")}
    re_asked = {i for i, e in examples.items() if e.metadata["attempts"] > 1}
    assert re_asked, "the simulator was told to misbehave"
    pairs = collect_natural_pairs(run)
    assert {p.example_id for p in pairs} == re_asked
    oracles = _oracles(run)
    for pair in pairs:
        chosen = examples[pair.example_id]
        assert verify_answer(chosen.cot_answer, oracles[chosen.chunk_id]).ok
        check = verify_answer(pair.rejected, oracles[chosen.chunk_id])
        assert not check.ok
        assert pair.reason == check.reason
        assert pair.reason in {"quote_not_in_oracle", "no_answer_line"}
        assert not pair.synthetic
    assert len(pairs) == sum(e.metadata["attempts"] - 1 for e in examples.values())


def _chat_parts(dataset: Path) -> dict[str, str]:
    """The user prompt of every chat row, to its part."""
    parts = {}
    for part in ("train", "validation", "test"):
        path = dataset / "chat" / f"{part}.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                parts[json.loads(line)["messages"][-2]["content"]] = part
    return parts


def _chat_calls(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.path.endswith("/chat/completions"))


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch, raftkit_simulator: Simulator) -> Simulator:
    monkeypatch.setenv("OPENAI_API_KEY", raftkit_simulator.api_key)
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL", "RAFTKIT_TODAY"):
        monkeypatch.delenv(name, raising=False)
    return raftkit_simulator


def test_export_dpo_and_finetune_dpo_end_to_end(
    tmp_path: Path,
    openai_env: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = openai_env
    sim.misbehave("invented_quote", times=2)
    run = tmp_path / "run"
    _generate(sim, _docs(tmp_path), run)
    natural = len(collect_natural_pairs(run))
    assert natural >= 1
    examples = read_examples(run / "examples.jsonl")
    want = min(len(examples), natural + 8)
    base = ["--base-url", sim.base_url]
    journal_before = len((run / "journal.jsonl").read_text(encoding="utf-8").splitlines())
    calls_before = _chat_calls(sim)
    argv = ["export", str(run), "--formats", "dpo", "--preference-pairs", str(want)]
    argv += ["--model", "gpt-4.1-mini"]
    assert raftkit.cli.main([*argv, *base]) == 0
    out = capsys.readouterr().out
    # the chat rows of the same run (a small run's validation part is too small to upload,
    # hence no exit status check): exported apart, split alike
    raftkit.cli.main(["export", str(run), "--formats", "chat", *base])
    capsys.readouterr()
    assert "preference pairs:" in out
    pairs = read_pairs(run / "preferences.jsonl")
    assert len(pairs) == want
    synthetic = [p for p in pairs if p.synthetic]
    assert len(synthetic) == want - natural
    assert {p.flaw for p in synthetic} <= {"wrong_document", "unsupported_quote"}
    asked = _chat_calls(sim) - calls_before
    journal_after = len((run / "journal.jsonl").read_text(encoding="utf-8").splitlines())
    assert journal_after - journal_before == asked >= len(synthetic)  # every call journaled

    # the same split and prompts as the chat rows; chosen passes, rejected fails
    dataset = run / "dataset"
    chat_parts = _chat_parts(dataset)
    oracles = _oracles(run)
    by_text = {e.cot_answer: e for e in examples}
    rows = 0
    for part in ("train", "validation", "test"):
        path = dataset / "dpo" / f"{part}.jsonl"
        trl = dataset / "dpo-trl" / f"{part}.jsonl"
        if not path.is_file():
            assert not trl.is_file()
            continue
        dpo_rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        trl_rows = [json.loads(x) for x in trl.read_text(encoding="utf-8").splitlines()]
        assert len(dpo_rows) == len(trl_rows)
        for row, twin in zip(dpo_rows, trl_rows, strict=True):
            assert chat_parts[row["input"]["messages"][-1]["content"]] == part
            assert twin["prompt"] == row["input"]["messages"]
            chosen = by_text[row["preferred_output"][0]["content"]]
            oracle = oracles[chosen.chunk_id]
            assert verify_answer(chosen.cot_answer, oracle).ok
            assert not verify_answer(row["non_preferred_output"][0]["content"], oracle).ok
            assert twin["rejected"] == row["non_preferred_output"]
        rows += len(dpo_rows)
    assert rows == want
    assert raftkit.cli.main(["validate", str(dataset / "dpo" / "train.jsonl")]) == 0
    assert "OK," in capsys.readouterr().out

    # exporting again pays nothing: the flawed answers come back from the journal
    calls = _chat_calls(sim)
    assert raftkit.cli.main([*argv, *base]) == 0
    capsys.readouterr()
    assert _chat_calls(sim) == calls
    assert read_pairs(run / "preferences.jsonl") == pairs

    argv = ["finetune", str(run), "--method", "dpo", "--beta", "0.2", "--model", "gpt-4.1-mini"]
    assert raftkit.cli.main([*argv, "--wait", "--poll-interval", "0.02", *base]) == 0
    done = capsys.readouterr().out
    assert "(dpo)" in done
    assert "estimated training cost:" in done
    job_body = [
        r.json for r in sim.requests if r.method == "POST" and r.path == "/v1/fine_tuning/jobs"
    ][-1]
    validate("CreateFineTuningJobRequest", job_body)
    assert job_body["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    state = json.loads((run / "finetune.json").read_text())
    assert (state["method"], state["status"]) == ("dpo", "succeeded")
    assert raftkit.cli.main(["jobs", "show", state["job_id"], *base]) == 0
    assert "method: dpo" in capsys.readouterr().out

    # Azure takes the same files and the same method, on a training tier
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", sim.azure_endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", sim.api_key)
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    azure = ["finetune", str(run), "--provider", "azure", "--method", "dpo", "--new"]
    azure += ["--model", "gpt-4.1-nano", "--training-tier", "developer", "--wait"]
    assert raftkit.cli.main([*azure, "--poll-interval", "0.02"]) == 0
    assert "job " in capsys.readouterr().out
    azure_body = [
        r.json for r in sim.requests if r.method == "POST" and r.path == "/openai/fine_tuning/jobs"
    ][-1]
    validate_azure("FineTuningJobCreation", azure_body, spec=AZURE_2025)
    validate_azure("DpoMethodRequest", azure_body["method"], spec=AZURE_2025)
    assert azure_body["trainingType"] == "developerTier"


def test_a_dpo_run_needs_its_pairs_first(
    tmp_path: Path, openai_env: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "examples.jsonl").write_text(
        "\n".join(example(n).model_dump_json() for n in range(20)) + "\n", encoding="utf-8"
    )
    base = ["--base-url", openai_env.base_url]
    assert raftkit.cli.main(["finetune", str(run), "--method", "dpo", *base]) == 2
    assert "raftkit export" in capsys.readouterr().err
    assert raftkit.cli.main(["finetune", str(run), "--beta", "0.1", *base]) == 2
    assert "--beta is a DPO hyperparameter" in capsys.readouterr().err
    # a run without a journal has no natural pairs; asking for none writes no dpo files
    assert raftkit.cli.main(["export", str(run), "--formats", "dpo", *base]) == 0
    assert "no preference pairs" in capsys.readouterr().out
    assert not list((run / "dataset").glob("dpo*/*.jsonl"))

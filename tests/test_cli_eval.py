"""``raftkit eval`` across endpoints, with the export's prompt and split, ``@finetuned``, and the
retriever in the loop: the command line against loopback simulators over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raftkit.cli import main
from raftkit.dataset import split_examples, write_examples
from raftkit.llm.openai import OpenAIClient
from raftkit.retrieval import Adapter
from raftkit.run_dir import RunDir
from raftkit.testing import ModelBehaviour, Simulator, SimulatorConfig
from raftkit.types import Chunk, ContextDocument, RaftExample

_SYSTEM = "Answer from the documents; end with <ANSWER>:."
_SUBJECTS = [
    *("bats", "owls", "moles", "crabs", "bees", "eels", "frogs", "wolves", "foxes", "seals"),
    *("hawks", "moths", "newts", "toads", "voles", "wasps", "yaks", "lynxes", "otters", "mice"),
]
_FOODS = [
    *("insects", "mice", "worms", "algae", "nectar", "shrimp", "flies", "deer", "berries"),
    *("fish", "snakes", "pollen", "larvae", "slugs", "roots", "spiders", "grass", "hares"),
    *("clams", "seeds"),
]


def _write_run(root: Path) -> RunDir:
    """A small run: one chunk per subject, a question per chunk, two distractors each."""
    run = RunDir(root)
    root.mkdir()
    chunks = [
        Chunk(id=f"zoo#{i}", document_id="zoo", index=i, text=text, start=0, end=len(text))
        for i, (subject, food) in enumerate(zip(_SUBJECTS, _FOODS, strict=True))
        for text in [f"Most {subject} eat {food}. They hunt mostly at dusk."]
    ]
    run.chunks.write_text("".join(c.model_dump_json() + "\n" for c in chunks), encoding="utf-8")
    examples = []
    for i, (subject, food) in enumerate(zip(_SUBJECTS, _FOODS, strict=True)):
        others = [chunks[(i + 1) % len(chunks)], chunks[(i + 2) % len(chunks)]]
        docs = [
            ContextDocument(
                chunk_id=others[0].id, position=0, is_oracle=False, text=others[0].text
            ),
            ContextDocument(chunk_id=chunks[i].id, position=1, is_oracle=True, text=chunks[i].text),
            ContextDocument(
                chunk_id=others[1].id, position=2, is_oracle=False, text=others[1].text
            ),
        ]
        examples.append(
            RaftExample(
                id=f"ex{i:02d}",
                question_id=f"q{i:02d}",
                question=f"What do most {subject} eat?",
                chunk_id=chunks[i].id,
                document_id="zoo",
                documents=docs,
                oracle_present=True,
                cot_answer=f"##begin_quote##Most {subject} eat {food}.##end_quote## "
                f"<ANSWER>: {food}",
                final_answer=food,
                question_type="diet" if i % 2 else "habit",
            )
        )
    write_examples(run.examples, examples)
    return run


@pytest.fixture
def sims() -> Iterator[tuple[Simulator, Simulator]]:
    """A base model that never writes the <ANSWER>: line, and a tuned one that learned the
    format; both answer to any model name, as a local server serving one model does."""
    careless = SimulatorConfig(misbehaviour={"missing_answer": 1.0}, accept_unknown_models=True)
    learned = SimulatorConfig(
        accept_unknown_models=True,
        model_behaviour={"student": ModelBehaviour(learned_format=1.0)},
    )
    with Simulator(careless) as base, Simulator(learned) as tuned:
        yield base, tuned


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server_key(monkeypatch: pytest.MonkeyPatch, no_credentials: None) -> None:
    """The key the simulators want (servers started with an API key read OPENAI_API_KEY), and
    no default endpoint: without --base-url the default would be api.openai.com."""
    with Simulator() as sim:
        monkeypatch.setenv("OPENAI_API_KEY", sim.api_key)


def _chats(sim: Simulator) -> list[dict[str, Any]]:
    return [r.json for r in sim.requests if r.path.endswith("/chat/completions")]


def _report(run: RunDir) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((run.eval / "report.json").read_text(encoding="utf-8"))
    return report


def _verdict(report: dict[str, Any], metric: str, setting: str = "dataset") -> str:
    for summary in report["summaries"]:
        if summary["metric"]["name"] == metric and summary["setting"] == setting:
            return str(summary["versus_baseline"]["tuned"]["verdict"])
    raise AssertionError(f"no {metric} in {setting}")


@pytest.mark.usefixtures("server_key")
def test_base_and_tuned_at_two_endpoints_with_the_exported_prompt_and_split(
    tmp_path: Path, sims: tuple[Simulator, Simulator], capsys: pytest.CaptureFixture[str]
) -> None:
    base, tuned = sims
    run = _write_run(tmp_path / "run")
    # exit 1: the tiny validation file would be rejected, but the export is written; the
    # student's lifecycle dates are asked of a simulator, never of api.openai.com
    export = ["export", str(run.root), "--system-prompt", _SYSTEM, "--seed", "3"]
    main([*export, "--model", "gpt-4.1-nano", "--base-url", base.base_url])
    assert run.export_manifest.is_file()
    capsys.readouterr()
    # both servers answer to the same model name: their journals must still stay apart
    evaluate = [
        "eval", str(run.root), "--split", "train",
        "--model", f"base=student@{base.base_url}",
        "--model", f"tuned=student@{tuned.base_url}/",
    ]  # fmt: skip
    assert main(evaluate) == 0
    out, err = capsys.readouterr()
    assert "SIMULATOR" not in err  # no default endpoint was needed, so none was opened
    assert [r for r in base.requests if r.path.endswith("/models")]  # the endpoint was probed

    trained_on = split_examples(
        [RaftExample.model_validate_json(line) for line in run.examples.open()], seed=3
    ).train
    for sim in (base, tuned):
        bodies = _chats(sim)
        assert len(bodies) == len(trained_on)
        assert {b["messages"][0]["content"] for b in bodies} == {_SYSTEM}
        asked = {b["messages"][1]["content"].rsplit("\n", 1)[-1] for b in bodies}
        assert asked == {e.question for e in trained_on}
        assert {b["max_tokens"] for b in bodies} == {256}  # short references: the floor
    report = _report(run)
    assert _verdict(report, "format_adherence") == "better"
    assert _verdict(report, "precision_when_answering") == "better"
    assert report["model_details"]["tuned"]["endpoint"] == tuned.base_url
    assert any("seed 3" in note for note in report["notes"])
    assert any(_SYSTEM in note for note in report["notes"])
    assert {s["question_type"] for s in report["by_question_type"]} == {"diet", "habit"}
    assert "tuned is better than base on format_adherence" in out
    assert "### By question type (dataset)" in out

    # run again: everything replays from the journal, per endpoint, nothing is sent
    base.clear_requests()
    tuned.clear_requests()
    assert main(evaluate) == 0
    assert _chats(base) == _chats(tuned) == []
    assert f"0 calls paid, {2 * len(trained_on)} replayed" in capsys.readouterr().err
    assert _report(run)["summaries"] == report["summaries"]


def test_finetuned_alias_and_a_default_endpoint_beside_a_url(
    tmp_path: Path,
    sims: tuple[Simulator, Simulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, tuned = sims
    run = _write_run(tmp_path / "run")
    state = {"provider": "openai", "job_id": "ftjob-1", "status": "succeeded"}
    run.finetune_state.write_text(json.dumps(state), encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", base.api_key)
    args = ["eval", str(run.root), "--base-url", base.base_url, "--limit", "4"]
    assert main([*args, "--models", "gpt-4o-mini,@finetuned"]) == 2
    assert "records no fine-tuned model yet (job ftjob-1 is succeeded)" in capsys.readouterr().err

    run.finetune_state.write_text(
        json.dumps({**state, "fine_tuned_model": "ft:gpt-4o-mini:org::abc"}), encoding="utf-8"
    )
    code = main([*args, "--models", "gpt-4o-mini", "--model", f"tuned=@finetuned@{tuned.base_url}"])
    assert code == 0
    assert {b["model"] for b in _chats(base)} == {"gpt-4o-mini"}
    assert {b["model"] for b in _chats(tuned)} == {"ft:gpt-4o-mini:org::abc"}
    report = _report(run)
    assert report["models"] == ["gpt-4o-mini", "tuned"]
    assert report["model_details"]["gpt-4o-mini"]["endpoint"] is None
    assert any("no " in note and "split.json" in note for note in report["notes"])


@pytest.mark.usefixtures("server_key")
def test_a_local_adapter_and_its_base_by_alias(
    tmp_path: Path, sims: tuple[Simulator, Simulator], capsys: pytest.CaptureFixture[str]
) -> None:
    """After ``finetune --provider local``: ``@finetuned`` is the served adapter's name and
    ``@base`` the recorded BASE, each where the user says it is served."""
    base, tuned = sims
    run = _write_run(tmp_path / "run")
    adapter = run.local_training / "jobs" / "ftjob-local-1" / "adapter"
    adapter.mkdir(parents=True)
    state = {
        "provider": "local",
        "job_id": "ftjob-local-1",
        "status": "succeeded",
        "model": "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "fine_tuned_model": str(adapter),
    }
    run.finetune_state.write_text(json.dumps(state), encoding="utf-8")
    args = ["eval", str(run.root), "--limit", "2", "--model", f"base=@base@{base.base_url}"]
    assert main([*args, "--model", "tuned=@finetuned"]) == 2
    err = capsys.readouterr().err
    assert f"a local adapter; serve it (raftkit serve --run {run.root})" in err
    assert main([*args, "--model", f"tuned=@finetuned@{tuned.base_url}"]) == 0
    assert {b["model"] for b in _chats(base)} == {state["model"]}
    assert {b["model"] for b in _chats(tuned)} == {"raft"}
    assert _report(run)["models"] == ["base", "tuned"]


@pytest.mark.slow  # the probe retries a refused connection for ~15 s before it gives up
@pytest.mark.usefixtures("no_credentials")
def test_an_endpoint_nobody_serves_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _write_run(tmp_path / "run")
    with Simulator() as sim:
        gone = sim.base_url  # the port is free again once the simulator stopped
    code = main(["eval", str(run.root), "--model", f"m@{gone}", "--max-tokens", "0"])
    assert code == 2
    assert "--max-tokens must be at least 1" in capsys.readouterr().err
    code = main(["eval", str(run.root), "--model", f"m@{gone}"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"nothing answers at {gone}" in err
    assert "Traceback" not in err
    with Simulator() as sim:  # it wants a key and none is set
        code = main(["eval", str(run.root), "--model", f"m@{sim.base_url}"])
    assert code == 2
    assert "refused the credentials (401)" in capsys.readouterr().err


def test_the_retriever_in_the_loop_grid(
    tmp_path: Path,
    sims: tuple[Simulator, Simulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, tuned = sims
    run = _write_run(tmp_path / "run")
    # an adapter over the simulator's 1536-d embeddings that scrambles the query side: a
    # "tuned" retriever that is in fact worse, which the grid must show
    adapter = Adapter.create("linear", 1536, base="text-embedding-3-small")
    rng = np.random.default_rng(0)
    adapter.params["W"] = np.asarray(rng.normal(size=(1536, 1536)), np.float32)
    path = adapter.save(tmp_path / "adapter-linear.npz")
    monkeypatch.setenv("OPENAI_API_KEY", tuned.api_key)
    evaluate = [
        "eval", str(run.root), "--split", "train", "--base-url", tuned.base_url,
        "--model", f"base=student@{base.base_url}", "--model", f"tuned=student@{tuned.base_url}",
        "--retriever", f"base,adapter:{path}", "--top-k", "2",
        "--retriever-embedding-model", "text-embedding-3-small",
    ]  # fmt: skip
    assert main(evaluate) == 0
    out, err = capsys.readouterr()
    assert "retriever base: oracle in the top 2" in err
    report = _report(run)
    assert report["settings"] == ["retrieved:base", "retrieved:adapter:adapter-linear"]
    hits = {r["retriever"]: r for r in report["retrieval"]}
    assert hits["base"]["k"] == 2
    assert hits["base"]["hit_rate"]["mean"] > hits["adapter:adapter-linear"]["hit_rate"]["mean"]
    grid = {g["metric"]: g for g in report["grid"]}
    cells = {(c["retriever"], c["model"]): c for c in grid["format_adherence"]["cells"]}
    assert len(cells) == 4
    assert cells[("base", "tuned")]["versus_baseline"]["verdict"] == "better"
    assert "## Retriever in the loop" in out
    stored = run.retrieved_contexts("base").read_text(encoding="utf-8").splitlines()
    assert len(stored) == len(report["results"]) // 4  # one line per question

    # resumed: no embedding, no search, no answer is paid again
    for sim in (base, tuned):
        sim.clear_requests()
    assert main(evaluate) == 0
    assert [r.path for r in base.requests + tuned.requests if r.method == "POST"] == []


async def test_the_probe_of_an_endpoint_ignores_a_missing_models_route(
    anyio_backend: str,
) -> None:
    from raftkit.evaluate import check_endpoint

    with Simulator() as sim:
        async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
            await check_endpoint(client, sim.base_url)  # /models answers
            await check_endpoint(client.with_store(_NoStore()), sim.base_url)
        bare = OpenAIClient(base_url=sim.base_url + "/nothing-here", api_key=sim.api_key)
        async with bare:
            await check_endpoint(bare, sim.base_url)  # a 404 is a server, just no route


class _NoStore:
    async def get(self, key: str) -> None:
        return None

    async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        return None

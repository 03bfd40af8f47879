"""``generate --limit N``: try the first N chunks, then go on to the whole corpus paying nothing
twice; the dry run forecasts both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from data_files import FOILBOARD
from raftkit.cli import main
from raftkit.llm import OpenAIClient
from raftkit.llm._store import UNKEYED_FIELDS
from raftkit.pipeline import RaftConfig, RaftPipeline, estimate_cost
from raftkit.run_dir import RunDir
from raftkit.testing import Simulator

pytestmark = pytest.mark.anyio

CHINESE = "# 蝙蝠\n\n蝙蝠是唯一能够真正飞行的哺乳动物。大多数小型蝙蝠依靠回声定位在黑暗中捕食。\n"
CONFIG = RaftConfig(questions_per_chunk=2, chunk_size=128, seed=4)


def make_docs(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(FOILBOARD, docs)
    (docs / "蝙蝠.md").write_text(CHINESE, encoding="utf-8")
    return docs


def chunk_ids(run: Path) -> list[str]:
    return [json.loads(line)["id"] for line in RunDir(run).chunks.read_text("utf-8").splitlines()]


def chat_calls(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.path.endswith("/chat/completions"))


def chat_bodies(sim: Simulator) -> set[str]:
    """The chat requests sent, without their completion caps (which a run learns as it goes
    and are not part of the journal's keys)."""
    return {
        json.dumps({k: v for k, v in r.json.items() if k not in UNKEYED_FIELDS}, sort_keys=True)
        for r in sim.requests
        if r.path.endswith("/chat/completions")
    }


async def test_a_limited_run_goes_on_to_the_whole_corpus_without_paying_twice(
    tmp_path: Path,
) -> None:
    docs = make_docs(tmp_path)
    async with Simulator() as sim, OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as c:
        whole = await RaftPipeline(c, CONFIG).run(docs, tmp_path / "reference")
        reference_calls = chat_calls(sim)
        sim.clear_requests()

        run = tmp_path / "run"
        limited = await RaftPipeline(c, CONFIG).run(docs, run, limit=2)
        limited_calls = chat_calls(sim)
        limited_bodies = chat_bodies(sim)
        sim.clear_requests()
        assert limited.limit == 2
        assert limited.chunks == limited.chunks_done == 2
        reference = tmp_path / "reference"
        assert chunk_ids(run) == chunk_ids(reference)[:2], "the first chunks, in corpus order"
        assert limited.documents == 1, "the walk stopped once it had its chunks"
        assert 0 < limited_calls < reference_calls
        assert "--limit 2" in RunDir(run).report_md.read_text("utf-8")

        # the limit is not a setting: the same run directory goes on to the whole corpus
        continued = await RaftPipeline(c, CONFIG).run(docs, run)
        continued_bodies = chat_bodies(sim)
    assert continued.limit is None
    # nothing paid twice: the call counts may differ from the reference run's by the replies
    # cut at other learned caps and asked again, but no request of the limited run is re-sent
    assert continued_bodies
    assert not continued_bodies & limited_bodies, "nothing paid twice"
    assert continued.teacher_calls_replayed == limited_calls
    assert continued.chunks == whole.chunks
    # the same examples; what each cost (``usage``) may differ where one run's learned cap cut
    # a reply and asked again while the other's did not
    assert without_usage(RunDir(run).examples) == without_usage(
        RunDir(tmp_path / "reference").examples
    )


def without_usage(path: Path) -> list[dict[str, object]]:
    examples = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert examples
    return [{k: v for k, v in e.items() if k != "usage"} for e in examples]


async def test_the_dry_run_forecasts_the_limited_run_and_the_whole_corpus(
    tmp_path: Path,
) -> None:
    docs = make_docs(tmp_path)
    estimate = await estimate_cost(docs, CONFIG, limit=2)
    assert estimate.limit == 2
    assert estimate.limited is not None
    assert estimate.limited.chunks == 2
    assert estimate.chunks > 2
    whole = await estimate_cost(docs, CONFIG)
    assert estimate.model_dump(exclude={"limit", "limited"}) == whole.model_dump(
        exclude={"limit", "limited"}
    )
    assert estimate.limited.questions == 2 * CONFIG.questions_per_chunk
    assert estimate.limited.cost_usd is not None
    assert whole.cost_usd is not None
    assert 0 < estimate.limited.cost_usd < whole.cost_usd
    assert estimate.limited.documents == 1


def test_the_command_takes_limit_and_the_dry_run_shows_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    docs, out = make_docs(tmp_path), tmp_path / "run"
    argv = ["generate", str(docs), "--out", str(out), "--questions", "2", "--chunk-size", "128"]
    assert main([*argv, "--limit", "1", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "| | this run (--limit 1: first 1 chunks) | the whole corpus |" in printed
    assert "| chunks | 1 |" in printed
    assert main([*argv, "--limit", "1", "--quiet"]) == 0
    assert "without --limit" in capsys.readouterr().err
    assert len(RunDir(out).chunks.read_text("utf-8").splitlines()) == 1
    assert main([*argv, "--quiet"]) == 0
    report = json.loads(RunDir(out).report_json.read_text("utf-8"))
    assert report["chunks"] > 1
    assert report["teacher_calls_replayed"] > 0
    assert main([*argv, "--limit", "0"]) == 2

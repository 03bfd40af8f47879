"""``raftkit retrieval`` commands end to end, on a generation run made with the simulator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from raftkit.cli import retrieval as retrieval_cli
from raftkit.llm.openai import OpenAIClient
from raftkit.pipeline import RaftConfig, RaftPipeline
from raftkit.retrieval import Adapter, read_pairs
from raftkit.testing import Simulator

pytestmark = pytest.mark.anyio

PARAGRAPHS = [
    "Bats are the only mammals capable of true flight. Their wings are membranes of skin.",
    "Vampire bats feed on the blood of cattle and horses and share meals with roost mates.",
    "Fruit bats eat fruit and nectar and pollinate bananas, mangoes and durian.",
    "Echolocation lets insect-eating bats hunt moths in complete darkness.",
    "Surfing is riding breaking waves on a board; longboards suit small waves.",
    "Kiteboarding uses a large kite to pull the rider across the water.",
    "Neoprene wetsuits keep surfers warm in cold oceans such as the North Sea.",
    "Windsurfing combines a board with a sail held by the rider.",
    "蝙蝠是唯一能够真正飞行的哺乳动物。大多数蝙蝠在夜间活动。",
    "冲浪是在海浪上滑行的运动。冲浪板有长板和短板。",
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raftkit")
    retrieval_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


async def _run(*argv: str) -> int:
    args = _parser().parse_args(["retrieval", *argv])
    code: int = await args.handler(args)
    return code


async def _make_run(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(PARAGRAPHS):
        (docs / f"doc{i}.md").write_text(text + "\n", encoding="utf-8")
    run = tmp_path / "run"
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
    ):
        config = RaftConfig(questions_per_chunk=3, chunk_size=64, chunk_overlap=0, seed=2)
        await RaftPipeline(client, config).run(docs, run)
    return run


def _cache_bytes(run: Path) -> int:
    return sum(p.stat().st_size for p in (run / "retrieval" / "cache").iterdir())


async def test_pairs_adapter_and_evaluation_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await _make_run(tmp_path)
    assert await _run("pairs", str(run), "--ratios", "0.6,0.2,0.2", "--seed", "1") == 0
    split = read_pairs(run / "retrieval" / "pairs.jsonl")
    assert split.train
    assert split.test
    assert {p.chunk_id for p in split.train}.isdisjoint({p.chunk_id for p in split.test})
    assert json.loads((run / "retrieval" / "split.json").read_text("utf-8"))["seed"] == 1

    api = ["--provider", "simulator", "--embedding-model", "text-embedding-3-small"]
    code = await _run(
        "train-adapter", str(run), "--kind", "mlp", "--out-dim", "32", "--epochs", "3", *api
    )
    assert code == 0
    adapter = Adapter.load(run / "retrieval" / "adapter-mlp.npz")
    assert (adapter.kind, adapter.d_out, adapter.base) == ("mlp", 32, "text-embedding-3-small")
    cached = _cache_bytes(run)

    adapter_path = run / "retrieval" / "adapter-mlp.npz"
    spec = f"base,adapter:{adapter_path}"
    assert await _run("evaluate", str(run), "--embedders", spec, *api) == 0
    report = (run / "retrieval" / "report.md").read_text("utf-8")
    assert "text-embedding-3-small+mlp-adapter" in report
    assert "paired bootstrap" in report
    assert (run / "retrieval" / "report.html").read_text("utf-8").startswith("<!DOCTYPE html>")
    # the second evaluation (test questions were not embedded by training) ...
    after_first = _cache_bytes(run)
    assert after_first >= cached
    assert await _run("evaluate", str(run), "--embedders", spec, *api) == 0
    # ... embeds nothing new: the cache did not grow
    assert _cache_bytes(run) == after_first
    assert "mrr@10" in capsys.readouterr().out


async def test_the_cli_refuses_a_missing_run_and_a_bad_system(tmp_path: Path) -> None:
    from raftkit.errors import InputError, UsageError

    with pytest.raises(UsageError, match="is not a directory"):
        await _run("pairs", str(tmp_path / "nowhere"))

    with pytest.raises(InputError, match="not found"):
        await _run("pairs", str(tmp_path))
    run = await _make_run(tmp_path)
    api = ["--provider", "simulator", "--embedding-model", "text-embedding-3-small"]
    with pytest.raises(UsageError, match="not base"):
        await _run("evaluate", str(run), "--embedders", "bogus", *api)

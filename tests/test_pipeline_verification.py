"""The verifier's settings and records in a generation run, against the loopback simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from raftkit.cli import main as cli_main
from raftkit.errors import ResumeMismatchError
from raftkit.llm import OpenAIClient
from raftkit.pipeline import RaftConfig, RaftPipeline
from raftkit.synth import (
    NORMALISATIONS,
    REJECTION_REASONS,
    CritiqueRules,
    DedupRules,
    VerifyRules,
)
from raftkit.testing import Simulator
from raftkit.types import RaftExample

pytestmark = pytest.mark.anyio

# Wikipedia-like text: the simulated teacher quotes whole sentences, citation markers included.
TEXT = (
    "Desmodus draculae is an extinct species of vampire bat that inhabited Central and South "
    "America during the Pleistocene. It was 30% larger than its living relative the common "
    "vampire bat. Fossils have been found in Argentina, Mexico,[1][2] Ecuador and Brazil.\n\n"
    "Vampire bats form strong bonds with other members of the colony. A vampire bat can only "
    "survive about two days without feeding.\n"
)
CHINESE = "# 蝙蝠\n\n蝙蝠是唯一能够真正飞行的哺乳动物。它们的前肢演化成了翼。\n"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


def make_docs(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    (docs / "bats.md").write_text(TEXT, encoding="utf-8")
    (docs / "蝙蝠.md").write_text(CHINESE, encoding="utf-8")
    return docs


def read_examples(run_dir: Path) -> list[RaftExample]:
    lines = (run_dir / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    return [RaftExample.model_validate_json(line) for line in lines]


async def test_examples_record_the_normalisations_their_quotes_needed(
    sim: Simulator, tmp_path: Path
) -> None:
    config = RaftConfig(questions_per_chunk=3, chunk_size=128, distractors=1)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(make_docs(tmp_path), tmp_path / "run")
    examples = read_examples(tmp_path / "run")
    assert report.examples == len(examples) > 0
    for example in examples:
        recorded = example.metadata["normalisations"]
        assert isinstance(recorded, list)
        assert set(recorded) <= set(NORMALISATIONS)
    settings = json.loads((tmp_path / "run" / "settings.json").read_text(encoding="utf-8"))
    assert settings["verification"] == VerifyRules().model_dump()


async def test_rejections_name_the_rule_and_the_report_counts_it(
    sim: Simulator, tmp_path: Path
) -> None:
    # Thresholds no sentence can meet: every answer fails the substance rule.
    rules = VerifyRules(min_quote_words=500, min_quote_chars=5000, min_quote_cjk_chars=500)
    config = RaftConfig(
        questions_per_chunk=2,
        chunk_size=128,
        max_answer_attempts=1,
        verification=rules,
        # every question reaches the answer step
        critique=CritiqueRules(mode="off"),
        dedup=DedupRules(questions=False),
    )
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        report = await RaftPipeline(client, config).run(make_docs(tmp_path), tmp_path / "run")
    assert report.examples == 0
    assert report.rejections == {"quote_too_short": report.questions}
    lines = (tmp_path / "run" / "rejections.jsonl").read_text(encoding="utf-8").splitlines()
    rejected = [json.loads(line) for line in lines]
    assert len(rejected) == report.questions
    for record in rejected:
        assert record["reason"] in REJECTION_REASONS
        assert record["reason"] == "quote_too_short"
        assert "too short" in record["detail"]


async def test_resuming_with_other_thresholds_is_refused(sim: Simulator, tmp_path: Path) -> None:
    docs = make_docs(tmp_path)
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        await RaftPipeline(client, RaftConfig(questions_per_chunk=1)).run(docs, tmp_path / "run")
        stricter = RaftConfig(questions_per_chunk=1, verification=VerifyRules(min_quote_words=8))
        with pytest.raises(ResumeMismatchError, match="verification"):
            await RaftPipeline(client, stricter).run(docs, tmp_path / "run")


def test_cli_refuses_a_bad_threshold_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = make_docs(tmp_path)
    code = cli_main(
        ["generate", str(docs), "--out", str(tmp_path / "run"), "--min-answer-support", "2"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raftkit generate: invalid setting min_answer_support")
    assert "\n" not in err

"""A small generation run made against the simulator, for the run viewer's tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio

from raftkit.llm import OpenAIClient
from raftkit.pipeline import RaftConfig, RaftPipeline
from raftkit.testing import Simulator

__all__ = ["make_simulated_run"]

EXAMPLE_DOCS = Path(__file__).resolve().parents[1] / "examples" / "docs"

# An English note whose text carries markup: it reaches the page as context documents.
NOTES = (
    "Field notes on bats.\n\n"
    "The <script>alert('notes')</script> tag must show as text. Vampire bats share blood "
    "with roost mates that failed to feed. Fruit bats pollinate many tropical plants.\n\n"
    "Echolocation calls of small bats reach frequencies above 100 kHz. Some moths jam these "
    "calls with clicks of their own.\n"
)
# Chinese as PDF extraction leaves it: a line break in the middle of a sentence.
CHINESE_PDF_LIKE = (
    "蝙蝠的回声定位十分精确，能够在完全黑暗的洞穴中\n飞行而不撞到岩壁。"
    "许多蝙蝠在冬季冬眠，体温会降到接近环境温度。\n"
)


def make_simulated_run(root: Path) -> Path:
    """A real run against the simulator: two documents of examples/docs and two notes."""
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLE_DOCS / "蝙蝠.md", docs)
    shutil.copy(EXAMPLE_DOCS / "Foilboard - Wikipedia.pdf", docs)
    (docs / "notes.txt").write_text(NOTES, encoding="utf-8")
    (docs / "洞穴.txt").write_text(CHINESE_PDF_LIKE, encoding="utf-8")
    run = root / "run"

    async def generate() -> None:
        async with Simulator() as sim:
            sim.misbehave("invented_quote", times=2)
            sim.misbehave("missing_answer", times=1)
            async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
                config = RaftConfig(
                    questions_per_chunk=2, chunk_size=200, max_answer_attempts=1, concurrency=4
                )
                await RaftPipeline(client, config).run(docs, run, simulated_teacher=True)

    anyio.run(generate)
    return run

"""Generate RAFT examples from examples/docs in Python, against the built-in simulator.

    python examples/quickstart.py [OUT_DIR]

Swap the simulator for a real teacher by building ``OpenAIClient()`` (reads OPENAI_API_KEY) or
``AzureOpenAIClient()`` instead; nothing else changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from raftkit.llm import LimiterRegistry, OpenAIClient, RateLimits, UsageLedger
from raftkit.pipeline import Progress, RaftConfig, RaftPipeline
from raftkit.testing import Simulator

HERE = Path(__file__).parent


def show(progress: Progress) -> None:
    print(f"\rchunks {progress.chunks_done}/{progress.chunks_total}, "
          f"examples {progress.examples}", end="", file=sys.stderr)  # fmt: skip


async def main(out: Path) -> None:
    config = RaftConfig(teacher_model="gpt-4o", questions_per_chunk=3, seed=7)
    limiters = LimiterRegistry(default=RateLimits(rpm=3_000, tpm=1_000_000))
    ledger = UsageLedger(max_cost_usd=1.0)  # stop before spending more than a dollar
    async with (
        Simulator() as sim,
        OpenAIClient(
            base_url=sim.base_url, api_key=sim.api_key, limiters=limiters, ledger=ledger
        ) as client,
    ):
        pipeline = RaftPipeline(client, config, progress=show)
        print((await pipeline.plan(HERE / "docs")).markdown())
        report = await pipeline.run(HERE / "docs", out, simulated_teacher=True)
    print("\n" + report.markdown())


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "runs/example"))

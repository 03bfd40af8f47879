"""Learned completion caps that never cut a simulated reply, for tests that compare two runs.

A learned cap depends on which replies came back first, so two runs of one corpus may cut
(and re-ask) different replies: the same examples, but their ``usage`` and the calls paid
differ. A test that compares two runs byte for byte starts both from these caps instead.
"""

from __future__ import annotations

from pathlib import Path

from raftkit.llm import ChatResponse
from raftkit.llm.caps import CompletionCaps
from raftkit.types import Usage

__all__ = ["seed_generous_caps"]

#: Completion tokens per unit of each kind of teacher call a default run makes: several
#: times the longest the simulator writes (answers are measured per token of their scale,
#: the oracle's longest sentence; questions and critiques per question).
_GENEROUS = {"answers": 8, "questions": 200, "critique": 100}


def seed_generous_caps(run_dir: Path, model: str, *, factor: int = 1) -> None:
    """Write ``run_dir/completion_caps.json`` as if ``model``'s replies had been long.

    ``factor`` scales every cap, so that two seeded runs can carry different caps."""
    caps = CompletionCaps()
    for kind, tokens in _GENEROUS.items():
        for _ in range(20):
            usage = Usage(completion_tokens=tokens * factor)
            caps.observe(kind, model, ChatResponse(text="x", model=model, usage=usage))
    run_dir.mkdir(parents=True, exist_ok=True)
    caps.save(run_dir / "completion_caps.json")

"""What question critique, refusals and multi-hop questions cost in teacher tokens.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/question_quality.py                  # ../shared/corpus
    .venv/bin/python benchmarks/question_quality.py --corpus tests/data/corpus

Every configuration generates the same corpus against the loopback simulator (its default
teacher writes good questions; ``--lazy SHARE`` makes that share of them bad, of every kind the
simulator knows) and reads each call's tokens back from the run's journal. The baseline is a
run without critique or de-duplication (raftkit before issue 14). For each configuration:

- **gross**: the tokens of its extra calls (judge, multi-hop) over the baseline run's tokens —
  what the option costs on its own;
- **net**: the run's tokens over the baseline's, minus one — with the answers it no longer pays
  for (rejected questions, refusals written without a call).

The simulator counts the messages only; OpenAI also bills the ``response_format`` schema of a
structured call. ``+schema`` adds each structured call's schema, counted as text, to both sides.
Ratios are measured within one run of this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from default_corpus import default_corpus  # noqa: E402

from raftkit.llm import OpenAIClient  # noqa: E402
from raftkit.llm.tokens import count_tokens  # noqa: E402
from raftkit.pipeline import RaftConfig, RaftPipeline  # noqa: E402
from raftkit.reference_data import default_models  # noqa: E402
from raftkit.synth import AbstentionRules, CritiqueRules, DedupRules  # noqa: E402
from raftkit.testing import Simulator, SimulatorConfig  # noqa: E402
from raftkit.testing._behaviour import BAD_QUESTION_KINDS, ModelBehaviour  # noqa: E402

CONFIGS: dict[str, dict[str, object]] = {
    "baseline (no critique, no dedup)": {
        "critique": CritiqueRules(mode="off"),
        "dedup": DedupRules(questions=False, chunk_overlap=0),
    },
    "filters + dedup": {"critique": CritiqueRules(mode="filters")},
    "default: judge on excerpts": {},
    "judge on the whole chunk": {"critique": CritiqueRules(context="chunk")},
    "default + refuse (p=0.8)": {"no_oracle_answer": AbstentionRules.parse("refuse")},
    "default + multi-hop 0.2": {"multi_hop": 0.2},
}


@dataclass
class Tokens:
    total: int = 0
    schema: int = 0
    judge: int = 0
    judge_schema: int = 0
    multi_hop: int = 0
    calls: int = 0
    examples: int = 0
    rejected: int = 0


def _entries(journal: Path) -> Iterator[dict[str, object]]:
    with journal.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def measure(run: Path) -> Tokens:
    tokens = Tokens()
    for entry in _entries(run / "journal.jsonl"):
        request = entry.get("request")
        response = entry.get("response")
        if not isinstance(request, dict) or not isinstance(response, dict):
            continue
        usage = response.get("usage") or {}
        spent = int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
        fmt = request.get("response_format")
        schema = (
            count_tokens(json.dumps(fmt), default_models().teacher) if isinstance(fmt, dict) else 0
        )
        tokens.total += spent
        tokens.schema += schema
        tokens.calls += 1
        text = json.dumps(request.get("messages", []), ensure_ascii=False)
        if "ratings" in json.dumps(fmt or {}):
            tokens.judge += spent
            tokens.judge_schema += schema
        elif "BOTH documents" in text or "quote each of them" in text:
            tokens.multi_hop += spent
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    tokens.examples = int(report["examples"])
    tokens.rejected = sum(int(v) for v in report["rejections"].values())
    return tokens


async def run_all(corpus: Path, lazy: float, questions: int) -> dict[str, Tokens]:
    behaviour = {}
    if lazy:
        behaviour[default_models().teacher] = ModelBehaviour(
            bad_questions=lazy, bad_question_kinds=BAD_QUESTION_KINDS
        )
    results: dict[str, Tokens] = {}
    with tempfile.TemporaryDirectory() as scratch:
        async with (
            Simulator(SimulatorConfig(model_behaviour=behaviour)) as sim,
            OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
        ):
            for n, (name, extra) in enumerate(CONFIGS.items()):
                config = RaftConfig(questions_per_chunk=questions, concurrency=16, **extra)
                run = Path(scratch) / f"run{n}"
                await RaftPipeline(client, config).run(corpus, run)
                results[name] = measure(run)
                print(f"  measured: {name}", file=sys.stderr)
    return results


def table(results: dict[str, Tokens]) -> str:
    base = next(iter(results.values()))
    lines = [
        "| configuration | calls | tokens | examples | rejected | gross | net | gross +schema "
        "| net +schema |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in results.items():
        extra = t.judge + t.multi_hop
        extra_schema = extra + t.judge_schema
        lines.append(
            f"| {name} | {t.calls:,} | {t.total:,} | {t.examples:,} | {t.rejected:,} "
            f"| {extra / base.total:.1%} | {t.total / base.total - 1:+.1%} "
            f"| {extra_schema / (base.total + base.schema):.1%} "
            f"| {(t.total + t.schema) / (base.total + base.schema) - 1:+.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--lazy", type=float, default=0.0, help="share of bad questions")
    parser.add_argument("--questions", type=int, default=5)
    args = parser.parse_args()
    corpus = args.corpus or default_corpus()
    results = anyio.run(run_all, corpus, args.lazy, args.questions)
    print(f"corpus {corpus}, {args.questions} questions per chunk, bad questions {args.lazy:.0%}")
    print(table(results))


if __name__ == "__main__":
    main()

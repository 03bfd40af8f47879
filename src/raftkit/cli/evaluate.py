"""``raftkit eval RUN_DIR --models base,tuned``: did fine-tuning help, and is it real?

The held-out split is recomputed from ``RUN_DIR/examples.jsonl`` with the same function and
seed as ``raftkit export``, so it is exactly the set the student never trained on. Every answer
is journaled in ``RUN_DIR/eval/``: an evaluation killed half-way resumes without paying again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raftkit.cli._clients import add_client_arguments, open_client
from raftkit.dataset import read_examples, split_examples
from raftkit.errors import UsageError
from raftkit.evaluate import (
    BUILTIN_METRICS,
    JudgeCorrectness,
    Metric,
    ModelSpec,
    RaftEvaluator,
    render_markdown,
    write_report,
)
from raftkit.evaluate.report import ContextSetting
from raftkit.journal import Journal
from raftkit.run_dir import RunDir

__all__ = ["add_parser", "run"]

_SETTINGS: tuple[ContextSetting, ...] = ("dataset", "no_oracle", "oracle_only")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "eval",
        help="compare models on the held-out split, with confidence intervals",
        description="Answer every held-out question with each model in the RAFT setting "
        "(oracle and distractors), score the answers and compare every model with the first "
        "(the baseline) by paired bootstrap. Writes RUN_DIR/eval/report.{md,html,json}.",
    )
    p.add_argument("run_dir", type=Path, help="a generation run directory")
    p.add_argument(
        "--models",
        required=True,
        help="comma-separated model names; the first is the baseline (e.g. "
        "gpt-4o-mini,ft:gpt-4o-mini:org::abc)",
    )
    p.add_argument("--split", choices=["test", "validation", "train"], default="test")
    p.add_argument("--seed", type=int, default=0, help="the split's seed (as in raftkit export)")
    p.add_argument("--group-by", choices=["chunk", "document"], default="chunk")
    p.add_argument(
        "--settings",
        default="dataset",
        help="comma-separated: dataset (as generated), no_oracle, oracle_only",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N questions")
    p.add_argument("--judge-model", help="add an LLM-as-judge correctness score by this model")
    p.add_argument(
        "--ragas",
        action="store_true",
        help="add ragas faithfulness, answer relevancy, similarity, correctness (extra)",
    )
    p.add_argument("--ragas-model", default="gpt-4o-mini", help="the model ragas' metrics ask")
    p.add_argument("--embedding-model", default="text-embedding-3-small")
    p.add_argument("--concurrency", type=int, default=8, help="questions in flight")
    p.add_argument("--bootstrap-seed", type=int, default=0)
    add_client_arguments(p)
    p.set_defaults(handler=run)


def _settings(text: str) -> tuple[ContextSetting, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in chosen if s not in _SETTINGS]
    if unknown or not chosen:
        raise UsageError(f"--settings takes {', '.join(_SETTINGS)}; got {text!r}")
    return tuple(s for s in _SETTINGS if s in chosen)


async def run(args: argparse.Namespace) -> int:
    run = RunDir(args.run_dir)
    examples_path = run.examples
    if not examples_path.exists():
        raise UsageError(f"{examples_path} does not exist: run `raftkit generate` first")
    with run.lock("raftkit eval"):
        return await _evaluate(args, run)


async def _evaluate(args: argparse.Namespace, run: RunDir) -> int:
    examples_path = run.examples
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise UsageError("--models needs at least one model name")
    split = split_examples(read_examples(examples_path), seed=args.seed, group_by=args.group_by)
    held_out = {"test": split.test, "validation": split.validation, "train": split.train}[
        args.split
    ]
    if args.limit is not None:
        held_out = held_out[: args.limit]
    if not held_out:
        raise UsageError(f"the {args.split} split of {examples_path} is empty")

    out = run.eval
    async with open_client(args) as opened:
        with Journal(out).open() as journal:
            client = opened.client.with_store(journal)
            metrics: list[Metric] = list(BUILTIN_METRICS)
            if args.judge_model:
                metrics.append(JudgeCorrectness(client, model=args.judge_model))
            if args.ragas:
                from raftkit.evaluate.ragas_adapter import ragas_metrics

                metrics.extend(
                    ragas_metrics(
                        client, model=args.ragas_model, embedding_model=args.embedding_model
                    )
                )
            evaluator = RaftEvaluator(
                metrics,
                settings=_settings(args.settings),
                max_concurrency=args.concurrency,
                seed=args.bootstrap_seed,
            )
            specs = [ModelSpec(name=m, client=client, model=m) for m in models]
            report = await evaluator.evaluate(held_out, specs, baseline=models[0])
            paid, replayed = journal.recorded, journal.replayed
        # simulated: the run's examples, or an answer (this time or journaled before)
        simulated = (
            run.simulated() or opened.simulated or opened.ledger.report().simulated_responses > 0
        )
    if simulated:
        report = report.model_copy(update={"simulated": True})
    written = await write_report(report, out)
    print(render_markdown(report))
    print(
        f"{len(held_out)} questions, {paid} calls paid, {replayed} replayed from the journal; "
        f"report: {written['markdown']} and {written['html']}",
        file=sys.stderr,
    )
    return 0

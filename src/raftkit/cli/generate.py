"""``raftkit generate DOCS --out RUN_DIR``: documents to verified RAFT examples."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raftkit.cli._clients import add_client_arguments, open_client
from raftkit.cli._progress import ProgressLine
from raftkit.llm.usage import PriceTable
from raftkit.pipeline import RaftConfig, RaftPipeline, estimate_cost
from raftkit.run_dir import RunDir

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = RaftConfig()
    p = commands.add_parser(
        "generate",
        help="turn a folder of documents into RAFT training examples",
        description="Extract, chunk, synthesize questions, sample distractors and write verified "
        "chain-of-thought answers into RUN_DIR/examples.jsonl. Resumable: run it again on the "
        "same RUN_DIR after a crash and paid results are replayed from the journal.",
    )
    p.add_argument("docs", type=Path, help="a folder (or one file) of documents")
    p.add_argument("--out", type=Path, required=True, help="the run directory")
    p.add_argument("--teacher-model", default=defaults.teacher_model)
    p.add_argument(
        "--questions", type=int, default=defaults.questions_per_chunk, help="questions per chunk"
    )
    p.add_argument(
        "--distractors",
        type=int,
        default=defaults.distractors,
        help="k distractor documents per question",
    )
    p.add_argument(
        "-p",
        "--oracle-probability",
        type=float,
        default=defaults.oracle_probability,
        help="probability that the oracle is in the context (paper: 0.8)",
    )
    p.add_argument("--sampler", choices=["uniform", "embedding", "bm25"], default=defaults.sampler)
    p.add_argument("--embedding-model", default=defaults.embedding_model)
    p.add_argument("--chunker", choices=["token", "markdown", "semantic"], default=defaults.chunker)
    p.add_argument("--chunk-size", type=int, default=defaults.chunk_size)
    p.add_argument("--chunk-overlap", type=int, default=defaults.chunk_overlap)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--vision-model",
        help="a vision-capable chat model that reads PDF pages (with tables) into Markdown",
    )
    p.add_argument("--vision-pages", choices=["tables", "all"], default=defaults.vision_pages)
    p.add_argument(
        "--answer-max-tokens",
        type=int,
        help="pin the cap on each teacher answer (default: learned from the run's replies)",
    )
    p.add_argument(
        "--question-max-tokens",
        type=int,
        help="pin the cap on each question-list reply (default: learned)",
    )
    p.add_argument(
        "--max-tokens-policy",
        choices=["adaptive", "server-default"],
        default=defaults.max_tokens_policy,
        help="adaptive: every teacher call carries a max_tokens learned from the run's replies; "
        "server-default: none is sent (raftkit before 0.2; rate limits then count the server's "
        "default, often 1,024 tokens, for every reply)",
    )
    p.add_argument("--max-answer-attempts", type=int, default=defaults.max_answer_attempts)
    p.add_argument(
        "--answers-per-call",
        type=int,
        default=defaults.answers_per_call,
        metavar="K",
        help="questions of a chunk answered by one teacher call; each answer is verified on "
        "its own and a rejected one re-asked alone (fewer prompt tokens per example)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=defaults.concurrency,
        help="chunks in flight (rate limits still apply)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="count chunks and estimate calls, tokens and $ without paying anything",
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="send teacher calls through the Batch API (half price, up to 24 h per round)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    add_client_arguments(p)
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    config = RaftConfig(
        teacher_model=args.teacher_model,
        questions_per_chunk=args.questions,
        distractors=args.distractors,
        oracle_probability=args.oracle_probability,
        sampler=args.sampler,
        embedding_model=args.embedding_model,
        chunker=args.chunker,
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        seed=args.seed,
        max_answer_attempts=args.max_answer_attempts,
        vision_model=args.vision_model,
        vision_pages=args.vision_pages,
        answer_max_tokens=args.answer_max_tokens,
        question_max_tokens=args.question_max_tokens,
        max_tokens_policy=args.max_tokens_policy,
        answers_per_call=args.answers_per_call,
        concurrency=args.concurrency,
    )
    if not args.docs.exists():
        print(f"raftkit generate: {args.docs} does not exist", file=sys.stderr)
        return 2
    if args.dry_run:
        estimate = await estimate_cost(args.docs, config, prices=PriceTable())
        print(estimate.markdown())
        return 0
    async with open_client(args) as opened:
        pipeline = RaftPipeline(
            opened.client,
            config,
            progress=None if args.quiet else ProgressLine(),
            batch=args.batch,
        )
        report = await pipeline.run(args.docs, args.out, simulated_teacher=opened.simulated)
    print(report.markdown())
    run = RunDir(args.out)
    print(f"examples: {run.examples}   report: {run.report_md}")
    return 0 if report.status == "completed" else 1

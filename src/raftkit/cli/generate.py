"""``raftkit generate DOCS --out RUN_DIR``: documents to verified RAFT examples."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from raftkit.batch import BatchStatus
from raftkit.cli._clients import add_client_arguments, chosen_provider, open_client
from raftkit.cli._progress import StatusLine
from raftkit.cli._reference import (
    defaults_table,
    hosted_provider,
    price_table,
    report_lifecycle,
    teacher_default,
    today_override,
)
from raftkit.errors import UsageError
from raftkit.llm import LLMClient
from raftkit.pipeline import Progress, RaftConfig, RaftPipeline, estimate_cost
from raftkit.run_dir import RunDir
from raftkit.synth import AbstentionRules, CritiqueRules, DedupRules, QuestionMix, VerifyRules

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
    p.add_argument(
        "--teacher-model", help=f"default: {defaults.teacher_model} (raftkit's defaults table)"
    )
    p.add_argument(
        "--student",
        metavar="MODEL",
        help="the model you will fine-tune on the result: checked before anything is paid "
        "(a model or provider past its fine-tuning date is refused)",
    )
    p.add_argument(
        "--student-provider",
        choices=["openai", "azure", "local"],
        help="where the student will be trained (default: the teacher's provider)",
    )
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
    rules = defaults.verification
    p.add_argument(
        "--min-quote-words",
        type=int,
        default=rules.min_quote_words,
        help="a quote passes with this many words (see docs/synthesis.md; 0: off)",
    )
    p.add_argument(
        "--min-quote-chars",
        type=int,
        default=rules.min_quote_chars,
        help="... or with this many letters and digits",
    )
    p.add_argument(
        "--min-quote-cjk-chars",
        type=int,
        default=rules.min_quote_cjk_chars,
        help="... or with this many Chinese/Japanese/Korean characters",
    )
    p.add_argument(
        "--min-answer-support",
        type=float,
        default=rules.min_answer_support,
        help="share of the final answer's content words that must occur in the oracle",
    )
    _add_quality_arguments(p, defaults)
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
        "--limit",
        type=int,
        metavar="N",
        help="work on the first N chunks of the corpus only, to try a little first; run again "
        "without it (same --out) to go on to the whole corpus without paying twice",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="count chunks and estimate calls, tokens and $ without paying anything "
        "(with --limit: for the limited run and for the whole corpus)",
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="send teacher calls through the Batch API (half price, up to 24 h per round)",
    )
    p.add_argument("--quiet", action="store_true", help="no live status line")
    add_client_arguments(p)
    p.set_defaults(handler=run)


def _add_quality_arguments(p: argparse.ArgumentParser, defaults: RaftConfig) -> None:
    """Question critique, de-duplication, refusals, multi-hop questions, question types."""
    critique, dedup = defaults.critique, defaults.dedup
    p.add_argument(
        "--critique",
        nargs="?",
        const="judge",
        choices=["judge", "filters", "off"],
        default=critique.mode,
        help="question critique: free filters then one judge call per chunk (judge), the "
        "filters only, or none (see docs/synthesis.md)",
    )
    p.add_argument(
        "--no-critique", dest="critique", action="store_const", const="off", help="--critique off"
    )
    p.add_argument("--critique-model", help="the judge model (default: the teacher)")
    p.add_argument(
        "--critique-threshold",
        type=int,
        default=critique.threshold,
        help="a rating (1-5) below this rejects a question",
    )
    p.add_argument(
        "--critique-context",
        choices=["excerpts", "chunk"],
        default=critique.context,
        help="what the judge sees: the chunk's sentences nearest each question, or all of it",
    )
    p.add_argument(
        "--no-dedup",
        action="store_true",
        help="keep near-duplicate questions across the corpus",
    )
    p.add_argument(
        "--dedup-similarity",
        type=float,
        help="also drop questions whose embeddings (--embedding-model) are this similar "
        "(cosine, e.g. 0.95) to an earlier one's",
    )
    p.add_argument(
        "--duplicate-chunk-overlap",
        type=float,
        default=dedup.chunk_overlap,
        help="chunks sharing this share of their sentences go to one split group (0: off)",
    )
    p.add_argument(
        "--no-oracle-answer",
        default=defaults.no_oracle_answer.spec(),
        metavar="paper|refuse|mix:SHARE",
        help="examples whose context lacks the oracle: the oracle's answer (the paper), a "
        "refusal, or a refusal for a share of them",
    )
    p.add_argument(
        "--refusal-answer",
        default=defaults.no_oracle_answer.phrase,
        help="the final answer of a refusal (what evaluation recognises)",
    )
    p.add_argument(
        "--multi-hop",
        type=float,
        default=defaults.multi_hop,
        metavar="SHARE",
        help="share of chunks that also get a question needing a related chunk",
    )
    p.add_argument(
        "--question-mix",
        metavar="SPEC|FILE",
        help="question types and shares, e.g. factoid=0.5,explanation=0.3,comparison=0.2, or "
        "a JSON file with types and personas",
    )
    p.add_argument(
        "--personas",
        help="personas the questions are asked as, separated by ';' (with --question-mix)",
    )


def _question_mix(args: argparse.Namespace) -> QuestionMix | None:
    personas = [p for p in (args.personas or "").split(";") if p.strip()]
    if args.question_mix is None:
        if personas:
            raise UsageError("--personas needs --question-mix")
        return None
    path = Path(args.question_mix)
    if path.suffix.lower() == ".json" or path.is_file():
        mix = QuestionMix.load(path)
        if personas:
            mix = mix.model_copy(update={"personas": tuple(personas)})
        return mix
    return QuestionMix.parse(args.question_mix, personas=personas)


def _config(args: argparse.Namespace) -> RaftConfig:
    return RaftConfig(
        teacher_model=args.teacher_model or teacher_default(args),
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
        verification=VerifyRules(
            min_quote_words=args.min_quote_words,
            min_quote_chars=args.min_quote_chars,
            min_quote_cjk_chars=args.min_quote_cjk_chars,
            min_answer_support=args.min_answer_support,
        ),
        critique=CritiqueRules(
            mode=args.critique,
            model=args.critique_model,
            threshold=args.critique_threshold,
            context=args.critique_context,
        ),
        dedup=DedupRules(
            questions=not args.no_dedup,
            similarity=args.dedup_similarity,
            chunk_overlap=args.duplicate_chunk_overlap,
        ),
        no_oracle_answer=AbstentionRules.parse(args.no_oracle_answer, phrase=args.refusal_answer),
        multi_hop=args.multi_hop,
        question_mix=_question_mix(args),
        max_tokens_policy=args.max_tokens_policy,
        answers_per_call=args.answers_per_call,
        concurrency=args.concurrency,
    )


async def run(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise UsageError(f"invalid setting {where}: {error['msg']}") from None
    if not args.docs.exists():
        print(f"raftkit generate: {args.docs} does not exist", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit takes a number of chunks, at least 1; got {args.limit}")
    if args.dry_run:
        estimate = await estimate_cost(
            args.docs, config, prices=price_table(args), limit=args.limit
        )
        print(estimate.markdown())
        today = today_override() or datetime.now(UTC).date()
        notice = defaults_table(args).stale_notice(today)
        if notice is not None:
            print(f"Note: {notice}.")
        # nothing is asked of a service in a dry run: the dates come from raftkit's table
        await _check_models(args, None, config.teacher_model, chosen_provider(args), refuse=False)
        return 0
    async with open_client(args) as opened:
        status = StatusLine(
            "generate", quiet=args.quiet, ledger=opened.ledger, activity=opened.client.activity
        )
        pipeline = RaftPipeline(
            opened.client,
            config,
            progress=lambda p: _show_progress(status, p),
            batch=args.batch,
            batch_progress=lambda b: _show_batch(status, b),
        )
        # a run that will not resume here is refused before the endpoint is asked anything
        pipeline.check_resumable(args.out, simulated_teacher=opened.simulated)
        await _check_models(args, opened.client, config.teacher_model, opened.provider)
        async with status.shown():
            report = await pipeline.run(
                args.docs, args.out, simulated_teacher=opened.simulated, limit=args.limit
            )
    print(report.markdown())
    run = RunDir(args.out)
    print(f"examples: {run.examples}   report: {run.report_md}")
    if report.status != "completed":
        # the report says why; this line is for a terminal that only shows stderr
        print(f"raftkit generate: {report.status}: {report.stop_reason}", file=sys.stderr)
        return 1
    if args.limit is not None:
        print(
            f"limited to the first {args.limit} chunks: run the same command without --limit "
            "to go on to the whole corpus (nothing done so far is paid again)",
            file=sys.stderr,
        )
    return 0


async def _check_models(
    args: argparse.Namespace,
    client: LLMClient | None,
    teacher: str,
    provider: str,
    *,
    refuse: bool = True,
) -> None:
    """The teacher must still serve; the student, if named, must still be fine-tunable where
    it will be trained. A refusal stops the run before its first paid call (a dry run, which
    pays nothing, only says it)."""
    await report_lifecycle(
        args, client, teacher, provider=provider, purpose="inference", refuse=refuse
    )
    if args.student is None:
        return
    student_provider = args.student_provider or hosted_provider(provider)
    if student_provider == "local":
        return
    same = student_provider == hosted_provider(provider)
    await report_lifecycle(
        args,
        client if same else None,
        args.student,
        provider=student_provider,
        purpose="finetune",
        refuse=refuse,
    )


def _show_progress(status: StatusLine, p: Progress) -> None:
    status.update(
        phase="",
        done=p.chunks_done,
        total=p.chunks_total,
        unit="chunks",
        detail=f"questions {p.questions}  examples {p.examples}  rejected {p.rejected}",
    )


def _show_batch(status: StatusLine, b: BatchStatus) -> None:
    failed = f", {b.failed} failed" if b.failed else ""
    status.update(
        phase=f"batch round {b.round}",
        done=b.completed,
        total=b.total or None,
        unit="requests",
        detail=f"batch {b.batch_id} {b.status}{failed}",
    )

"""``raftkit eval RUN_DIR --models base,tuned``: did fine-tuning help, and is it real?

The held-out split is recomputed from ``RUN_DIR/examples.jsonl`` with the seed, grouping and
ratios ``raftkit export`` recorded, so it is exactly the set the student never trained on; the
system prompt is the export's. Models may live at different endpoints
(``--model tuned=raft@http://127.0.0.1:8002/v1``), each its own client; ``@finetuned`` is the
model ``finetune.json`` records. With ``--retriever`` each question's documents are the top-k
chunks a retriever returns over the whole corpus. Every answer is journaled in
``RUN_DIR/eval/``: an evaluation killed half-way resumes without paying again. The run
directory's conventions live in :mod:`raftkit.eval_run`; this module reads arguments and prints.
Every hosted model is checked against its lifecycle dates first: one that has shut down is
refused, one that shuts down soon is a warning with its days left.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import anyio

from raftkit.cli._clients import OpenedClient, add_client_arguments, open_client
from raftkit.cli._progress import StatusLine
from raftkit.cli._reference import report_lifecycle
from raftkit.errors import UsageError
from raftkit.eval_run import (
    LOCAL_ADAPTER_NAME,
    EmbeddingRetriever,
    HeldOut,
    RetrieverSpec,
    base_model,
    finetuned_model,
    held_out_examples,
    parse_retriever_spec,
    retriever_embedder,
    trained_prompt,
    training_curve_links,
)
from raftkit.evaluate import (
    BUILTIN_METRICS,
    JudgeCorrectness,
    Metric,
    ModelSpec,
    RaftEvaluator,
    abstention_metrics,
    render_markdown,
    write_report,
)
from raftkit.evaluate.abstention import refusal_answer_of
from raftkit.evaluate.endpoints import (
    EndpointScopedStore,
    ModelTarget,
    check_endpoint,
    parse_model_targets,
)
from raftkit.evaluate.prompt import default_max_tokens
from raftkit.evaluate.report import ContextSetting
from raftkit.evaluate.retrieved import RetrievedContexts, retrieve_contexts
from raftkit.evaluate.runner import Setting
from raftkit.journal import Journal
from raftkit.llm import LLMClient
from raftkit.llm.usage import UsageLedger
from raftkit.retrieval import ClientEmbedder, Embedder, SentenceTransformerEmbedder, read_chunks
from raftkit.run_dir import RunDir
from raftkit.types import DEFAULT_REFUSAL_ANSWER

__all__ = ["add_parser", "run"]

_SETTINGS: tuple[ContextSetting, ...] = ("dataset", "no_oracle", "oracle_only")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "eval",
        help="compare models on the held-out split, with confidence intervals",
        description="Answer every held-out question with each model in the RAFT setting "
        "(oracle and distractors, or what a retriever returns), score the answers and compare "
        "every model with the first (the baseline) by paired bootstrap. Writes "
        "RUN_DIR/eval/report.{md,html,json}.",
    )
    p.add_argument("run_dir", type=Path, help="a generation run directory")
    p.add_argument(
        "--models",
        help="comma-separated models at the default endpoint; the first is the baseline "
        "(e.g. gpt-4o-mini,@finetuned)",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[LABEL=]MODEL[@URL]",
        help="a model, optionally labelled and served at its own base URL, e.g. "
        "base=SmolLM2-135M-Instruct@http://127.0.0.1:8001/v1; repeat it; after --models. "
        "MODEL @finetuned is the model finetune.json records (a local adapter: as `raftkit "
        "serve --run` serves it), @base its base model",
    )
    p.add_argument("--split", choices=["test", "validation", "train"], default="test")
    p.add_argument("--seed", type=int, help="the split's seed (default: dataset/split.json's)")
    p.add_argument(
        "--group-by", choices=["chunk", "document"], help="default: dataset/split.json's"
    )
    p.add_argument(
        "--settings",
        help="comma-separated: dataset (as generated), no_oracle, oracle_only (default: "
        "dataset, or none when --retriever is given)",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N questions")
    p.add_argument(
        "--max-tokens",
        type=int,
        help="cap on each answer (default: twice the longest reference answer, at least 256)",
    )
    p.add_argument(
        "--system-prompt",
        help="the system prompt sent (default: the one `raftkit export` used; '' for none)",
    )
    p.add_argument(
        "--refusal-answer",
        help="the final answer that counts as a refusal (default: the examples' refusals, "
        f"else {DEFAULT_REFUSAL_ANSWER!r})",
    )
    retrieval = p.add_argument_group("retriever in the loop")
    retrieval.add_argument(
        "--retriever",
        action="append",
        default=[],
        metavar="SPEC",
        help="base, adapter:PATH or model:NAME (comma-separate or repeat: base,adapter:A.npz "
        "gives the base/tuned retriever grid); each question gets the top-k chunks it returns",
    )
    retrieval.add_argument("--top-k", type=int, default=5, help="chunks retrieved per question")
    retrieval.add_argument(
        "--retriever-embedding-model",
        help="the base retriever: this API embedding model (default: the local MiniLM, "
        "extra 'embeddings')",
    )
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
    p.add_argument("--quiet", action="store_true", help="no live status line")
    add_client_arguments(p, role="evaluation")
    p.set_defaults(handler=run)


def _settings(text: str | None, retrieving: bool) -> tuple[ContextSetting, ...]:
    if text is None:
        return () if retrieving else ("dataset",)
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in chosen if s not in _SETTINGS]
    if unknown or not chosen:
        raise UsageError(f"--settings takes {', '.join(_SETTINGS)}; got {text!r}")
    return tuple(s for s in _SETTINGS if s in chosen)


def _targets(args: argparse.Namespace, run: RunDir) -> list[ModelTarget]:
    targets = parse_model_targets(args.models, args.model)
    resolved = []
    for target in targets:
        if not target.is_alias:
            resolved.append(target)
            continue
        tuned = target.is_finetuned_alias
        name = finetuned_model(run) if tuned else base_model(run)
        if tuned and name == LOCAL_ADAPTER_NAME and not (target.base_url or args.base_url):
            raise UsageError(
                f"{target}: the run's fine-tune is a local adapter; serve it (raftkit serve "
                f"--run {run.root}) and say where: --model tuned=@finetuned@http://127.0.0.1:8000/v1"
            )
        resolved.append(ModelTarget(target.label, name, target.base_url))
    return resolved


def _retrievers(args: argparse.Namespace) -> list[RetrieverSpec]:
    texts = [t for given in args.retriever for t in given.split(",") if t.strip()]
    specs = [parse_retriever_spec(t) for t in texts]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"--retriever names one retriever twice: {', '.join(names)}")
    if specs and args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    return specs


def _metrics(
    args: argparse.Namespace, held: HeldOut, client: LLMClient | None, notes: list[str]
) -> list[Metric]:
    refusal = args.refusal_answer or refusal_answer_of(held.all_examples) or DEFAULT_REFUSAL_ANSWER
    notes.append(f"a refusal is a final answer saying {refusal!r}")
    metrics: list[Metric] = [*BUILTIN_METRICS, *abstention_metrics(refusal)]
    if args.judge_model:
        assert client is not None
        metrics.append(JudgeCorrectness(client, model=args.judge_model))
    if args.ragas:
        from raftkit.evaluate.ragas_adapter import ragas_metrics

        assert client is not None
        metrics.extend(
            ragas_metrics(client, model=args.ragas_model, embedding_model=args.embedding_model)
        )
    return metrics


async def _retrieved(
    args: argparse.Namespace,
    run: RunDir,
    held: HeldOut,
    specs: list[RetrieverSpec],
    default: OpenedClient | None,
) -> list[RetrievedContexts]:
    if not specs:
        return []
    chunks = await anyio.to_thread.run_sync(read_chunks, run.root)
    texts = {c.id: c.text for c in chunks}
    cache = run.embedding_cache
    base: Embedder
    if args.retriever_embedding_model:
        assert default is not None
        base = ClientEmbedder(default.client, args.retriever_embedding_model, cache_dir=cache)
    else:
        base = SentenceTransformerEmbedder(cache_dir=cache)
    found: list[RetrievedContexts] = []
    for spec in specs:
        embedder = retriever_embedder(spec, base, cache)
        retriever = EmbeddingRetriever(embedder, chunks, name=spec.name)
        contexts = await retrieve_contexts(
            retriever,
            held.examples,
            texts,
            k=args.top_k,
            store=run.retrieved_contexts(spec.name),
        )
        found.append(contexts)
        hits = sum(contexts.hit(e) for e in held.examples)
        print(
            f"retriever {spec.name}: oracle in the top {args.top_k} for {hits} of "
            f"{len(held.examples)} questions",
            file=sys.stderr,
        )
    return found


async def run(args: argparse.Namespace) -> int:
    run = RunDir(args.run_dir)
    if not run.examples.exists():
        raise UsageError(f"{run.examples} does not exist: run `raftkit generate` first")
    with run.lock("raftkit eval"):
        return await _evaluate(args, run)


async def _evaluate(args: argparse.Namespace, run: RunDir) -> int:
    targets = _targets(args, run)
    specs = _retrievers(args)
    chosen = _settings(args.settings, bool(specs))
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    held = await held_out_examples(
        run, split=args.split, seed=args.seed, group_by=args.group_by, limit=args.limit
    )
    notes = [*held.notes, *held.warnings]
    for warning in held.warnings:
        print(f"raftkit eval: warning: {warning}", file=sys.stderr)
    if args.system_prompt is not None:
        system_prompt = args.system_prompt or None
        notes.append("system prompt: given on the command line")
    else:
        trained = trained_prompt(run)
        system_prompt = trained.system_prompt
        shown = "none" if system_prompt is None else repr(system_prompt)
        notes.append(f"system prompt {trained.source}: {shown}")
    cap = args.max_tokens or default_max_tokens(held.examples)
    notes.append(
        f"answers capped at {cap} tokens"
        + ("" if args.max_tokens else " (twice the longest reference answer, at least 256)")
    )
    needs_default = (
        any(t.base_url is None for t in targets)
        or bool(args.judge_model or args.ragas)
        or bool(specs and args.retriever_embedding_model)
    )

    out = run.eval
    async with AsyncExitStack() as stack:
        journal = stack.enter_context(Journal(out).open())
        default: OpenedClient | None = None
        if needs_default:
            default = await stack.enter_async_context(open_client(args))
            # a model that no longer serves is refused before the first paid answer
            hosted = [t.model for t in targets if t.base_url is None]
            for name in [*hosted, *([args.judge_model] if args.judge_model else [])]:
                await report_lifecycle(
                    args, default.client, name, provider=default.provider, purpose="inference"
                )
        ledger = default.ledger if default else UsageLedger(max_cost_usd=args.max_cost_usd)
        clients: dict[str | None, LLMClient] = {}
        if default is not None:
            clients[None] = default.client.with_store(journal)
        for url in dict.fromkeys(t.base_url for t in targets if t.base_url):
            opened = await stack.enter_async_context(open_client(args, base_url=url, ledger=ledger))
            await check_endpoint(opened.client, url)
            clients[url] = opened.client.with_store(EndpointScopedStore(journal, url))
        retrieved = await _retrieved(args, run, held, specs, default)
        settings: list[Setting] = [*chosen, *retrieved]
        status = StatusLine(
            "eval",
            quiet=args.quiet,
            ledger=ledger,
            activity=next(iter(clients.values())).activity,
        )
        evaluator = RaftEvaluator(
            _metrics(args, held, clients.get(None), notes),
            settings=settings,
            max_concurrency=args.concurrency,
            seed=args.bootstrap_seed,
            progress=lambda done, total: status.update(done=done, total=total, unit="answers"),
        )
        models = [
            ModelSpec(
                name=t.label,
                client=clients[t.base_url],
                model=t.model,
                endpoint=t.base_url,
                max_tokens=cap,
                system_prompt=system_prompt,
            )
            for t in targets
        ]
        async with status.shown():
            report = await evaluator.evaluate(held.examples, models, baseline=targets[0].label)
        paid, replayed = journal.recorded, journal.replayed
        # simulated: the run's examples, or an answer (this time or journaled before)
        simulated = run.simulated() or ledger.report().simulated_responses > 0
        simulated = simulated or (default is not None and default.simulated)
    links = training_curve_links(run, out)
    report = report.model_copy(update={"notes": notes, "links": links, "simulated": simulated})
    written = await write_report(report, out)
    print(render_markdown(report))
    print(
        f"{len(held.examples)} questions, {paid} calls paid, {replayed} replayed from the "
        f"journal; report: {written['markdown']} and {written['html']}",
        file=sys.stderr,
    )
    return 0

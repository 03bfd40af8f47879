"""``raftkit retrieval ...``: pairs, adapters, full fine-tuning and evaluation of the retriever.

Everything is written under ``RUN_DIR/retrieval/``: ``pairs.jsonl`` (with each pair's split),
``cache/`` (embeddings, so nothing is embedded twice), adapters (``adapter-<kind>.npz``),
``bi-encoder/`` and ``cross-encoder/`` (full fine-tunes) and ``report.md`` / ``report.html``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from raftkit.cli._clients import add_client_arguments, open_client
from raftkit.cli._progress import StatusLine
from raftkit.errors import UsageError
from raftkit.retrieval import (
    AdaptedEmbedder,
    Adapter,
    ClientEmbedder,
    CrossEncoderReranker,
    Embedder,
    FinetuneConfig,
    PairSplit,
    RetrievalResult,
    SentenceTransformerEmbedder,
    TrainingConfig,
    build_report,
    evaluate_retrieval,
    finetune_bi_encoder,
    finetune_cross_encoder,
    fit_adapter,
    mine_hard_negatives,
    pairs_from_run,
    read_chunks,
    read_pairs,
    split_pairs,
    write_pairs,
)
from raftkit.run_dir import RunDir

__all__ = ["add_parser", "run"]


def _ratios(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("give three comma-separated shares: train,val,test")
    return (parts[0], parts[1], parts[2])


def _embedder_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--embedder",
        choices=["minilm", "api"],
        help="minilm: the local offline all-MiniLM-L6-v2 (extra 'embeddings'); api: "
        "--embedding-model through the API (default: api if --embedding-model is given)",
    )
    p.add_argument("--embedding-model", help="API embedding model, e.g. text-embedding-3-small")
    p.add_argument("--no-cache", action="store_true", help="do not cache embeddings on disk")
    add_client_arguments(p, role="embeddings")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = commands.add_parser(
        "retrieval",
        help="fine-tune and evaluate the retriever (embeddings, adapters, reranker)",
        description="Build (question, chunk) pairs from a generation run, train embedding "
        "adapters or fine-tune encoders on them, and report hit rate, MRR, recall and nDCG "
        "with bootstrap intervals.",
    )
    sub = top.add_subparsers(dest="retrieval_command", required=True, metavar="COMMAND")

    p = sub.add_parser("pairs", help="pairs and a split by chunk from a generation run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--no-rejected", action="store_true", help="leave out rejected questions")
    p.add_argument("--ratios", type=_ratios, default=(0.8, 0.1, 0.1), help="train,val,test")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train-adapter", help="train a linear or MLP adapter in numpy")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--kind", choices=["linear", "mlp"], default="linear")
    p.add_argument("--out-dim", type=int, help="output dimension (default: the embedder's)")
    p.add_argument("--epochs", type=int, default=TrainingConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainingConfig.batch_size)
    p.add_argument("--learning-rate", type=float, default=TrainingConfig.learning_rate)
    p.add_argument("--temperature", type=float, default=TrainingConfig.temperature)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, help="adapter file (default RUN_DIR/retrieval/adapter-KIND.npz)"
    )
    p.add_argument("--quiet", action="store_true", help="no live status line")
    _embedder_arguments(p)

    p = sub.add_parser("finetune", help="fully fine-tune the MiniLM bi-encoder (and a reranker)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--reranker",
        action="store_true",
        help="also train a cross-encoder on hard negatives mined by the base model",
    )
    p.add_argument("--reranker-loss", choices=["bce", "mnrl"], default="bce")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.set_defaults(embedder="minilm", embedding_model=None, no_cache=False)

    p = sub.add_parser("evaluate", help="evaluate embedders and write report.md / report.html")
    p.add_argument("run_dir", type=Path)
    p.add_argument(
        "--embedders",
        default="base",
        help="comma-separated: base, adapter:PATH, model:DIR (a fine-tuned sentence-"
        "transformers model); the first is the baseline",
    )
    p.add_argument("--reranker", type=Path, help="a cross-encoder directory to rerank with")
    p.add_argument("--rerank-depth", type=int, default=20)
    p.add_argument("--split", choices=["train", "validation", "test"], default="test")
    _embedder_arguments(p)
    top.set_defaults(handler=run)


async def _pairs(
    run_dir: Path,
    *,
    seed: int = 0,
    ratios: Any = (0.8, 0.1, 0.1),
    include_rejected: bool = True,
    rebuild: bool = False,
) -> PairSplit:
    run = RunDir(run_dir)
    path = run.pairs
    if path.is_file() and not rebuild:
        return await anyio.to_thread.run_sync(read_pairs, path)
    pairs = await pairs_from_run(run_dir, include_rejected=include_rejected)
    split = split_pairs(pairs, ratios=ratios, seed=seed)

    def save() -> None:
        write_pairs(path, split.all())
        run.pair_split.write_text(split.report.model_dump_json(indent=2), "utf-8")

    await anyio.to_thread.run_sync(save)
    return split


@asynccontextmanager
async def _base_embedder(
    args: argparse.Namespace, simulated: list[bool] | None = None
) -> AsyncIterator[Embedder]:
    """The base embedder; ``simulated`` gets ``True`` appended if the simulator embedded."""
    cache = None if args.no_cache else RunDir(args.run_dir).embedding_cache
    use_api = args.embedder == "api" or (args.embedder is None and args.embedding_model)
    if not use_api:
        yield SentenceTransformerEmbedder(cache_dir=cache)
        return
    if not args.embedding_model:
        raise UsageError("--embedder api needs --embedding-model (e.g. text-embedding-3-small)")
    async with open_client(args) as opened:
        try:
            yield ClientEmbedder(opened.client, args.embedding_model, cache_dir=cache)
        finally:
            if simulated is not None and (
                opened.simulated or opened.ledger.report().simulated_responses > 0
            ):
                simulated.append(True)


async def _cmd_pairs(args: argparse.Namespace) -> int:
    split = await _pairs(
        args.run_dir,
        seed=args.seed,
        ratios=args.ratios,
        include_rejected=not args.no_rejected,
        rebuild=True,
    )
    print(split.report.render())
    print(f"pairs: {RunDir(args.run_dir).pairs}")
    return 0


async def _cmd_train_adapter(args: argparse.Namespace) -> int:
    split = await _pairs(args.run_dir, seed=args.seed)
    chunks = await anyio.to_thread.run_sync(read_chunks, args.run_dir)
    config = TrainingConfig(
        kind=args.kind,
        out_dim=args.out_dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        temperature=args.temperature,
        seed=args.seed,
    )
    status = StatusLine("retrieval train-adapter", quiet=args.quiet)
    status.update(phase="embedding")

    def on_epoch(epoch: int, epochs: int, loss: float) -> None:
        status.update(
            phase="training", done=epoch, total=epochs, unit="epochs", detail=f"loss {loss:.4f}"
        )

    async with _base_embedder(args) as base, status.shown():
        if isinstance(base, ClientEmbedder):
            status.ledger = base.client.ledger
            status.activity = base.client.activity
        adapter, history = await fit_adapter(
            base, chunks, split.train, split.validation, config=config, on_epoch=on_epoch
        )
    out = args.out or RunDir(args.run_dir).adapter(args.kind)
    path = adapter.save(out)
    print(json.dumps(history.as_dict(), indent=2))
    print(
        f"validation MRR@10 {history.initial_validation_mrr:.3f} -> "
        f"{adapter.metadata['best_validation_mrr']:.3f} (best epoch {history.best_epoch + 1})"
    )
    print(f"adapter: {path}")
    return 0


async def _cmd_finetune(args: argparse.Namespace) -> int:
    split = await _pairs(args.run_dir, seed=args.seed)
    chunks = await anyio.to_thread.run_sync(read_chunks, args.run_dir)
    config = FinetuneConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_steps=args.max_steps,
        seed=args.seed,
    )
    run = RunDir(args.run_dir)
    status = StatusLine("retrieval finetune", quiet=args.quiet)

    def on_step(step: int, planned: int, loss: float) -> None:
        status.update(done=step, total=planned, unit="steps", detail=f"loss {loss:.4f}")

    status.update(phase="bi-encoder")
    async with status.shown():
        result = await finetune_bi_encoder(
            split.train, chunks, run.bi_encoder, config=config, on_step=on_step
        )
    status.say(f"bi-encoder: {result.path} ({result.steps} steps)")
    if args.reranker:
        status = StatusLine("retrieval finetune", quiet=args.quiet)
        status.update(phase="mining hard negatives")
        async with status.shown():
            async with _base_embedder(args) as base:
                triples = await mine_hard_negatives(base, split.train, chunks)
            status.update(phase="cross-encoder")
            ranker = await finetune_cross_encoder(
                triples,
                run.cross_encoder,
                loss=args.reranker_loss,
                config=config,
                on_step=on_step,
            )
        print(f"cross-encoder: {ranker.path} ({ranker.steps} steps, loss {args.reranker_loss})")
    return 0


def _systems(spec: str, base: Embedder, cache: Path | None) -> list[Embedder]:
    systems: list[Embedder] = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        kind, _, where = item.partition(":")
        if kind == "base":
            systems.append(base)
        elif kind == "adapter" and where:
            systems.append(AdaptedEmbedder(base, Adapter.load(where)))
        elif kind == "model" and where:
            name = f"finetuned:{Path(where).name}"
            systems.append(SentenceTransformerEmbedder(where, name=name, cache_dir=cache))
        else:
            raise UsageError(f"--embedders: {item!r} is not base, adapter:PATH or model:DIR")
    if not systems:
        raise UsageError("--embedders names no system")
    return systems


async def _cmd_evaluate(args: argparse.Namespace) -> int:
    split = await _pairs(args.run_dir)
    chunks = await anyio.to_thread.run_sync(read_chunks, args.run_dir)
    questions = {"train": split.train, "validation": split.validation, "test": split.test}
    pairs = questions[args.split]
    if not pairs:
        raise UsageError(f"the {args.split} split is empty: make more pairs or change --ratios")
    run = RunDir(args.run_dir)
    cache = None if args.no_cache else run.embedding_cache
    results: list[RetrievalResult] = []
    simulated = [run.simulated()]  # the questions are the run's
    async with AsyncExitStack() as stack:
        base = await stack.enter_async_context(_base_embedder(args, simulated))
        for system in _systems(args.embedders, base, cache):
            results.append(await evaluate_retrieval(system, pairs, chunks))
        if args.reranker is not None:
            reranker = CrossEncoderReranker(args.reranker, name=f"rerank:{args.reranker.name}")
            results.append(
                await evaluate_retrieval(
                    base, pairs, chunks, reranker=reranker, rerank_depth=args.rerank_depth
                )
            )
    report = build_report(
        results,
        split=args.split,
        notes=[f"{len(pairs)} pairs, {len(chunks)} chunks ranked per question"],
    ).model_copy(update={"simulated": any(simulated)})

    def save() -> None:
        run.retrieval.mkdir(parents=True, exist_ok=True)
        run.retrieval_report_md.write_text(report.markdown(), encoding="utf-8")
        run.retrieval_report_html.write_text(report.html(), encoding="utf-8")
        run.retrieval_report_json.write_text(report.model_dump_json(indent=2), encoding="utf-8")

    await anyio.to_thread.run_sync(save)
    print(report.markdown())
    print(
        f"report: {run.retrieval_report_md}  {run.retrieval_report_html}  "
        f"{run.retrieval_report_json}"
    )
    return 0


async def run(args: argparse.Namespace) -> int:
    command = args.retrieval_command
    if not args.run_dir.is_dir():
        raise UsageError(f"{args.run_dir} is not a directory")
    with RunDir(args.run_dir).lock(f"raftkit retrieval {command}"):
        if command == "pairs":
            return await _cmd_pairs(args)
        if command == "train-adapter":
            return await _cmd_train_adapter(args)
        if command == "finetune":
            return await _cmd_finetune(args)
        return await _cmd_evaluate(args)

"""Retrieval fine-tuning on a corpus of PDFs: MiniLM before and after adapters and reranking.

Run by hand (not part of the test suite; needs the ``embeddings`` extra)::

    .venv/bin/python benchmarks/retrieval.py
    .venv/bin/python benchmarks/retrieval.py --corpus DIR --rerank-steps 60

The corpus defaults to ``../shared/corpus`` beside the checkout, else ``tests/data/corpus``.

Steps, all measured in one run:

1. Chunk every PDF of the corpus (``TokenChunker`` over ``iter_documents``).
2. Questions: two per chunk from the simulator's teacher (``TeacherQuestionSynthesizer``
   against the loopback simulator). The simulator builds its questions from sentences of the
   chunk, so they share many words with it — easier than real user questions; the numbers
   compare systems with each other, not with a production retriever.
3. Split by chunk (80/10/10); embed chunks and questions with the offline all-MiniLM-L6-v2,
   cached on disk.
4. hit@5 and MRR@10 on the test questions: the base model; linear, MLP and 128-d linear
   adapters; a cross-encoder fine-tuned on hard negatives mined by the base model, reranking
   the base top 10 (``--rerank-depth``). Each against the base with a paired-bootstrap 95 %
   interval.
5. Adapter training time per epoch on 10,000 synthetic 384-d pairs (numpy), with the BLAS
   library's default threads and with one thread (small matrix products on a busy machine are
   faster single-threaded).
6. Embedding requests a second evaluation of the corpus makes: through ``ClientEmbedder``
   against the simulator's embeddings endpoint (counted at the server), and cache misses of
   the MiniLM embedder. The goal is zero for both.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
from default_corpus import default_corpus

from raftkit.chunking import chunk_document
from raftkit.chunking.token import TokenChunker
from raftkit.extract import iter_documents
from raftkit.llm.openai import OpenAIClient
from raftkit.retrieval import (
    AdaptedEmbedder,
    ClientEmbedder,
    CrossEncoderReranker,
    FinetuneConfig,
    RetrievalResult,
    SentenceTransformerEmbedder,
    TrainingConfig,
    build_report,
    evaluate_retrieval,
    finetune_cross_encoder,
    fit_adapter,
    mine_hard_negatives,
    split_pairs,
    synthesize_pairs,
    train_adapter,
)
from raftkit.synth.questions import TeacherQuestionSynthesizer
from raftkit.testing import Simulator
from raftkit.types import Chunk


async def load_chunks(corpus: Path, size: int) -> list[Chunk]:
    chunker = TokenChunker(size=size, overlap=0)
    chunks: list[Chunk] = []
    walk = iter_documents(corpus)
    async with walk:
        async for document in walk:
            chunks.extend(await chunk_document(chunker, document))
    return chunks


def adapter_epoch_seconds(pairs: int = 10_000, dim: int = 384) -> dict[str, float]:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((pairs // 2, dim)).astype(np.float32)
    targets = np.repeat(np.arange(pairs // 2), 2)
    queries = corpus[targets] + 0.5 * rng.standard_normal((pairs, dim)).astype(np.float32)
    out: dict[str, float] = {}
    for kind in ("linear", "mlp"):
        cfg = TrainingConfig(kind=kind, epochs=3, batch_size=64)
        _, history = train_adapter(queries, targets, corpus, config=cfg)
        out[kind] = float(np.median(history.epoch_seconds))
    return out


def row(result: RetrievalResult) -> str:
    return (
        f"{result.system:<44} hit@5 {result.mean('hit@5'):.3f}  MRR@10 {result.mean('mrr@10'):.3f}"
    )


async def main(args: argparse.Namespace) -> None:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="raftkit-retrieval-bench-"))
    started = time.perf_counter()
    chunks = await load_chunks(args.corpus, args.chunk_size)
    print(f"corpus: {len(chunks)} chunks of <= {args.chunk_size} tokens ({work})")

    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
    ):
        synthesizer = TeacherQuestionSynthesizer(client, "gpt-4o-mini")
        pairs = await synthesize_pairs(chunks, synthesizer, questions_per_chunk=2)
        split = split_pairs(pairs, seed=0)
        print(split.report.render())

        # 6a. API embeddings through the cache: the second evaluation must send nothing
        api = ClientEmbedder(client, "text-embedding-3-small", cache_dir=work / "api-cache")
        sim.clear_requests()
        await evaluate_retrieval(api, split.test, chunks)
        first_requests = sum(1 for r in sim.requests if r.path.endswith("/embeddings"))
        sim.clear_requests()
        again = ClientEmbedder(client, "text-embedding-3-small", cache_dir=work / "api-cache")
        await evaluate_retrieval(again, split.test, chunks)
        second_requests = sum(1 for r in sim.requests if r.path.endswith("/embeddings"))

    minilm = SentenceTransformerEmbedder(cache_dir=work / "minilm-cache")
    t0 = time.perf_counter()
    base = await evaluate_retrieval(minilm, split.test, chunks)
    embed_seconds = time.perf_counter() - t0
    results = [base]
    print(row(base))

    for kind, out_dim in (("linear", None), ("mlp", None), ("linear", 128)):
        cfg = TrainingConfig(kind=kind, out_dim=out_dim, epochs=args.epochs)  # type: ignore[arg-type]
        adapter, history = await fit_adapter(
            minilm, chunks, split.train, split.validation, config=cfg
        )
        name = f"{minilm.name}+{kind}{'' if out_dim is None else f'-{out_dim}d'}-adapter"
        result = await evaluate_retrieval(
            AdaptedEmbedder(minilm, adapter, name=name), split.test, chunks
        )
        results.append(result)
        print(
            f"{row(result)}  (val MRR {history.initial_validation_mrr:.3f} -> "
            f"{adapter.metadata['best_validation_mrr']:.3f}, {len(history.train_loss)} epochs)"
        )

    second = SentenceTransformerEmbedder(cache_dir=work / "minilm-cache")
    await evaluate_retrieval(second, split.test, chunks)
    assert second.cache is not None
    minilm_misses = second.cache.stats.misses

    if args.rerank_steps > 0:
        triples = await mine_hard_negatives(minilm, split.train, chunks, negatives=3, skip_top=0)
        t0 = time.perf_counter()
        tuned = await finetune_cross_encoder(
            triples,
            work / "cross-encoder",
            loss=args.rerank_loss,
            config=FinetuneConfig(
                batch_size=args.rerank_batch, max_steps=args.rerank_steps, learning_rate=3e-5
            ),
        )
        train_seconds = time.perf_counter() - t0
        reranker = CrossEncoderReranker(tuned.path, name=f"cross-encoder({args.rerank_loss})")
        reranked = await evaluate_retrieval(
            minilm, split.test, chunks, reranker=reranker, rerank_depth=args.rerank_depth
        )
        results.append(reranked)
        print(f"{row(reranked)}  ({tuned.steps} steps in {train_seconds:.0f}s)")

    report = build_report(
        results, metrics=("hit@5", "mrr@10"), title=f"Retrieval benchmark ({args.corpus})"
    )
    print()
    print(report.markdown())
    for threads in ("default", "1"):
        env = dict(os.environ)
        if threads != "default":
            env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = threads
        done = await anyio.run_process(
            [sys.executable, __file__, "--epoch-timing"], env=env, check=True
        )
        timing = done.stdout.decode().strip()
        print(f"adapter epoch on 10,000 synthetic 384-d pairs (BLAS threads {threads}): {timing}")
    print(
        f"second evaluation: API embedding requests {second_requests} (first: {first_requests}); "
        f"MiniLM cache misses {minilm_misses}"
    )
    print(f"MiniLM first embedding of corpus + test questions: {embed_seconds:.1f}s")
    print(f"total {time.perf_counter() - started:.0f}s")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--corpus", type=Path, help="default: ../shared/corpus, else tests/data/corpus")
    p.add_argument("--chunk-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--rerank-steps", type=int, default=30)
    p.add_argument("--rerank-batch", type=int, default=4, help="triples per step (x4 pairs)")
    p.add_argument("--rerank-depth", type=int, default=10)
    p.add_argument("--rerank-loss", choices=["bce", "mnrl"], default="bce")
    p.add_argument("--workdir", help="where caches and models go (default: a new temp dir)")
    p.add_argument("--epoch-timing", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.corpus = args.corpus or default_corpus()
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.epoch_timing:
        seconds = adapter_epoch_seconds()
        print(f"linear {seconds['linear']:.2f}s, mlp {seconds['mlp']:.2f}s")
    else:
        anyio.run(main, arguments)

"""How well an embedder (optionally with a reranker) finds each question's chunk.

Every query and every chunk is embedded once per embedder (distinct texts only; with a cached
embedder, once ever). Scores are kept per query — hit rate, MRR, recall and nDCG at each
cut-off — so that two systems can be compared on the same queries with
:func:`~raftkit.stats.paired_bootstrap`, which gives an interval and a verdict
instead of two bare means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.retrieval.search import hit_rate, mrr, ndcg, recall, relevance_matrix, top_k
from raftkit.stats import Comparison, paired_bootstrap

if TYPE_CHECKING:
    from raftkit.retrieval import Embedder
    from raftkit.retrieval.pairs import RetrievalPair
    from raftkit.types import Chunk

__all__ = [
    "DEFAULT_KS",
    "Reranker",
    "RetrievalResult",
    "compare_results",
    "embed_documents",
    "embed_queries",
    "evaluate_retrieval",
]

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


@runtime_checkable
class Reranker(Protocol):
    """Scores (query, document) pairs; higher is more relevant."""

    name: str

    async def score(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[np.float32]: ...


async def embed_queries(embedder: Embedder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Query vectors: ``embedder.embed_queries`` when it has one (adapters), else ``embed``."""
    side = getattr(embedder, "embed_queries", None)
    if side is not None:
        result: npt.NDArray[np.float32] = await side(texts)
        return result
    return await embedder.embed(texts)


async def embed_documents(embedder: Embedder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Document vectors (``embed``), each distinct text sent once."""
    distinct = list(dict.fromkeys(texts))
    vectors = await embedder.embed(distinct)
    if len(distinct) == len(texts):
        return vectors
    where = {t: i for i, t in enumerate(distinct)}
    return vectors[[where[t] for t in texts]]


class RetrievalResult(BaseModel):
    """Per-query scores of one system on one set of questions."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    system: str
    query_ids: list[str]
    ks: tuple[int, ...]
    per_query: dict[str, list[float]] = Field(
        description="metric name ('hit@5', 'mrr@10', 'recall@5', 'ndcg@10') -> value per query"
    )
    ranked_chunk_ids: list[list[str]] = Field(default_factory=list)

    def mean(self, metric: str) -> float:
        values = np.asarray(self.per_query[metric], dtype=np.float64)
        return float(np.nanmean(values)) if values.size else float("nan")

    def summary(self) -> dict[str, float]:
        return {name: self.mean(name) for name in self.per_query}


def _scores(
    rel: npt.NDArray[np.bool_], n_relevant: npt.NDArray[np.int64], ks: Sequence[int]
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for k in ks:
        out[f"hit@{k}"] = hit_rate(rel, k).tolist()
        out[f"mrr@{k}"] = mrr(rel, k).tolist()
        out[f"recall@{k}"] = recall(rel, k, n_relevant).tolist()
        out[f"ndcg@{k}"] = ndcg(rel, k, n_relevant).tolist()
    return out


async def evaluate_retrieval(
    embedder: Embedder,
    pairs: Sequence[RetrievalPair],
    chunks: Sequence[Chunk],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    reranker: Reranker | None = None,
    rerank_depth: int = 20,
    system: str | None = None,
    chunk_vectors: npt.NDArray[np.float32] | None = None,
) -> RetrievalResult:
    """Rank all ``chunks`` for every distinct question in ``pairs`` and score the ranking.

    A question may have several relevant chunks (the same text asked of two chunks): they
    are grouped. With a ``reranker``, the embedder's top ``rerank_depth`` are re-ordered by
    its scores before scoring. Pass ``chunk_vectors`` (as :func:`embed_documents` returns)
    to reuse a corpus embedding across calls.
    """
    if not ks or min(ks) < 1:
        raise UsageError("ks must be positive cut-offs")
    position = {c.id: i for i, c in enumerate(chunks)}
    relevant: dict[str, set[int]] = {}
    ids: dict[str, str] = {}
    for pair in pairs:
        if pair.chunk_id not in position:
            continue
        relevant.setdefault(pair.question, set()).add(position[pair.chunk_id])
        ids.setdefault(pair.question, pair.question_id)
    questions = list(relevant)
    depth = max(max(ks), rerank_depth if reranker is not None else 0)
    name = system or (embedder.name if reranker is None else f"{embedder.name}+{reranker.name}")
    if not questions:
        return RetrievalResult(system=name, query_ids=[], ks=tuple(ks), per_query={})
    corpus = (
        chunk_vectors
        if chunk_vectors is not None
        else await embed_documents(embedder, [c.text for c in chunks])
    )
    query_vectors = await embed_queries(embedder, questions)
    ranked, _ = await anyio.to_thread.run_sync(top_k, query_vectors, corpus, depth)
    if reranker is not None:
        ranked = await _rerank(reranker, questions, ranked, chunks, rerank_depth)
    wanted = [relevant[q] for q in questions]
    n_relevant = np.array([len(w) for w in wanted], dtype=np.int64)
    rel = relevance_matrix(ranked, wanted)
    return RetrievalResult(
        system=name,
        query_ids=[ids[q] for q in questions],
        ks=tuple(ks),
        per_query=_scores(rel, n_relevant, ks),
        ranked_chunk_ids=[[chunks[int(i)].id for i in row[: max(ks)]] for row in ranked],
    )


async def _rerank(
    reranker: Reranker,
    questions: Sequence[str],
    ranked: npt.NDArray[np.int64],
    chunks: Sequence[Chunk],
    depth: int,
) -> npt.NDArray[np.int64]:
    head = ranked[:, :depth]
    pairs = [(q, chunks[int(i)].text) for q, row in zip(questions, head, strict=True) for i in row]
    scores = np.asarray(await reranker.score(pairs), dtype=np.float64).reshape(head.shape)
    # stable: equal scores keep the embedder's order
    order = np.argsort(-scores, axis=1, kind="stable")
    reordered = np.take_along_axis(head, order, axis=1)
    return np.concatenate([reordered, ranked[:, depth:]], axis=1)


def compare_results(
    base: RetrievalResult,
    other: RetrievalResult,
    metric: str,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Comparison:
    """``other`` against ``base`` on ``metric``, paired by query, with a bootstrap interval."""
    if base.query_ids != other.query_ids:
        raise UsageError("results must score the same queries in the same order to be paired")
    a: Any = base.per_query[metric]
    b: Any = other.per_query[metric]
    return paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed, confidence=confidence)

"""Distractor sampling: which chunks stand beside the oracle in a RAFT context
(:func:`~raftkit.synth.context.build_context` puts the context together).

Reproducibility does not depend on the order in which concurrent tasks run: every question gets
its own generator, derived from the run seed and the question id by :func:`question_rng`, and
everything random about its context (whether the oracle is kept, which distractors, their
positions) is drawn from that generator in a fixed order.

Samplers implement :class:`DistractorSampler`. Three come with raftkit:

- :class:`UniformSampler` — any other chunk, uniformly (the RAFT reference implementation).
- :class:`EmbeddingSampler` — hard negatives: the chunks nearest the oracle by cosine similarity.
- :class:`BM25Sampler` — hard negatives by lexical overlap with the question (or the oracle).

All of them exclude the oracle and its near-duplicates (the same text after normalisation, or,
for the hard-negative samplers, a similarity at or above a threshold): a copy of the oracle
shown as a "distractor" would teach the student that the oracle is useless.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import numpy as np
import numpy.typing as npt

from raftkit.errors import UsageError
from raftkit.llm import LLMClient
from raftkit.synth._text import bm25_tokens, dedup_key, stable_int
from raftkit.types import Chunk, Question

__all__ = [
    "BM25Sampler",
    "DistractorSampler",
    "EmbeddingSampler",
    "UniformSampler",
    "oracle_kept",
    "question_rng",
]

_IntArray = npt.NDArray[np.intp]
_FloatArray = npt.NDArray[np.float32]


@runtime_checkable
class DistractorSampler(Protocol):
    """Chooses distractor chunks for a question.

    Returns at most ``k`` distinct chunks, never the oracle, drawing all randomness from ``rng``.
    Fewer than ``k`` are returned only when the corpus has no more eligible chunks.
    """

    async def sample(
        self, question: Question, oracle: Chunk, k: int, rng: np.random.Generator
    ) -> list[Chunk]: ...


def question_rng(seed: int, question_id: str) -> np.random.Generator:
    """The generator for one question: a function of the run seed and the question id only."""
    if seed < 0:
        raise UsageError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, stable_int(question_id)])


def oracle_kept(seed: int, question_id: str, p: float) -> bool:
    """Whether :func:`build_context` keeps the question's oracle, given
    ``rng=question_rng(seed, question_id)``: its first draw, known before the context is built
    (so an answer that will not be used need not be paid for)."""
    return bool(question_rng(seed, question_id).random() < p)


class _Corpus:
    """The chunks a sampler draws from, with the lookups every sampler needs."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.chunks: tuple[Chunk, ...] = tuple(chunks)
        self.index: dict[str, int] = {}
        # Keyed by a 64-bit digest of the normalised text, not the text: a second copy of the
        # whole corpus would be held only to compare it with one oracle at a time.
        self.by_key: dict[int, list[int]] = {}
        for i, chunk in enumerate(self.chunks):
            if chunk.id in self.index:
                raise UsageError(f"duplicate chunk id {chunk.id!r} in the corpus")
            self.index[chunk.id] = i
            self.by_key.setdefault(stable_int(dedup_key(chunk.text)), []).append(i)

    def excluded(self, oracle: Chunk) -> set[int]:
        """The oracle and every chunk whose normalised text equals the oracle's."""
        found = set(self.by_key.get(stable_int(dedup_key(oracle.text)), ()))
        i = self.index.get(oracle.id)
        if i is not None:
            found.add(i)
        return found

    def position(self, oracle: Chunk) -> int:
        i = self.index.get(oracle.id)
        if i is None:
            raise UsageError(f"oracle chunk {oracle.id!r} is not in the sampler's corpus")
        return i


def _check_k(k: int) -> None:
    if k < 0:
        raise UsageError(f"k must be >= 0, got {k}")


def _pool_size(k: int, pool_factor: float) -> int:
    return max(k, math.ceil(k * pool_factor))


def _pick(
    ranked: _IntArray, k: int, pool: int, rng: np.random.Generator, rest: _IntArray
) -> list[int]:
    """``k`` of the best ``pool`` of ``ranked`` uniformly; topped up uniformly from ``rest``."""
    top = ranked[:pool]
    if len(top) >= k:
        return [int(i) for i in rng.choice(top, size=k, replace=False)]
    chosen = [int(i) for i in top]
    missing = min(k - len(chosen), len(rest))
    if missing:
        chosen.extend(int(i) for i in rng.choice(rest, size=missing, replace=False))
    return chosen


class UniformSampler:
    """Distractors drawn uniformly from all other chunks, as the RAFT reference does."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self._corpus = _Corpus(chunks)

    def __repr__(self) -> str:
        return f"UniformSampler(chunks={len(self._corpus.chunks)})"

    async def sample(
        self, question: Question, oracle: Chunk, k: int, rng: np.random.Generator
    ) -> list[Chunk]:
        _check_k(k)
        chunks = self._corpus.chunks
        excluded = self._corpus.excluded(oracle)
        # Draw a few extra so that dropping the excluded ones still leaves k, without building
        # an index array of the whole corpus for every question.
        draw = min(len(chunks), k + len(excluded))
        if k == 0 or draw == 0:
            return []
        picked = [int(i) for i in rng.choice(len(chunks), size=draw, replace=False)]
        return [chunks[i] for i in picked if i not in excluded][:k]


class EmbeddingSampler:
    """Hard negatives: chunks whose embeddings are nearest the oracle's.

    ``embeddings`` is one ``(len(chunks), dim)`` matrix in chunk order, computed once for the
    corpus (e.g. with :meth:`LLMClient.embed`); rows are normalised to unit length here, as
    float32. For each question, the candidates are ranked by cosine similarity to the oracle;
    the oracle, chunks with the same normalised text and chunks with similarity
    ``>= near_duplicate`` are excluded; then ``k`` are drawn uniformly from the best
    ``ceil(k * pool_factor)``. ``pool_factor=1`` takes exactly the top ``k`` (no randomness);
    the default 3 keeps the negatives hard but varied across the questions of one chunk.

    Hard negatives may happen to contain the answer (the same fact stated twice in a corpus);
    raise ``pool_factor`` or lower ``near_duplicate`` if that shows in the data.
    """

    def __init__(
        self,
        chunks: Sequence[Chunk],
        embeddings: npt.ArrayLike,
        *,
        near_duplicate: float = 0.98,
        pool_factor: float = 3.0,
    ) -> None:
        self._corpus = _Corpus(chunks)
        matrix = np.asarray(embeddings, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(self._corpus.chunks):
            raise UsageError(
                f"embeddings must be a ({len(self._corpus.chunks)}, dim) matrix, "
                f"got shape {matrix.shape}"
            )
        if not np.all(np.isfinite(matrix)):
            raise UsageError("embeddings contain NaN or infinite values")
        if pool_factor < 1:
            raise UsageError("pool_factor must be >= 1")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self._matrix: _FloatArray = np.divide(
            matrix, norms, out=np.zeros_like(matrix), where=norms > 0
        ).astype(np.float32, copy=False)
        self.near_duplicate = near_duplicate
        self.pool_factor = pool_factor

    @classmethod
    async def from_client(
        cls,
        chunks: Sequence[Chunk],
        client: LLMClient,
        *,
        model: str,
        dimensions: int | None = None,
        batch_size: int = 256,
        concurrency: int = 4,
        near_duplicate: float = 0.98,
        pool_factor: float = 3.0,
    ) -> EmbeddingSampler:
        """Embed every chunk with ``client`` (in batches, a few at a time) and build the sampler.

        The embedding calls go through the client's request path, so its rate limits and usage
        accounting apply; ``concurrency`` only bounds how many batches are in flight at once.
        """
        if batch_size < 1 or concurrency < 1:
            raise UsageError("batch_size and concurrency must be >= 1")
        texts = [c.text for c in chunks]
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        results: list[_FloatArray | None] = [None] * len(batches)
        limiter = anyio.CapacityLimiter(concurrency)

        async def embed(i: int) -> None:
            async with limiter:
                results[i] = await client.embed(batches[i], model=model, dimensions=dimensions)

        async with anyio.create_task_group() as tg:
            for i in range(len(batches)):
                tg.start_soon(embed, i)
        parts = [r for r in results if r is not None]
        matrix = np.concatenate(parts) if parts else np.zeros((0, dimensions or 1), np.float32)

        def make() -> EmbeddingSampler:
            return cls(chunks, matrix, near_duplicate=near_duplicate, pool_factor=pool_factor)

        return await anyio.to_thread.run_sync(make)

    def __repr__(self) -> str:
        return (
            f"EmbeddingSampler(chunks={len(self._corpus.chunks)}, dim={self._matrix.shape[1]}, "
            f"near_duplicate={self.near_duplicate}, pool_factor={self.pool_factor})"
        )

    @property
    def embeddings(self) -> _FloatArray:
        """The corpus's embeddings, one unit-length row per chunk in chunk order (read-only)."""
        view = self._matrix.view()
        view.flags.writeable = False
        return view

    async def sample(
        self, question: Question, oracle: Chunk, k: int, rng: np.random.Generator
    ) -> list[Chunk]:
        _check_k(k)
        at = self._corpus.position(oracle)
        excluded = sorted(self._corpus.excluded(oracle))
        ranked = await anyio.to_thread.run_sync(self._rank, at, excluded)
        chosen = _pick(ranked, k, _pool_size(k, self.pool_factor), rng, ranked[:0])
        return [self._corpus.chunks[i] for i in chosen]

    def _rank(self, at: int, excluded: list[int]) -> _IntArray:
        sims = self._matrix @ self._matrix[at]
        eligible = sims < self.near_duplicate
        eligible[excluded] = False
        candidates = np.flatnonzero(eligible)
        # Highest similarity first; ties broken by corpus order so ranking is deterministic.
        order = np.lexsort((candidates, -sims[candidates]))
        ranked: _IntArray = candidates[order]
        return ranked


class BM25Sampler:
    """Hard negatives by BM25: the chunks a lexical retriever would return for the query.

    ``query="question"`` (the default) scores chunks against the question text, which is what a
    retriever does at inference time, so the student learns to ignore what retrieval really
    returns; ``query="oracle"`` scores them against the oracle's text (topically close chunks).
    Tokens are lower-cased words, and character bigrams inside CJK runs, so Chinese and Japanese
    text works without a segmenter. Excluded: the oracle, chunks with the same normalised text
    and chunks whose token sets overlap the oracle's with Jaccard ``>= near_duplicate``. ``k``
    are drawn uniformly from the best ``ceil(k * pool_factor)`` chunks with a positive score;
    when fewer score above zero, the rest are drawn uniformly from the other chunks.
    """

    def __init__(
        self,
        chunks: Sequence[Chunk],
        *,
        query: Literal["question", "oracle"] = "question",
        k1: float = 1.2,
        b: float = 0.75,
        near_duplicate: float = 0.9,
        pool_factor: float = 3.0,
    ) -> None:
        if query not in ("question", "oracle"):
            raise UsageError(f"query must be 'question' or 'oracle', got {query!r}")
        if pool_factor < 1:
            raise UsageError("pool_factor must be >= 1")
        self._corpus = _Corpus(chunks)
        self.query = query
        self.k1 = k1
        self.b = b
        self.near_duplicate = near_duplicate
        self.pool_factor = pool_factor
        self._vocab: dict[str, int] = {}
        self._doc_terms: list[npt.NDArray[np.int32]] = []
        postings: list[list[tuple[int, int]]] = []
        lengths: list[int] = []
        for d, chunk in enumerate(self._corpus.chunks):
            counts = Counter(bm25_tokens(chunk.text))
            lengths.append(sum(counts.values()))
            ids = []
            for token, tf in counts.items():
                t = self._vocab.setdefault(token, len(self._vocab))
                if t == len(postings):
                    postings.append([])
                postings[t].append((d, tf))
                ids.append(t)
            self._doc_terms.append(np.array(sorted(ids), dtype=np.int32))
        n_docs = len(self._corpus.chunks)
        doc_len = np.array(lengths, dtype=np.float32)
        avg = float(doc_len.mean()) if n_docs and doc_len.mean() > 0 else 1.0
        norm = k1 * (1 - b + b * doc_len / avg)
        # The BM25 weight of a (term, document) pair does not depend on the query, so it is
        # computed once here; a query's scores are then sums of precomputed posting weights.
        self._postings: list[tuple[_IntArray, _FloatArray]] = []
        for plist in postings:
            docs = np.array([d for d, _ in plist], dtype=np.intp)
            tfs = np.array([f for _, f in plist], dtype=np.float32)
            df = len(plist)
            idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
            weight = (idf * tfs * (k1 + 1) / (tfs + norm[docs])).astype(np.float32)
            self._postings.append((docs, weight))

    @classmethod
    async def build(
        cls,
        chunks: Sequence[Chunk],
        *,
        query: Literal["question", "oracle"] = "question",
        k1: float = 1.2,
        b: float = 0.75,
        near_duplicate: float = 0.9,
        pool_factor: float = 3.0,
    ) -> BM25Sampler:
        """Build the index in a worker thread: tokenising a large corpus blocks for seconds."""

        def make() -> BM25Sampler:
            return cls(
                chunks,
                query=query,
                k1=k1,
                b=b,
                near_duplicate=near_duplicate,
                pool_factor=pool_factor,
            )

        return await anyio.to_thread.run_sync(make)

    def __repr__(self) -> str:
        return (
            f"BM25Sampler(chunks={len(self._corpus.chunks)}, query={self.query!r}, "
            f"vocabulary={len(self._vocab)})"
        )

    def scores(self, text: str) -> _FloatArray:
        """The BM25 score of every chunk for the query ``text``, in corpus order."""
        scores = np.zeros(len(self._corpus.chunks), dtype=np.float32)
        for token, times in Counter(bm25_tokens(text)).items():
            t = self._vocab.get(token)
            if t is not None:
                docs, weight = self._postings[t]
                scores[docs] += times * weight
        return scores

    async def sample(
        self, question: Question, oracle: Chunk, k: int, rng: np.random.Generator
    ) -> list[Chunk]:
        _check_k(k)
        excluded = self._corpus.excluded(oracle)
        text = question.text if self.query == "question" else oracle.text
        pool = _pool_size(k, self.pool_factor)
        ranked, rest = await anyio.to_thread.run_sync(self._rank, text, oracle, excluded, pool)
        chosen = _pick(ranked, k, pool, rng, rest)
        return [self._corpus.chunks[i] for i in chosen]

    def _rank(
        self, text: str, oracle: Chunk, excluded: set[int], pool: int
    ) -> tuple[_IntArray, _IntArray]:
        scores = self.scores(text)
        eligible = np.ones(len(scores), dtype=bool)
        eligible[sorted(excluded)] = False
        positive = np.flatnonzero(eligible & (scores > 0))
        order = np.lexsort((positive, -scores[positive]))
        oracle_terms = np.unique(
            np.array(
                [self._vocab[t] for t in bm25_tokens(oracle.text) if t in self._vocab],
                dtype=np.int32,
            )
        )
        ranked: list[int] = []
        dropped: list[int] = []
        # Near-duplicate checks only along the ranking, until the pool is full: the Jaccard of
        # every chunk against the oracle would cost a pass over the whole corpus per question.
        for i in positive[order]:
            if len(ranked) >= pool:
                break
            if self._jaccard(oracle_terms, self._doc_terms[int(i)]) >= self.near_duplicate:
                dropped.append(int(i))
            else:
                ranked.append(int(i))
        eligible[dropped] = False
        eligible[ranked] = False
        rest: _IntArray = np.flatnonzero(eligible & (scores <= 0))
        return np.array(ranked, dtype=np.intp), rest

    @staticmethod
    def _jaccard(a: npt.NDArray[np.int32], b: npt.NDArray[np.int32]) -> float:
        if not len(a) and not len(b):
            return 1.0
        common = len(np.intersect1d(a, b, assume_unique=True))
        return common / (len(a) + len(b) - common)

"""Chunks that end where the topic changes, found by embedding the sentences.

Each sentence (with ``buffer`` neighbours on each side, to steady the signal) is embedded;
wherever the cosine distance between consecutive sentences is above the ``percentile``-th
percentile of all such distances, a chunk ends. A chunk over ``max_tokens`` is split again at
its largest inner distance, and a single sentence over the cap becomes token windows.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt

from raftkit.chunking._build import make_chunks
from raftkit.chunking.sentences import sentence_spans
from raftkit.chunking.token import token_windows
from raftkit.errors import UsageError
from raftkit.llm.tokens import TokenCounter, estimate_tokens
from raftkit.types import Chunk, Document

__all__ = ["EmbedFunction", "SemanticChunker", "cosine_distances"]

#: Embeds texts: returns a ``(len(texts), dim)`` array, e.g. ``partial(client.embed, model=...)``.
#: (A function, unlike the :class:`raftkit.retrieval.Embedder` protocol, hence the name.)
EmbedFunction = Callable[[Sequence[str]], Awaitable[npt.NDArray[Any]]]


def __getattr__(name: str) -> Any:
    if name == "Embedder":  # the old name, which the retrieval protocol also bears
        warnings.warn(
            "raftkit.chunking.Embedder is now EmbedFunction", DeprecationWarning, stacklevel=2
        )
        return EmbedFunction
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cosine_distances(vectors: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """``1 - cos`` between each row and the next: ``len(vectors) - 1`` values in ``[0, 2]``."""
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.maximum(norms, 1e-12)
    similarity = np.einsum("ij,ij->i", unit[:-1], unit[1:])
    distances: npt.NDArray[np.float64] = np.clip(1.0 - similarity, 0.0, 2.0)
    return distances


class SemanticChunker:
    """Chunks at topic changes between sentences, capped at ``max_tokens``.

    ``embed`` is called with batches of at most ``batch_size`` texts. ``chunk`` is async
    (it waits for embeddings), so this is an :class:`~raftkit.chunking.AsyncChunker`.
    """

    def __init__(
        self,
        embed: EmbedFunction,
        *,
        percentile: float = 95.0,
        max_tokens: int = 512,
        buffer: int = 1,
        batch_size: int = 128,
        counter: TokenCounter = estimate_tokens,
    ) -> None:
        if not 0.0 <= percentile <= 100.0:
            raise UsageError(f"percentile must be between 0 and 100, got {percentile}")
        if max_tokens < 1 or buffer < 0 or batch_size < 1:
            raise UsageError("max_tokens and batch_size must be positive, buffer not negative")
        self.embed = embed
        self.percentile = percentile
        self.max_tokens = max_tokens
        self.buffer = buffer
        self.batch_size = batch_size
        self.counter = counter

    def __repr__(self) -> str:
        return f"SemanticChunker(percentile={self.percentile}, max_tokens={self.max_tokens})"

    async def _vectors(self, texts: list[str]) -> npt.NDArray[Any]:
        parts: list[npt.NDArray[Any]] = []
        for first in range(0, len(texts), self.batch_size):
            batch = texts[first : first + self.batch_size]
            vectors = np.asarray(await self.embed(batch))
            if vectors.ndim != 2 or vectors.shape[0] != len(batch):
                raise UsageError(
                    f"embed returned shape {vectors.shape} for {len(batch)} texts;"
                    " expected (number of texts, dimensions)"
                )
            parts.append(vectors)
        return np.concatenate(parts)

    def _split(
        self,
        text: str,
        sentences: list[tuple[int, int]],
        distances: npt.NDArray[Any],
        lo: int,
        hi: int,
    ) -> list[tuple[int, int]]:
        """Spans for sentences ``lo..hi-1``, cut at the largest distances until under the cap."""
        start, end = sentences[lo][0], sentences[hi - 1][1]
        if self.counter(text[start:end]) <= self.max_tokens:
            return [(start, end)]
        if hi - lo == 1:
            return token_windows(
                text, start, end, size=self.max_tokens, overlap=0, counter=self.counter
            )
        cut = lo + 1 + int(np.argmax(distances[lo : hi - 1]))
        return self._split(text, sentences, distances, lo, cut) + self._split(
            text, sentences, distances, cut, hi
        )

    async def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        sentences = sentence_spans(text)
        if len(sentences) < 2:
            whole = token_windows(text, size=self.max_tokens, overlap=0, counter=self.counter)
            return make_chunks(document, whole, {"chunker": "semantic"})
        last = len(sentences) - 1
        windows = [
            text[sentences[max(0, i - self.buffer)][0] : sentences[min(last, i + self.buffer)][1]]
            for i in range(len(sentences))
        ]
        vectors = await self._vectors(windows)
        distances = await anyio.to_thread.run_sync(cosine_distances, vectors)
        threshold = float(np.percentile(distances, self.percentile))
        breaks = [i + 1 for i, d in enumerate(distances) if d > threshold]
        spans: list[tuple[int, int]] = []
        for lo, hi in zip([0, *breaks], [*breaks, len(sentences)], strict=True):
            spans.extend(self._split(text, sentences, distances, lo, hi))
        return make_chunks(document, spans, {"chunker": "semantic"})

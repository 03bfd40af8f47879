"""Floor 3: cutting :class:`~raftkit.types.Document` text into :class:`~raftkit.types.Chunk`\\ s.

Two strategy protocols:

- :class:`Chunker` — ``chunk(document) -> list[Chunk]``: synchronous, pure and cheap
  (:class:`TokenChunker`, :class:`MarkdownChunker`).
- :class:`AsyncChunker` — ``async chunk(document) -> list[Chunk]``: for chunkers that wait on
  something, such as embeddings (:class:`SemanticChunker`).

:func:`chunk_document` runs either kind. Every chunk satisfies
``document.text[chunk.start:chunk.end] == chunk.text``, has id ``"<document id>#<index>"``
and carries the pages it spans.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

from raftkit.chunking import semantic as _semantic
from raftkit.chunking.markdown import HEADING_SEPARATOR, MarkdownChunker, markdown_sections
from raftkit.chunking.semantic import EmbedFunction, SemanticChunker, cosine_distances
from raftkit.chunking.sentences import sentence_spans
from raftkit.chunking.token import TokenChunker, token_windows
from raftkit.types import Chunk, Document

__all__ = [
    "HEADING_SEPARATOR",
    "AsyncChunker",
    "Chunker",
    "EmbedFunction",
    "MarkdownChunker",
    "SemanticChunker",
    "TokenChunker",
    "chunk_document",
    "cosine_distances",
    "markdown_sections",
    "sentence_spans",
    "token_windows",
]


@runtime_checkable
class Chunker(Protocol):
    """Cuts a document into chunks, synchronously."""

    def chunk(self, document: Document) -> list[Chunk]: ...


@runtime_checkable
class AsyncChunker(Protocol):
    """Cuts a document into chunks, waiting on I/O (embeddings) on the way."""

    async def chunk(self, document: Document) -> list[Chunk]: ...


async def chunk_document(chunker: Chunker | AsyncChunker, document: Document) -> list[Chunk]:
    """The chunks of ``document`` by either kind of chunker."""
    result = chunker.chunk(document)
    if inspect.isawaitable(result):
        return await result
    return result


def __getattr__(name: str) -> Any:
    return _semantic.__getattr__(name)  # the deprecated name ``Embedder``

"""Turning ``(start, end)`` spans of a document into :class:`~raftkit.types.Chunk` records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from raftkit.types import Chunk, Document

__all__ = ["make_chunks"]


def make_chunks(
    document: Document,
    spans: Sequence[tuple[int, int]],
    metadata: Sequence[Mapping[str, str]] | Mapping[str, str],
) -> list[Chunk]:
    """One Chunk per span, numbered in order, with its page range looked up in the document."""
    chunks: list[Chunk] = []
    for index, (start, end) in enumerate(spans):
        extra = metadata if isinstance(metadata, Mapping) else metadata[index]
        chunks.append(
            Chunk(
                id=f"{document.id}#{index}",
                document_id=document.id,
                index=index,
                text=document.text[start:end],
                start=start,
                end=end,
                page_start=document.page_of(start),
                page_end=document.page_of(max(start, end - 1)),
                metadata=dict(extra),
            )
        )
    return chunks

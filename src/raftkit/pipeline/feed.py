"""The corpus as it is found: chunks handed to the generation workers one by one.

Questions and answers need only their own chunk, so they start while the walk goes on; only
the distractors wait for the whole corpus (:attr:`ChunkFeed.ready`). A first run walks,
extracts and chunks the source and writes ``chunks.jsonl``; a later Batch API round of the
same run reads that file back instead of doing it all again.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import anyio
from pydantic import ValidationError

from raftkit.chunking import AsyncChunker, Chunker, chunk_document
from raftkit.errors import InputError
from raftkit.extract import Extractor, iter_documents
from raftkit.run_dir import RunDir
from raftkit.run_report import RunReport
from raftkit.synth import DistractorSampler
from raftkit.types import Chunk

__all__ = ["ChunkFeed", "extract_chunks", "reload_chunks"]

logger = logging.getLogger("raftkit.pipeline")


class ChunkFeed:
    """The chunks found so far, fed to the workers (by index) as they are found.

    The index stream is unbounded on purpose: the walk must never wait for the workers, who
    may themselves be waiting for the whole corpus (``ready``) to draw distractors. The chunks
    are held anyway, so the queued indices cost nothing more.
    """

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.send, self.receive = anyio.create_memory_object_stream[int](math.inf)
        self.ready = anyio.Event()
        self.sampler: DistractorSampler | None = None

    def add(self, chunk: Chunk, report: RunReport) -> None:
        self.chunks.append(chunk)
        report.chunks = len(self.chunks)
        self.send.send_nowait(len(self.chunks) - 1)


async def extract_chunks(
    feed: ChunkFeed,
    source: str | os.PathLike[str],
    *,
    extractors: Sequence[Extractor],
    chunker: Chunker | AsyncChunker,
    run: RunDir,
    report: RunReport,
) -> None:
    """Walk, extract and chunk ``source`` into ``feed``, writing ``chunks.jsonl`` on the way."""
    walk = iter_documents(source, extractors=extractors)
    tmp = run.chunks.with_name(run.chunks.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        async with walk:
            async for document in walk:
                report.pages += len(document.pages)
                for chunk in await chunk_document(chunker, document):
                    f.write(chunk.model_dump_json() + "\n")
                    feed.add(chunk, report)
    os.replace(tmp, run.chunks)
    report.files = walk.report.files
    report.documents = walk.report.documents
    report.extraction_errors = [str(e) for e in walk.report.errors]
    report.skipped_files = list(walk.report.skipped)
    for error in walk.report.errors:
        logger.warning("skipped a file that could not be extracted: %s", error)


async def reload_chunks(feed: ChunkFeed, run: RunDir, report: RunReport) -> None:
    """Feed the chunks an earlier pass of this run wrote to ``chunks.jsonl``."""
    for chunk in await anyio.to_thread.run_sync(_read_chunks, run.chunks):
        feed.add(chunk, report)


def _read_chunks(path: os.PathLike[str]) -> list[Chunk]:
    chunks: list[Chunk] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                chunks.append(Chunk.model_validate_json(line))
            except ValidationError as e:
                raise InputError(f"{os.fspath(path)}:{number}: not a chunk record: {e}") from e
    return chunks

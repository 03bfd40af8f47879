"""The corpus as it is found: chunks handed to the generation workers one by one.

Questions and answers need only their own chunk, so they start while the walk goes on; only
the distractors wait for the whole corpus (:attr:`ChunkFeed.ready`). A first run walks,
extracts and chunks the source and writes ``chunks.jsonl``; a later Batch API round of the
same run reads that file back instead of doing it all again.

With a ``limit`` the walk ends once it has that many chunks (the first N in corpus order), so
trying a little of a large corpus reads only what it needs. A stopping run ends the walk too;
whatever ends it, the report counts the files, documents and chunks it got to and
``chunks.jsonl`` lists those chunks (no ``.tmp`` file is left behind).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import anyio
from pydantic import ValidationError

from raftkit.chunking import AsyncChunker, Chunker, chunk_document
from raftkit.errors import EmptyInputError, InputError
from raftkit.extract import ExtractionReport, Extractor, ExtractorDispatch, iter_documents
from raftkit.pipeline.halt import Halt
from raftkit.run_dir import RunDir
from raftkit.run_report import RunReport
from raftkit.synth import DistractorSampler
from raftkit.types import Chunk

__all__ = ["ChunkFeed", "empty_input", "extract_chunks", "reload_chunks"]

logger = logging.getLogger("raftkit.pipeline")


class ChunkFeed:
    """The chunks found so far, fed to the workers (by index) as they are found.

    The index stream is unbounded on purpose: the walk must never wait for the workers, who
    may themselves be waiting for the whole corpus (``ready``) to draw distractors. The chunks
    are held anyway, so the queued indices cost nothing more.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.chunks: list[Chunk] = []
        self.send, self.receive = anyio.create_memory_object_stream[int](math.inf)
        self.ready = anyio.Event()
        self.sampler: DistractorSampler | None = None

    @property
    def full(self) -> bool:
        """Whether the ``limit`` is reached: the walk may end."""
        return self.limit is not None and len(self.chunks) >= self.limit

    def add(self, chunk: Chunk, report: RunReport) -> None:
        if self.full:
            return
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
    halt: Halt | None = None,
) -> None:
    """Walk, extract and chunk ``source`` into ``feed``, writing ``chunks.jsonl`` on the way.

    Raises :class:`~raftkit.errors.EmptyInputError` when the whole walk found no chunk.
    """
    walk = iter_documents(source, extractors=extractors)
    tmp = RunDir.temporary(run.chunks)
    keep = True
    try:
        with tmp.open("w", encoding="utf-8") as f:
            async with walk:
                async for document in walk:
                    report.pages += len(document.pages)
                    for chunk in await chunk_document(chunker, document):
                        if feed.full:
                            break
                        f.write(chunk.model_dump_json() + "\n")
                        feed.add(chunk, report)
                    if feed.full or (halt is not None and halt.requested):
                        break
    except OSError:
        keep = False  # the file may be torn (a full disk): keep the last good chunks.jsonl
        raise
    finally:
        # on a stop (budget, an error, Ctrl-C) as on success, the report counts what was
        # walked and chunks.jsonl lists the chunks found (whole lines: written one by one)
        _count_walk(report, walk.report)
        if keep:
            os.replace(tmp, run.chunks)
        else:
            tmp.unlink(missing_ok=True)
    for error in walk.report.errors:
        logger.warning("skipped a file that could not be extracted: %s", error)
    if not feed.chunks and not (halt is not None and halt.requested):
        raise empty_input(source, walk.report, extractors)


def _count_walk(report: RunReport, walked: ExtractionReport) -> None:
    report.files = walked.files
    report.documents = walked.documents
    report.extraction_errors = [str(e) for e in walked.errors]
    report.skipped_files = list(walked.skipped)


def empty_input(
    source: str | os.PathLike[str], walked: ExtractionReport, extractors: Sequence[Extractor]
) -> EmptyInputError:
    """The error of a walk that found no text: what it skipped, and what raftkit reads."""
    parts = [f"{walked.files} file{'s' if walked.files != 1 else ''}"]
    if walked.skipped:
        shown = ", ".join(walked.skipped[:5]) + (", ..." if len(walked.skipped) > 5 else "")
        parts.append(f"{len(walked.skipped)} of a type raftkit does not read ({shown})")
    if walked.errors:
        shown = "; ".join(str(e) for e in walked.errors[:3])
        more = "; ..." if len(walked.errors) > 3 else ""
        parts.append(f"{len(walked.errors)} that could not be extracted ({shown}{more})")
    if walked.documents:
        parts.append(f"{walked.documents} document(s) without a chunk of text")
    suffixes = ", ".join(ExtractorDispatch(extractors).supported_suffixes())
    return EmptyInputError(
        f"nothing to generate from in {os.fspath(source)}: {'; '.join(parts)}. "
        f"raftkit reads {suffixes}."
    )


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

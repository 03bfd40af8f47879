"""(question, positive chunk) pairs for training and evaluating a retriever.

A generation run already paid for them: every question in ``examples.jsonl`` was written from
one chunk, its oracle. Questions whose *answer* was rejected (``rejections.jsonl``) are still
questions about their chunk — the teacher's answer failed verification, not the question — so
they are kept by default (``include_rejected=False`` drops them). Questions rejected
themselves (``"stage": "question"``: the critique, or a duplicate) are never used.

The split is grouped by chunk and decided by :func:`~raftkit.grouped_split.split_groups` from
the chunk ids and a seed alone, never by position: a resumed or re-ordered run puts every
chunk on the same side as before, so no training pair can leak into validation or test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError

from raftkit.errors import InputError, UsageError
from raftkit.grouped_split import DEFAULT_RATIOS, Ratios, SplitName, SplitReport, split_groups
from raftkit.run_dir import RunDir
from raftkit.types import Chunk, Question, RaftExample

__all__ = [
    "PAIRS_FILE",
    "PairSource",
    "PairSplit",
    "QuestionSource",
    "RetrievalPair",
    "pairs_from_run",
    "read_chunks",
    "read_pairs",
    "split_pairs",
    "synthesize_pairs",
    "write_pairs",
]

#: Where ``raftkit retrieval pairs`` writes the pairs, relative to the run directory.
PAIRS_FILE = str(RunDir("").pairs)

#: Where a pair came from: an accepted example, a question whose answer was rejected, or a
#: question synthesized for retrieval alone.
PairSource = Literal["example", "rejected", "synthesized"]


@runtime_checkable
class QuestionSource(Protocol):
    """What :func:`synthesize_pairs` needs: questions about one chunk.

    Any :class:`~raftkit.synth.QuestionSynthesizer` is one; retrieval declares only what it
    calls instead of importing the synthesis package.
    """

    async def synthesize(self, chunk: Chunk, n: int) -> Sequence[Question]: ...


class RetrievalPair(BaseModel):
    """One question and the chunk that answers it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question_id: str
    question: str
    chunk_id: str
    source: PairSource = "example"
    split: SplitName | None = None


@dataclass(frozen=True, slots=True)
class PairSplit:
    """Pairs split by chunk into train/validation/test, each pair's ``split`` set."""

    train: list[RetrievalPair]
    validation: list[RetrievalPair]
    test: list[RetrievalPair]
    report: SplitReport

    def all(self) -> list[RetrievalPair]:
        return [*self.train, *self.validation, *self.test]


def _read_lines(path: Path) -> Iterable[str]:
    # A torn last line (a killed writer) is skipped, like the journal does.
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    complete = text.endswith("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if number == len(lines) and not complete:
            try:
                json.loads(line)
            except json.JSONDecodeError:
                continue
        yield line


def read_chunks(run_dir: str | os.PathLike[str]) -> list[Chunk]:
    """The chunks of a generation run (``run_dir/chunks.jsonl``), in file order."""
    path = RunDir(run_dir).chunks
    if not path.is_file():
        raise InputError(f"{path} not found: is {run_dir} a raftkit generation run directory?")
    try:
        return [Chunk.model_validate_json(line) for line in _read_lines(path)]
    except ValidationError as e:
        raise InputError(f"{path}: not a chunk record: {e.errors()[0]['msg']}") from e


def _unique(pairs: Iterable[RetrievalPair]) -> list[RetrievalPair]:
    seen: dict[tuple[str, str], RetrievalPair] = {}
    for pair in pairs:
        seen.setdefault((pair.chunk_id, pair.question), pair)
    return list(seen.values())


def _pairs_from_run_sync(run_dir: Path, include_rejected: bool) -> list[RetrievalPair]:
    run = RunDir(run_dir)
    examples_path = run.examples
    if not examples_path.is_file():
        raise InputError(f"{examples_path} not found: run `raftkit generate` first")
    pairs: list[RetrievalPair] = []
    try:
        for line in _read_lines(examples_path):
            example = RaftExample.model_validate_json(line)
            pairs.append(
                RetrievalPair(
                    question_id=example.question_id,
                    question=example.question,
                    chunk_id=example.chunk_id,
                )
            )
    except ValidationError as e:
        raise InputError(f"{examples_path}: not a RaftExample: {e.errors()[0]['msg']}") from e
    rejections = run.rejections
    if include_rejected and rejections.is_file():
        for line in _read_lines(rejections):
            record = json.loads(line)
            if not all(record.get(k) for k in ("question_id", "question", "chunk_id")):
                continue
            if record.get("stage") == "question":
                continue  # the question itself was rejected (critique, duplicate)
            pairs.append(
                RetrievalPair(
                    question_id=str(record["question_id"]),
                    question=str(record["question"]),
                    chunk_id=str(record["chunk_id"]),
                    source="rejected",
                )
            )
    return _unique(pairs)


async def pairs_from_run(
    run_dir: str | os.PathLike[str], *, include_rejected: bool = True
) -> list[RetrievalPair]:
    """Pairs from a generation run's examples (and rejected questions), no teacher call made.

    Duplicates (the same question text for the same chunk) are kept once.
    """
    return await anyio.to_thread.run_sync(_pairs_from_run_sync, Path(run_dir), include_rejected)


async def synthesize_pairs(
    chunks: Sequence[Chunk],
    synthesizer: QuestionSource,
    *,
    questions_per_chunk: int = 2,
    concurrency: int = 8,
) -> list[RetrievalPair]:
    """Pairs for a corpus without a generation run: ask ``synthesizer`` for questions.

    ``synthesizer`` is any :class:`~raftkit.synth.QuestionSynthesizer` (for instance
    ``TeacherQuestionSynthesizer(client, model)``; journal the client with ``with_store`` to
    make a rerun free). Chunks are processed ``concurrency`` at a time; the result is in chunk
    order whatever order the answers arrive in.
    """
    if not isinstance(synthesizer, QuestionSource):
        raise UsageError("synthesizer must have an async synthesize(chunk, n) method")
    if questions_per_chunk < 1 or concurrency < 1:
        raise UsageError("questions_per_chunk and concurrency must be >= 1")
    results: list[list[RetrievalPair]] = [[] for _ in chunks]
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int) -> None:
        async with limiter:
            questions = await synthesizer.synthesize(chunks[index], questions_per_chunk)
        results[index] = [
            RetrievalPair(
                question_id=q.id, question=q.text, chunk_id=q.chunk_id, source="synthesized"
            )
            for q in questions
        ]

    async with anyio.create_task_group() as tg:
        for index in range(len(chunks)):
            tg.start_soon(one, index)
    return _unique(pair for part in results for pair in part)


def split_pairs(
    pairs: Iterable[RetrievalPair], *, ratios: Ratios = DEFAULT_RATIOS, seed: int = 0
) -> PairSplit:
    """Split pairs by chunk (every chunk's questions on one side), deterministically."""
    split = split_groups(
        pairs,
        key=lambda p: p.chunk_id,
        ratios=ratios,
        seed=seed,
        order=lambda p: (p.chunk_id, p.question_id, p.question),
        group_by="chunk",
    )
    return PairSplit(
        train=[p.model_copy(update={"split": "train"}) for p in split.train],
        validation=[p.model_copy(update={"split": "validation"}) for p in split.validation],
        test=[p.model_copy(update={"split": "test"}) for p in split.test],
        report=split.report(),
    )


def write_pairs(path: str | os.PathLike[str], pairs: Iterable[RetrievalPair]) -> int:
    """Write pairs as JSONL atomically (a temporary file replaced at the end); the row count."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    count = 0
    with partial.open("w", encoding="utf-8") as sink:
        for pair in pairs:
            sink.write(pair.model_dump_json() + "\n")
            count += 1
        sink.flush()
        os.fsync(sink.fileno())
    partial.replace(target)
    return count


def read_pairs(path: str | os.PathLike[str]) -> PairSplit:
    """Read pairs written by :func:`write_pairs` back into their split parts."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source} not found: run `raftkit retrieval pairs` first")
    parts: dict[str, list[RetrievalPair]] = {"train": [], "validation": [], "test": []}
    try:
        for line in _read_lines(source):
            pair = RetrievalPair.model_validate_json(line)
            if pair.split is None:
                raise InputError(f"{source}: pair {pair.question_id} has no split")
            parts[pair.split].append(pair)
    except ValidationError as e:
        raise InputError(f"{source}: not a retrieval pair: {e.errors()[0]['msg']}") from e
    total = sum(len(v) for v in parts.values())
    groups = {k: len({p.chunk_id for p in v}) for k, v in parts.items()}
    achieved = {k: (len(v) / total if total else 0.0) for k, v in parts.items()}
    report = SplitReport.model_validate(
        {
            "seed": -1,  # not recorded in the file; the split itself is
            "group_by": "chunk",
            "requested": achieved,
            "achieved": achieved,
            "items": {k: len(v) for k, v in parts.items()},
            "groups": groups,
        }
    )
    return PairSplit(parts["train"], parts["validation"], parts["test"], report)

"""Evaluation with the retriever in the loop: each question's documents come from a retriever.

The dataset's contexts are the oracle and sampled distractors; a deployed student sees instead
the top-k chunks its retriever returns over the whole corpus. :func:`retrieve_contexts` asks a
:class:`Retriever` for every test question once and stores the ranked chunk ids per question
(one JSON line each, appended before they are used), so an evaluation resumed after a kill
searches only the questions it had not stored. The resulting :class:`RetrievedContexts` is a
context setting of its own (``retrieved:<retriever>``) that
:class:`~raftkit.evaluate.RaftEvaluator` takes beside ``dataset``, ``no_oracle`` and
``oracle_only``; a retrieved chunk is marked as the oracle when it is the example's own chunk,
so "hit@k" is simply whether the oracle was shown.

This package does not embed anything itself: the retriever (an embedder, an adapter, a
fine-tuned model or any search service) is the caller's, behind the
:class:`~raftkit.evaluate.Retriever` protocol.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError

from raftkit.errors import InputError, UsageError
from raftkit.types import ContextDocument, RaftExample

if TYPE_CHECKING:
    from raftkit.evaluate import Retriever

__all__ = [
    "RETRIEVED_PREFIX",
    "RetrievedContext",
    "RetrievedContexts",
    "retrieve_contexts",
    "retriever_of",
]

#: The setting of a retriever's contexts is named ``retrieved:<retriever name>``.
RETRIEVED_PREFIX = "retrieved:"


class RetrievedContext(BaseModel):
    """One question's retrieved chunks, as stored (one JSON line per question)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    example_id: str
    question_id: str
    retriever: str
    k: int
    chunk_ids: list[str]
    scores: list[float]


def retriever_of(setting: str) -> str | None:
    """The retriever name of a ``retrieved:<name>`` setting, else ``None``."""
    return setting[len(RETRIEVED_PREFIX) :] if setting.startswith(RETRIEVED_PREFIX) else None


@dataclass(frozen=True)
class RetrievedContexts:
    """A retriever's top-k chunks for each question: a context setting of the evaluation."""

    retriever: str
    k: int
    contexts: Mapping[str, RetrievedContext]
    """Example id to its retrieved chunks."""
    chunk_texts: Mapping[str, str]
    """Chunk id to text, for every chunk retrieved."""

    @property
    def setting(self) -> str:
        return f"{RETRIEVED_PREFIX}{self.retriever}"

    def documents(self, example: RaftExample) -> list[ContextDocument]:
        """The retrieved chunks for ``example`` in rank order; the example's own chunk is
        marked as the oracle."""
        found = self.contexts.get(example.id)
        if found is None:
            raise UsageError(f"no retrieved context for example {example.id!r} ({self.setting})")
        return [
            ContextDocument(
                chunk_id=chunk_id,
                position=position,
                is_oracle=chunk_id == example.chunk_id,
                text=self.chunk_texts[chunk_id],
            )
            for position, chunk_id in enumerate(found.chunk_ids)
        ]

    def hit(self, example: RaftExample) -> bool:
        """Whether the example's oracle chunk is among its retrieved chunks."""
        found = self.contexts.get(example.id)
        return found is not None and example.chunk_id in found.chunk_ids


def _read_store(path: Path) -> list[RetrievedContext]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    stored: list[RetrievedContext] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            stored.append(RetrievedContext.model_validate_json(line))
        except ValidationError as e:
            if number == len(lines):
                break  # a torn last line from a killed writer: search that question again
            raise InputError(
                f"{path}, line {number}: not a retrieved context ({e.errors()[0]['msg']}); "
                "delete the file to retrieve again"
            ) from e
    return stored


def _append_store(path: Path, records: Sequence[RetrievedContext]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            # cut a torn last line off (it was searched again), or it would end up mid-file
            with path.open("r+b") as torn:
                torn.truncate(data.rfind(b"\n") + 1)
    with path.open("a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record.model_dump(), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


async def retrieve_contexts(
    retriever: Retriever,
    examples: Sequence[RaftExample],
    chunks: Mapping[str, str],
    *,
    k: int,
    store: str | os.PathLike[str] | None = None,
) -> RetrievedContexts:
    """The top-``k`` chunks ``retriever`` returns for each example's question.

    ``chunks`` maps every chunk id of the corpus to its text. With ``store`` (a JSONL file),
    questions already stored there for this retriever and ``k`` are not searched again, and
    new results are appended before they are returned.
    """
    if k < 1:
        raise UsageError(f"top-k must be at least 1, not {k}")
    name = retriever.name
    path = Path(store) if store is not None else None
    stored: dict[str, RetrievedContext] = {}
    if path is not None:
        for record in await anyio.to_thread.run_sync(_read_store, path):
            if record.retriever == name and record.k == k:
                stored[record.example_id] = record
    missing = [e for e in examples if e.id not in stored]
    if missing:
        ranked = await retriever.search([e.question for e in missing], k)
        if len(ranked) != len(missing):
            raise UsageError(
                f"retriever {name!r} returned {len(ranked)} rankings for {len(missing)} queries"
            )
        fresh = [
            RetrievedContext(
                example_id=example.id,
                question_id=example.question_id,
                retriever=name,
                k=k,
                chunk_ids=[chunk_id for chunk_id, _ in hits[:k]],
                scores=[float(score) for _, score in hits[:k]],
            )
            for example, hits in zip(missing, ranked, strict=True)
        ]
        if path is not None:
            await anyio.to_thread.run_sync(_append_store, path, fresh)
        stored.update((record.example_id, record) for record in fresh)
    texts: dict[str, str] = {}
    for example in examples:
        for chunk_id in stored[example.id].chunk_ids:
            if chunk_id not in chunks:
                where = f"{path}" if path is not None else f"retriever {name!r}"
                raise UsageError(
                    f"{where} names chunk {chunk_id!r}, which is not in the corpus; "
                    "delete the stored contexts to retrieve again"
                )
            texts[chunk_id] = chunks[chunk_id]
    return RetrievedContexts(
        retriever=name,
        k=k,
        contexts={e.id: stored[e.id] for e in examples},
        chunk_texts=texts,
    )

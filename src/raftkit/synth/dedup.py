"""De-duplication across a corpus: one question where the teacher wrote it twice, and one split
group for chunks that hold the same text.

**Questions.** The same question asked of two chunks (a fact stated twice, or a lazy teacher's
"What is the main point?") is one example too many, and a test question whose twin is in
training measures memory. :class:`QuestionDeduplicator` keeps the **first in corpus order**
(chunk, then the synthesizer's order) of each set of near-duplicates:

- *text*: two questions are one when their :func:`question_key` is equal — case, width,
  punctuation, contractions, function words (but not the question words
  who/what/when/where/why/how/which) and a plural ``s`` are ignored, so "What's the capital
  of France?" and "What is the capital of France" are one question;
- *embeddings* (when ``similarity`` is set and an embedder is given): also when the cosine
  similarity of their embeddings is at least ``similarity``.

Because the first in corpus order must win whatever order the workers finish in, chunk ``i``'s
questions are compared only once every chunk before it has been (:meth:`QuestionDeduplicator.turn`).
Questions of later chunks are written meanwhile; only their admission waits.

**Chunks.** The same paragraph in two documents makes two chunks that answer the same
questions: if one went to training and the other to test, the test would leak.
:func:`duplicate_chunk_groups` links chunks whose long sentences (at least six words or ten CJK
characters) overlap by ``min_overlap`` of either chunk's sentence text, and names each linked
set by its first chunk; the run writes that name into :attr:`RaftExample.split_group`.
Neighbouring chunks of one document share their overlap by design and are not linked for it;
a sentence found in more than ``max_spread`` chunks is boilerplate (a header, a licence line)
and links nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from raftkit.grouped_split import connected_groups
from raftkit.synth._support import is_function_word
from raftkit.synth._text import dedup_key, sentences
from raftkit.types import Chunk, Question

__all__ = [
    "DedupRules",
    "Duplicate",
    "QuestionDeduplicator",
    "Turn",
    "duplicate_chunk_groups",
    "duplicate_chunk_links",
    "question_key",
]

Embed = Callable[[list[str]], Awaitable[npt.NDArray[np.float32]]]

_CJK_RUN = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECES = re.compile(rf"[{_CJK_RUN}]+|[^\W_{_CJK_RUN}]+")
_CJK_LETTER = re.compile(f"[{_CJK_RUN}]")
_WORD = re.compile(r"[^\W_]+")
_QUESTION_WORD_TEXT = "who whom whose what when where why how which"
_QUESTION_WORDS = frozenset(_QUESTION_WORD_TEXT.split())
# "what's", "they're", "isn't": the contraction says nothing the key needs
_CONTRACTION = re.compile(r"n['’]t\b|['’](?:s|re|ve|ll|d|m)\b")
_UNIT_MIN_WORDS = 6
_UNIT_MIN_CJK = 10


class DedupRules(BaseModel):
    """What counts as a duplicate. They shape the data, so a run records them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    questions: bool = Field(True, description="drop later near-duplicate questions")
    similarity: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="also drop a question whose embedding has at least this cosine similarity "
        "to an earlier one's (embeds every question); None: text only",
    )
    chunk_overlap: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="chunks sharing this share of their sentences go to one split group; 0: off",
    )


def question_key(text: str) -> str:
    """``text`` as the text comparison sees it (see the module docstring)."""
    words: list[str] = []
    folded = _CONTRACTION.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    for piece in _PIECES.findall(folded):
        if _CJK_LETTER.match(piece):
            words.append(piece)
            continue
        if piece not in _QUESTION_WORDS and is_function_word(piece):
            continue
        if len(piece) > 3 and piece.endswith("s") and not piece.endswith("ss"):
            piece = piece[:-1]
        words.append(piece)
    return " ".join(words) or dedup_key(text)


@dataclass(frozen=True)
class Duplicate:
    """A question dropped as a near-duplicate of ``first``, which was kept."""

    question: Question
    first: Question
    similarity: float | None = None
    """The cosine similarity when the embeddings decided; ``None`` when the text did."""


class Turn:
    """One chunk's turn at :class:`QuestionDeduplicator` (see :meth:`admit`)."""

    def __init__(self, owner: QuestionDeduplicator, index: int) -> None:
        self._owner = owner
        self.index = index
        self.done = False

    async def admit(self, questions: Sequence[Question]) -> tuple[list[Question], list[Duplicate]]:
        """The questions to keep and the duplicates to drop, once every earlier chunk is in."""
        owner = self._owner
        if not owner.rules.questions or not questions:
            return list(questions), []
        vectors = await owner.embeddings(questions)
        await owner.wait_for(self.index)
        kept, dropped = await owner.compare(questions, vectors)
        return kept, dropped


class QuestionDeduplicator:
    """Keeps the first, in corpus order, of near-duplicate questions (one instance per run).

    Use one :meth:`turn` per chunk index, every index from 0 on: ``async with dedup.turn(i) as
    turn: kept, dropped = await turn.admit(questions)``. A turn that ends without admitting
    anything (the chunk failed, or its questions were deferred to a batch) still lets the next
    chunks through. ``embed`` embeds texts (the run's embedding model); it is used only when
    ``rules.similarity`` is set.
    """

    def __init__(self, rules: DedupRules | None = None, *, embed: Embed | None = None) -> None:
        self.rules = rules if rules is not None else DedupRules()
        self._embed = embed if self.rules.similarity is not None else None
        self._finished: set[int] = set()
        self._next = 0
        self._advanced = anyio.Event()
        self._seen: dict[str, Question] = {}
        self._kept: list[Question] = []
        self._matrix: npt.NDArray[np.float32] | None = None
        self._rows = 0
        self.embedding_calls = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rules={self.rules!r}, kept={len(self._kept)})"

    @asynccontextmanager
    async def turn(self, index: int) -> AsyncIterator[Turn]:
        turn = Turn(self, index)
        try:
            yield turn
        finally:
            self._finish(index)

    def _finish(self, index: int) -> None:
        self._finished.add(index)
        moved = False
        while self._next in self._finished:
            self._finished.discard(self._next)
            self._next += 1
            moved = True
        if moved:
            self._advanced.set()
            self._advanced = anyio.Event()

    async def wait_for(self, index: int) -> None:
        """Return once every chunk before ``index`` has had its turn."""
        while self._next < index:
            await self._advanced.wait()

    async def embeddings(self, questions: Sequence[Question]) -> npt.NDArray[np.float32] | None:
        if self._embed is None:
            return None
        vectors = np.asarray(await self._embed([q.text for q in questions]), dtype=np.float32)
        self.embedding_calls += 1
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = np.divide(
            vectors, norms, out=np.zeros_like(vectors), where=norms > 0
        )
        return unit

    async def compare(
        self, questions: Sequence[Question], vectors: npt.NDArray[np.float32] | None
    ) -> tuple[list[Question], list[Duplicate]]:
        kept: list[Question] = []
        dropped: list[Duplicate] = []
        for i, question in enumerate(questions):
            key = question_key(question.text)
            first = self._seen.get(key)
            if first is not None:
                dropped.append(Duplicate(question, first))
                continue
            if vectors is not None:
                row = vectors[i]
                best, where = await anyio.to_thread.run_sync(self._nearest, row)
                assert self.rules.similarity is not None
                if where is not None and best >= self.rules.similarity:
                    dropped.append(Duplicate(question, self._kept[where], round(best, 4)))
                    continue
                self._append(row)
            self._seen[key] = question
            self._kept.append(question)
            kept.append(question)
        return kept, dropped

    def _nearest(self, row: npt.NDArray[np.float32]) -> tuple[float, int | None]:
        if self._matrix is None or self._rows == 0:
            return 0.0, None
        scores = self._matrix[: self._rows] @ row
        where = int(np.argmax(scores))
        return float(scores[where]), where

    def _append(self, row: npt.NDArray[np.float32]) -> None:
        if self._matrix is None:
            self._matrix = np.zeros((64, row.shape[0]), dtype=np.float32)
        if self._rows == self._matrix.shape[0]:
            grown = np.zeros((2 * self._rows, row.shape[0]), dtype=np.float32)
            grown[: self._rows] = self._matrix
            self._matrix = grown
        self._matrix[self._rows] = row
        self._rows += 1


def _units(text: str) -> set[str]:
    found = set()
    for sentence in sentences(text):
        cjk = len(_CJK_LETTER.findall(sentence))
        words = len(_WORD.findall(_CJK_LETTER.sub(" ", sentence)))
        if cjk >= _UNIT_MIN_CJK or words >= _UNIT_MIN_WORDS:
            key = dedup_key(sentence)
            if key:
                found.add(key)
    return found


def duplicate_chunk_links(
    chunks: Sequence[Chunk], *, min_overlap: float = 0.5, max_spread: int = 20
) -> list[tuple[str, str]]:
    """Pairs of chunk ids whose long sentences overlap by ``min_overlap`` of either chunk's
    sentence text (pairs in corpus order; see the module docstring)."""
    if min_overlap <= 0 or len(chunks) < 2:
        return []
    units = [_units(c.text) for c in chunks]
    weight = [sum(len(u) for u in us) for us in units]
    holders: defaultdict[str, list[int]] = defaultdict(list)
    for index, us in enumerate(units):
        for unit in us:
            holders[unit].append(index)
    shared: defaultdict[tuple[int, int], int] = defaultdict(int)
    for unit, where in holders.items():
        if len(where) < 2 or len(where) > max_spread:
            continue
        for a_pos, a in enumerate(where):
            for b in where[a_pos + 1 :]:
                shared[(a, b)] += len(unit)
    links = []
    for (a, b), size in sorted(shared.items()):
        first, second = chunks[a], chunks[b]
        if first.document_id == second.document_id and abs(first.index - second.index) == 1:
            continue  # neighbours share their overlap by design
        if size >= min_overlap * weight[a] or size >= min_overlap * weight[b]:
            links.append((first.id, second.id))
    return links


def duplicate_chunk_groups(
    chunks: Sequence[Chunk],
    *,
    min_overlap: float = 0.5,
    max_spread: int = 20,
    links: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """Each linked chunk's group: the id of the first chunk (corpus order) of its linked set.

    Only chunks linked to another are listed. ``links`` adds pairs of other origin (a
    multi-hop question's two chunks) to those found in the text.
    """
    found = duplicate_chunk_links(chunks, min_overlap=min_overlap, max_spread=max_spread)
    every = [*found, *links]
    if not every:
        return {}
    groups = connected_groups((c.id for c in chunks), every)
    linked = {chunk_id for pair in every for chunk_id in pair}
    return {chunk_id: groups[chunk_id] for chunk_id in groups if chunk_id in linked}

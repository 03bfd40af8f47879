"""The RAFT context of one question: the oracle kept with probability ``p`` beside ``k``
distractors drawn by a :class:`~raftkit.synth.distractors.DistractorSampler`, in shuffled
positions, every draw from the question's own generator
(:func:`~raftkit.synth.distractors.question_rng`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.synth.distractors import DistractorSampler
from raftkit.types import Chunk, ContextDocument, Question

__all__ = ["Context", "build_context"]


class Context(BaseModel):
    """The documents shown beside one question, and how they were chosen."""

    model_config = ConfigDict(frozen=True)

    documents: list[ContextDocument]
    oracle_present: bool
    distractors_requested: int = Field(
        description="k, plus one when the oracle was left out (it is replaced by a distractor)"
    )

    @property
    def distractor_count(self) -> int:
        return sum(1 for d in self.documents if not d.is_oracle)

    @property
    def short(self) -> bool:
        """True when the corpus had fewer eligible chunks than the distractors requested."""
        return self.distractor_count < self.distractors_requested


async def build_context(
    question: Question,
    oracle: Chunk,
    sampler: DistractorSampler,
    *,
    rng: np.random.Generator,
    k: int = 4,
    p: float = 0.8,
    partners: Sequence[Chunk] = (),
    exclude: Collection[str] = (),
) -> Context:
    """The RAFT context for ``question``: the oracle kept with probability ``p``, ``k`` distractors.

    ``partners`` are more oracles (a multi-hop question's second chunk): kept or left out with
    the oracle, never drawn as distractors. Chunks whose ids are in ``exclude`` (the oracle's
    near-duplicates, which hold its answer) are never drawn either.

    When the oracle is left out it is replaced by one more distractor, so the context has
    ``k + 1`` documents either way (as in the RAFT reference, which swaps the oracle for another
    chunk). Positions are shuffled. A corpus too small for that many distractors gives all the
    eligible chunks it has; :attr:`Context.short` records it. Draws from ``rng``, in order: the
    keep-oracle decision, the sampler's draws, the shuffle.
    """
    if k < 0:
        raise UsageError(f"k must be >= 0, got {k}")
    if not 0.0 <= p <= 1.0:
        raise UsageError(f"p must be within [0, 1], got {p}")
    keep = bool(rng.random() < p)
    oracles = [oracle, *partners]
    wanted = k if keep else k + len(oracles)
    seen = {c.id for c in oracles} | set(exclude)
    distractors: list[Chunk] = []
    # A user-written sampler may slip: never show the oracle twice or a chunk twice. Excluded
    # chunks the sampler may draw are made up for by asking for as many more.
    spare = len(seen) - 1
    for chunk in await sampler.sample(question, oracle, wanted + spare, rng):
        if chunk.id not in seen and len(distractors) < wanted:
            seen.add(chunk.id)
            distractors.append(chunk)
    shown = [*oracles, *distractors] if keep else distractors
    order = rng.permutation(len(shown))
    documents = [
        ContextDocument(
            chunk_id=shown[i].id,
            position=position,
            is_oracle=keep and i < len(oracles),
            title=shown[i].metadata.get("title", ""),
            text=shown[i].text,
        )
        for position, i in enumerate(int(j) for j in order)
    ]
    return Context(documents=documents, oracle_present=keep, distractors_requested=wanted)

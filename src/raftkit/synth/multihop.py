"""Multi-hop questions: one question that needs two related chunks.

A share of the chunks (drawn per chunk from the run seed) gets one more question, written from
the chunk and a related one, its **partner**:

- **Pairing** (:func:`multi_hop_pairs`, no call): with the corpus's embeddings (the embedding
  sampler's), the partner is the nearest chunk; without them, the chunk sharing the most rare
  key terms — capitalised names and numbers for scripts with case, character pairs for CJK —
  weighted by how rare each is in the corpus, at least ``min_shared`` of them. Never the chunk
  itself, a neighbour in its document (they overlap), or a chunk sharing its text. A pair is
  asked once, by its earlier chunk.
- **Writing** (:class:`MultiHopQuestionWriter`, one structured call): the teacher sees both
  chunks and writes one question neither answers alone.
- **Answering**: the answer generator's :meth:`~raftkit.synth.TeacherAnswerGenerator.
  generate_multi` sees both chunks; its quotes must verify against both oracles, each quote
  attributed to the chunk it comes from. Both chunks go into the context or neither (the same
  ``p`` draw), and both into one split group.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from raftkit.errors import StructuredOutputError
from raftkit.llm import ChatMessage, LLMClient
from raftkit.llm.caps import CompletionCaps
from raftkit.synth._support import is_function_word
from raftkit.synth._text import stable_int
from raftkit.synth.prompts import Prompts, format_documents
from raftkit.synth.questions import QUESTION_TOKENS, question_id, questions_output_model
from raftkit.types import Chunk, Question, Usage

__all__ = [
    "MULTI_HOP_TYPE",
    "MultiHopQuestionWriter",
    "multi_hop_messages",
    "multi_hop_pairs",
    "multi_hop_selected",
]

logger = logging.getLogger("raftkit.synth")
#: The JSON around a multi-hop question before any reply was seen (then its cap is learned).
_QUESTION_JSON = 32

#: The :attr:`~raftkit.types.Question.question_type` of a multi-hop question.
MULTI_HOP_TYPE = "multi_hop"

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_NAME = re.compile(rf"(?<=[^\s.!?。！？])\s+([^\W\d_{_CJK}][\w-]*[^\W_])")
_NUMBER = re.compile(r"(?<![\w.,])\d{3,}(?![\w])")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_MAX_SPREAD = 0.1  # a term in more than this share of the chunks (and 3) relates nothing
_NEAR_DUPLICATE = 0.98
_BLOCK = 256


def multi_hop_selected(seed: int, chunk_id: str, share: float) -> bool:
    """Whether the chunk ``chunk_id`` is drawn to get a multi-hop question."""
    return share > 0 and stable_int(f"{seed}/{chunk_id}/multi-hop") / 2**64 < share


def _terms(text: str) -> set[str]:
    """Rare-word candidates: names (capitalised words not starting a sentence), numbers of
    three digits or more, and CJK character pairs that are not all function characters."""
    terms = {m.group(1).casefold() for m in _NAME.finditer(text) if m.group(1)[0].isupper()}
    terms |= set(_NUMBER.findall(text))
    for run in _CJK_RUN.findall(text):
        terms |= {
            run[i : i + 2] for i in range(len(run) - 1) if not is_function_word(run[i : i + 2])
        }
    return {t for t in terms if not is_function_word(t)}


def _eligible(chunks: Sequence[Chunk], a: int, b: int, groups: Mapping[str, str]) -> bool:
    if a == b:
        return False
    first, second = chunks[a], chunks[b]
    if first.document_id == second.document_id and abs(first.index - second.index) <= 1:
        return False
    group = groups.get(first.id)
    return group is None or group != groups.get(second.id)


def _lexical_partners(
    chunks: Sequence[Chunk],
    owners: list[int],
    groups: Mapping[str, str],
    min_shared: int,
) -> dict[int, int]:
    terms = [_terms(c.text) for c in chunks]
    holders: defaultdict[str, list[int]] = defaultdict(list)
    for index, found in enumerate(terms):
        for term in found:
            holders[term].append(index)
    spread = max(3, math.ceil(_MAX_SPREAD * len(chunks)))
    partners: dict[int, int] = {}
    for owner in owners:
        score: defaultdict[int, float] = defaultdict(float)
        shared: defaultdict[int, int] = defaultdict(int)
        for term in terms[owner]:
            where = holders[term]
            if len(where) > spread:
                continue
            weight = math.log(len(chunks) / len(where))
            for other in where:
                if _eligible(chunks, owner, other, groups):
                    score[other] += weight
                    shared[other] += 1
        candidates = [i for i in score if shared[i] >= min_shared]
        if candidates:
            partners[owner] = max(candidates, key=lambda i: (score[i], -i))
    return partners


def _embedding_partners(
    chunks: Sequence[Chunk],
    owners: list[int],
    groups: Mapping[str, str],
    embeddings: npt.NDArray[np.float32],
) -> dict[int, int]:
    partners: dict[int, int] = {}
    for start in range(0, len(owners), _BLOCK):
        block = owners[start : start + _BLOCK]
        sims = embeddings[block] @ embeddings.T
        for row, owner in zip(sims, block, strict=True):
            for other in np.argsort(-row, kind="stable"):
                other = int(other)
                if row[other] >= _NEAR_DUPLICATE and other != owner:
                    continue  # the same text: nothing to combine
                if _eligible(chunks, owner, other, groups):
                    partners[owner] = other
                    break
    return partners


def multi_hop_pairs(
    chunks: Sequence[Chunk],
    *,
    share: float,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
    embeddings: npt.ArrayLike | None = None,
    min_shared: int = 2,
) -> dict[int, int]:
    """Owner chunk index → partner chunk index, for the chunks drawn (see the module docstring).

    ``groups`` are the chunks' duplicate-text groups (chunk id → group key); ``embeddings``
    one unit-length row per chunk. Blocking work: call it in a worker thread for a big corpus.
    """
    owners = [i for i, c in enumerate(chunks) if multi_hop_selected(seed, c.id, share)]
    if not owners or len(chunks) < 2:
        return {}
    groups = groups or {}
    if embeddings is not None:
        matrix = np.asarray(embeddings, dtype=np.float32)
        found = _embedding_partners(chunks, owners, groups, matrix)
    else:
        found = _lexical_partners(chunks, owners, groups, min_shared)
    pairs: dict[int, int] = {}
    asked: set[frozenset[int]] = set()
    for owner in owners:
        partner = found.get(owner)
        if partner is None or frozenset((owner, partner)) in asked:
            continue
        asked.add(frozenset((owner, partner)))
        pairs[owner] = partner
    return pairs


def multi_hop_messages(first: Chunk, second: Chunk, prompts: Prompts) -> list[ChatMessage]:
    """The request for one question that needs both chunks."""
    titles = [first.metadata.get("title", ""), second.metadata.get("title", "")]
    documents = format_documents([first.text, second.text], prompts, titles)
    return [
        {"role": "system", "content": prompts.multi_hop_system.format()},
        {"role": "user", "content": prompts.multi_hop_user.format(documents=documents)},
    ]


class MultiHopQuestionWriter:
    """Asks the teacher for one question needing two chunks (one structured call).

    The question belongs to ``first`` (its :attr:`~raftkit.types.Question.chunk_id`); its
    ``metadata["partner_chunk_id"]`` names ``second`` and its type is :data:`MULTI_HOP_TYPE`.
    An unusable reply gives no question. ``calls`` and ``usage`` add up what it cost.
    """

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        prompts: Prompts | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        caps: CompletionCaps | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.prompts = prompts if prompts is not None else Prompts()
        self.max_tokens = max_tokens
        self.caps = caps if caps is not None else CompletionCaps()
        self.temperature = temperature
        self.calls = 0
        self.usage = Usage()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    async def write(self, first: Chunk, second: Chunk, *, sample: int = 0) -> Question | None:
        # a question of its own kind: one that must join two chunks runs longer than a
        # chunk's plain questions, so it does not share what they learned
        initial = _QUESTION_JSON + 2 * QUESTION_TOKENS
        cap = self.caps.cap("multi-hop", self.model, initial=initial, pinned=self.max_tokens)
        try:
            reply = await self.client.chat_structured(
                multi_hop_messages(first, second, self.prompts),
                questions_output_model(1),
                model=self.model,
                temperature=self.temperature,
                max_tokens=cap.max_tokens,
                retry_max_tokens=cap.retry_max_tokens,
                sample=sample,
            )
        except StructuredOutputError as e:
            self.calls += 1
            logger.warning(
                "chunks %s + %s: unusable multi-hop question (%s)", first.id, second.id, e
            )
            return None
        self.caps.observe("multi-hop", self.model, reply.response)
        self.calls += 1
        self.usage = self.usage + reply.response.total_usage
        texts = [q for q in getattr(reply.output, "questions", []) if isinstance(q, str)]
        text = " ".join(texts[0].split()) if texts else ""
        if not text:
            return None
        return Question(
            id=question_id(f"{first.id}+{second.id}", text),
            chunk_id=first.id,
            text=text,
            question_type=MULTI_HOP_TYPE,
            metadata={"partner_chunk_id": second.id},
        )

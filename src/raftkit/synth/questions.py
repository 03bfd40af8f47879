"""Question synthesis: ``n`` questions per chunk, each chunk the oracle of its questions.

:class:`QuestionSynthesizer` is the plug-in point; :class:`TeacherQuestionSynthesizer` is the
default, which asks a teacher model through :meth:`LLMClient.chat_structured`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from raftkit.errors import StructuredOutputError, UsageError
from raftkit.llm import ChatMessage, LLMClient
from raftkit.llm.caps import CompletionCaps
from raftkit.llm.tokens import estimate_tokens
from raftkit.synth._schemas import exact_list_model
from raftkit.synth._text import dedup_key, tidy_spaces
from raftkit.synth.prompts import (
    Prompts,
    chunk_cache_key,
    question_messages,
    question_retry_messages,
)
from raftkit.types import Chunk, Question

__all__ = [
    "QUESTION_TOKENS",
    "QuestionSynthesizer",
    "TeacherQuestionSynthesizer",
    "question_id",
    "question_scale",
    "questions_output_model",
]

logger = logging.getLogger("raftkit.synth")

#: The completion cap of a question call before any reply was seen: this many tokens per
#: question asked, plus the JSON around them (a question is one sentence of 10 to 40 tokens; a
#: longer one is cut and asked again with a larger cap). Later calls get the cap learned per
#: question, relative to the chunk's tokens per word (:func:`question_scale`).
QUESTION_TOKENS = 64
_QUESTIONS_JSON = 32
_WORD = re.compile(r"[^\W\d_]+|\d+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

# "1. ", "2) ", "- ", "• ", "Q3: ", "（1）" — list decoration a model sometimes keeps inside JSON.
_LIST_PREFIX = re.compile(
    r"^\s*(?:[-*•·]\s+|\d{1,3}[.):]\s+|\d{1,3}、|[（(]\d{1,3}[)）]\s*|[qQ]\d{1,3}[.:)]\s*)"
)


@runtime_checkable
class QuestionSynthesizer(Protocol):
    """Writes questions about one chunk.

    ``sample`` tells apart deliberate repeats for the same chunk (a second batch of questions),
    so that a journal does not replay the first batch for them.
    """

    async def synthesize(self, chunk: Chunk, n: int, *, sample: int = 0) -> list[Question]: ...


def question_id(chunk_id: str, text: str) -> str:
    """A stable id from the chunk id and the normalised question (see ``dedup_key``)."""
    digest = hashlib.sha256(f"{chunk_id}\x00{dedup_key(text)}".encode()).hexdigest()
    return f"q-{digest[:16]}"


@lru_cache(maxsize=64)
def questions_output_model(n: int) -> type[BaseModel]:
    """The structured-output model for ``n`` questions: ``{"questions": [str, ...]}``.

    The schema sent to the model says exactly ``n`` items (``minItems``/``maxItems``), but
    validation accepts any count on purpose: a reply with six questions instead of five is
    trimmed and one with four is topped up, instead of being thrown away and paid for again.
    """
    return exact_list_model("Questions", "questions", n, f"exactly {n} questions")


@lru_cache(maxsize=1024)
def question_scale(chunk: str) -> float:
    """Tokens per word of ``chunk`` (a CJK character counts as a word): questions are written
    in its words, so one about a chunk of dense jargon or tables costs more tokens than one of
    plain prose, and the learned cap follows."""
    words = len(_WORD.findall(_CJK.sub(" ", chunk))) + len(_CJK.findall(chunk))
    return max(0.5, estimate_tokens(chunk) / max(1, words))


def _clean(text: str) -> str:
    # A question is one line: a line break inside it is layout copied from the chunk.
    return tidy_spaces(_LIST_PREFIX.sub("", text.strip(), count=1))


class TeacherQuestionSynthesizer:
    """Asks a teacher model for questions about a chunk and makes the count exact.

    Per chunk: ask for ``n`` questions; drop blank ones and duplicates (compared after NFKC,
    case folding and removing whitespace and punctuation, CJK punctuation included); if fewer
    than ``n`` remain, ask for the missing number, listing those already kept, at most
    ``max_retries`` times; keep the first ``n``. If the teacher still falls short, the questions
    found so far are returned (possibly fewer than ``n``) and a warning is logged; a reply that
    is not valid JSON counts as a round that found nothing. API errors propagate.

    Each round uses its own ``sample`` index: ``sample * (max_retries + 1) + round``, so that
    repeats are journaled apart from the first request.

    Every call carries a cap sized to the questions it asks for: :data:`QUESTION_TOKENS` per
    question at first, then what ``caps`` (shared with the run's other calls) learned of
    question replies per question, relative to :func:`question_scale`; ``max_tokens`` pins it
    instead. Calls name the chunk as their ``prompt_cache_key``.
    """

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        prompts: Prompts | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        max_retries: int = 2,
        caps: CompletionCaps | None = None,
    ) -> None:
        if max_retries < 0:
            raise UsageError("max_retries must be >= 0")
        self.client = client
        self.model = model
        self.prompts = prompts if prompts is not None else Prompts()
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.max_retries = max_retries
        self.caps = caps if caps is not None else CompletionCaps()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, max_retries={self.max_retries})"

    async def synthesize(self, chunk: Chunk, n: int = 5, *, sample: int = 0) -> list[Question]:
        if n < 1:
            raise UsageError(f"n must be >= 1, got {n}")
        kept: dict[str, str] = {}  # dedup key -> question text, in order of arrival
        rounds = self.max_retries + 1
        for round_ in range(rounds):
            wanted = n - len(kept)
            if wanted <= 0:
                break
            if round_ == 0:
                messages = question_messages(chunk.text, wanted, self.prompts)
            else:
                messages = question_retry_messages(
                    chunk.text, wanted, list(kept.values()), self.prompts
                )
            for text in await self._ask(messages, wanted, sample * rounds + round_, chunk):
                key = dedup_key(text)
                if key and key not in kept:
                    kept[key] = text
        texts = list(kept.values())[:n]
        if len(texts) < n:
            logger.warning(
                "chunk %s: teacher gave %d of %d distinct questions after %d rounds",
                chunk.id,
                len(texts),
                n,
                rounds,
            )
        return [Question(id=question_id(chunk.id, t), chunk_id=chunk.id, text=t) for t in texts]

    async def _ask(
        self, messages: list[ChatMessage], n: int, sample: int, chunk: Chunk
    ) -> Iterable[str]:
        scale = question_scale(chunk.text)
        cap = self.caps.cap(
            "questions",
            self.model,
            initial=_QUESTIONS_JSON + QUESTION_TOKENS * n,
            units=n,
            scale=scale,
            pinned=self.max_tokens,
        )
        try:
            result = await self.client.chat_structured(
                messages,
                questions_output_model(n),
                model=self.model,
                temperature=self.temperature,
                max_tokens=cap.max_tokens,
                retry_max_tokens=cap.retry_max_tokens,
                prompt_cache_key=chunk_cache_key(chunk.id),
                seed=self.seed,
                sample=sample,
            )
        except StructuredOutputError as e:
            logger.warning("chunk %s: unusable question output (%s)", chunk.id, e)
            return []
        self.caps.observe("questions", self.model, result.response, units=n, scale=scale)
        questions = getattr(result.output, "questions", None)
        if not isinstance(questions, list):
            return []
        return [c for c in (_clean(q) for q in questions if isinstance(q, str)) if c]

"""Chain-of-thought answers from a teacher model, verified before they are kept.

:class:`AnswerGenerator` is the plug-in point; :class:`TeacherAnswerGenerator` is the default.
:class:`MultiAnswerGenerator` adds ``generate_many``: one call answering several questions of a
chunk (``answers_per_call``), each answer verified on its own and a rejected one re-asked alone.

The teacher sees the question and the oracle chunk only, not the distractors: this follows the
RAFT reference implementation (``generate_label(client, q, chunk)`` in gorilla's ``raft.py``).
The answer is then a faithful reading of the oracle, and the training example teaches the
student to find that reading among distractors — or, when the oracle was left out of the
context (probability ``1 - p``), to recall it.

A little over 400 lines: one answer, several answers a call and one answer over several oracles
share the attempt loop, the verification and the completion caps, which is what keeps them
behaving alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal, Protocol, runtime_checkable

import anyio
from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import StructuredOutputError, UsageError
from raftkit.llm import ChatMessage, ChatResponse, LLMClient
from raftkit.llm.caps import Cap, CompletionCaps
from raftkit.llm.tokens import estimate_tokens
from raftkit.synth._schemas import exact_list_model
from raftkit.synth._text import bm25_tokens
from raftkit.synth.prompts import (
    Prompts,
    answer_messages,
    answer_retry_messages,
    answers_messages,
    chunk_cache_key,
)
from raftkit.synth.verify import (
    Normalisation,
    RejectionReason,
    Verification,
    VerifyRules,
    verify_answer,
)
from raftkit.types import Chunk, Question, Usage

__all__ = [
    "AnswerGenerator",
    "AnswerResult",
    "MultiAnswerGenerator",
    "MultiOracleAnswerGenerator",
    "TeacherAnswerGenerator",
    "answer_scale",
    "answers_output_model",
]

logger = logging.getLogger("raftkit.synth")

#: The tokens of an answer beside what it quotes (reasoning, the answer line). An answer
#: quotes its oracle, so its length follows the sentence the question is about: caps are
#: learned relative to this plus that sentence (:func:`answer_scale`), and start at twice it
#: before any reply was seen.
ANSWER_TOKENS = 64
_ANSWERS_JSON = 32
_MAX_INITIAL_ANSWER = 1024
# Where a sentence may end (Latin before a space, CJK anywhere); a chunk without any is one
# long "sentence". A period after an initial ("J. E. Gray") or an abbreviation does not end one.
_SENTENCE_END = re.compile(r"[.!?]+(?=\s)|[。！？]+")
_NOT_AN_END = re.compile(r"(?:^|[\s(])(?:[A-Z]|e\.g|i\.e|al|etc|vs|cf|[DM]rs?|Prof|St|No|Fig)$")


class AnswerResult(BaseModel):
    """A teacher's answer after verification, accepted or not.

    For a rejection, ``reason`` is why the last attempt failed and ``cot_answer`` is that
    attempt's text (kept for inspection, not for training).
    """

    model_config = ConfigDict(frozen=True)

    accepted: bool
    cot_answer: str
    final_answer: str = ""
    quotes: list[str] = Field(default_factory=list)
    reason: RejectionReason | None = None
    detail: str = Field(default="", description="what was wrong with the last rejected attempt")
    normalisations: list[Normalisation] = Field(
        default_factory=list, description="what matching the accepted answer's quotes needed"
    )
    rejections: list[RejectionReason] = Field(
        default_factory=list, description="why each failed attempt was rejected, in order"
    )
    attempts: int = Field(ge=0)
    usage: Usage = Field(default_factory=Usage, description="summed over all attempts")
    model: str = Field(default="", description="the model the server says answered")
    kind: Literal["answer", "refusal"] = Field(
        default="answer",
        description="refusal: an abstention written for a context without the oracle",
    )


@runtime_checkable
class AnswerGenerator(Protocol):
    """Writes a verified chain-of-thought answer to a question from its oracle chunk.

    Never raises for a bad answer: it returns an :class:`AnswerResult` with ``accepted=False``
    and the reason. ``sample`` tells apart deliberate repeats for the same question.
    """

    async def generate(
        self, question: Question, oracle: Chunk, *, sample: int = 0
    ) -> AnswerResult: ...


@runtime_checkable
class MultiOracleAnswerGenerator(Protocol):
    """An answer generator that can also answer from several oracles (a multi-hop question):
    every oracle must be quoted (:func:`~raftkit.synth.verify.verify_answer` with a list)."""

    async def generate(
        self, question: Question, oracle: Chunk, *, sample: int = 0
    ) -> AnswerResult: ...

    async def generate_multi(
        self, question: Question, oracles: Sequence[Chunk], *, sample: int = 0
    ) -> AnswerResult: ...


@runtime_checkable
class MultiAnswerGenerator(AnswerGenerator, Protocol):
    """An :class:`AnswerGenerator` that can also answer several questions of one oracle in
    one call: one :class:`AnswerResult` per question, in order, each verified on its own."""

    async def generate_many(
        self, questions: Sequence[Question], oracle: Chunk, *, sample: int = 0
    ) -> list[AnswerResult]: ...


@lru_cache(maxsize=64)
def answers_output_model(n: int) -> type[BaseModel]:
    """The structured-output model for ``n`` answers: ``{"answers": [str, ...]}``.

    The schema says exactly ``n`` items; validation accepts any count, and a missing answer is
    asked for alone instead of the whole reply being paid for again.
    """
    return exact_list_model("Answers", "answers", n, f"exactly {n} answers, the i-th to question i")


class TeacherAnswerGenerator:
    """Asks a teacher model for a RAFT chain-of-thought answer, re-asking until it verifies.

    Each attempt is one :meth:`LLMClient.chat` call with its own ``sample`` index
    (``sample * max_attempts + attempt``), so that a journal keeps every paid attempt. The first
    attempt uses ``temperature``; re-asks use ``retry_temperature`` (a repeat at temperature 0
    would mostly repeat the mistake) and, with ``feedback=True``, show the teacher (an excerpt
    of) its rejected answer and what was wrong with it. After ``max_attempts`` failures the
    result is a rejection carrying the last reason. API errors propagate. ``rules`` are the
    verifier's thresholds (:class:`~raftkit.synth.verify.VerifyRules`).

    Every call carries a completion cap: :data:`ANSWER_TOKENS` plus a quarter of the oracle's
    tokens at first, then what ``caps`` (shared with the run's other calls) learned of answer
    replies, re-asks included; ``max_tokens`` pins it per answer instead. A reply cut by a
    learned cap is asked once more with a larger cap by the client, which is not an
    attempt. Calls name the oracle chunk as their ``prompt_cache_key``.

    :meth:`generate_many` answers several questions in one structured call (their shared
    prompt is paid once); each answer is verified on its own and a rejected or missing one
    is re-asked alone, as :meth:`generate` would re-ask it.
    """

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        prompts: Prompts | None = None,
        max_attempts: int = 3,
        temperature: float | None = 0.0,
        retry_temperature: float | None = 0.7,
        max_tokens: int | None = None,
        seed: int | None = None,
        feedback: bool = True,
        require_quotes: bool = True,
        rules: VerifyRules | None = None,
        caps: CompletionCaps | None = None,
    ) -> None:
        if max_attempts < 1:
            raise UsageError("max_attempts must be >= 1")
        self.client = client
        self.model = model
        self.prompts = prompts if prompts is not None else Prompts()
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.retry_temperature = retry_temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.feedback = feedback
        self.require_quotes = require_quotes
        self.rules = rules if rules is not None else VerifyRules()
        self.caps = caps if caps is not None else CompletionCaps()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, max_attempts={self.max_attempts})"

    def messages(self, question: Question, oracle: Chunk) -> list[ChatMessage]:
        """The first request's messages (what the journal keys the first attempt by)."""
        title = oracle.metadata.get("title", "")
        return answer_messages(question.text, [oracle.text], self.prompts, [title])

    def verify(self, text: str, oracle: Chunk | Sequence[Chunk]) -> Verification:
        """The check every answer passes before it is kept (one place for all paths); with
        several oracles, each must be quoted."""
        oracles = _as_list(oracle)
        texts: str | list[str] = oracles[0].text if len(oracles) == 1 else [o.text for o in oracles]
        return verify_answer(text, texts, rules=self.rules, require_quotes=self.require_quotes)

    def cap(self, questions: Sequence[Question], oracle: Chunk | Sequence[Chunk]) -> Cap:
        """The completion cap of a call answering ``questions`` over ``oracle`` (or several
        oracles): in proportion to their :func:`answer_scale` (twice it before any reply was
        seen)."""
        scale = self._scale(questions, oracle)
        text = _joined(oracle)
        initial = sum(min(_MAX_INITIAL_ANSWER, 2 * answer_scale(text, q.text)) for q in questions)
        if len(questions) > 1:
            initial += _ANSWERS_JSON
        pinned = None if self.max_tokens is None else self.max_tokens * len(questions)
        return self.caps.cap("answers", self.model, initial=initial, scale=scale, pinned=pinned)

    def _scale(self, questions: Sequence[Question], oracle: Chunk | Sequence[Chunk]) -> int:
        text = _joined(oracle)
        return sum(answer_scale(text, q.text) for q in questions)

    def _observe(
        self,
        response: ChatResponse,
        questions: Sequence[Question],
        oracle: Chunk | Sequence[Chunk],
    ) -> None:
        scale = self._scale(questions, oracle)
        self.caps.observe("answers", self.model, response, scale=scale)

    async def generate(self, question: Question, oracle: Chunk, *, sample: int = 0) -> AnswerResult:
        return await self._answer(
            question, [oracle], self.messages(question, oracle), sample=sample
        )

    async def generate_multi(
        self, question: Question, oracles: Sequence[Chunk], *, sample: int = 0
    ) -> AnswerResult:
        """An answer that needs every one of ``oracles``: the teacher sees them all, is told to
        quote each, and the answer verifies only if it does."""
        if len(oracles) < 2:
            return await self.generate(question, oracles[0], sample=sample)
        titles = [o.metadata.get("title", "") for o in oracles]
        first = answer_messages(question.text, [o.text for o in oracles], self.prompts, titles)
        note = self.prompts.multi_hop_answer.format()
        first[-1] = {"role": "user", "content": f"{first[-1]['content']}\n{note}"}
        return await self._answer(question, list(oracles), first, sample=sample)

    async def generate_many(
        self, questions: Sequence[Question], oracle: Chunk, *, sample: int = 0
    ) -> list[AnswerResult]:
        """Answers to ``questions`` (all of ``oracle``) from one call, each verified alone."""
        if len(questions) <= 1:
            return [await self.generate(q, oracle, sample=sample) for q in questions]
        title = oracle.metadata.get("title", "")
        texts = [q.text for q in questions]
        cap = self.cap(questions, oracle)
        try:
            result = await self.client.chat_structured(
                answers_messages(texts, [oracle.text], self.prompts, [title]),
                answers_output_model(len(questions)),
                model=self.model,
                temperature=self.temperature,
                max_tokens=cap.max_tokens,
                retry_max_tokens=cap.retry_max_tokens,
                prompt_cache_key=chunk_cache_key(oracle.id),
                seed=self.seed,
                sample=sample,
            )
        except StructuredOutputError as e:
            logger.debug("chunk %s: no usable answers JSON (%s); asking one by one", oracle.id, e)
            return await self._each(questions, oracle, sample, [None] * len(questions))
        response = result.response
        self._observe(response, questions, oracle)
        answers = [a for a in getattr(result.output, "answers", []) if isinstance(a, str)]
        answers += [""] * (len(questions) - len(answers))  # a missing one is asked for alone
        shares = _split(response.total_usage, len(questions))
        # a surplus answer is dropped (zip stops at the shorter)
        firsts = [
            (text, share, response.model) for text, share in zip(answers, shares, strict=False)
        ]
        return await self._each(questions, oracle, sample, list(firsts))

    async def _each(
        self,
        questions: Sequence[Question],
        oracle: Chunk,
        sample: int,
        firsts: list[tuple[str, Usage, str] | None],
    ) -> list[AnswerResult]:
        """Each question's attempts, side by side (a rejected one's re-asks do not wait for
        another's)."""
        results: list[AnswerResult | None] = [None] * len(questions)

        async def one(index: int) -> None:
            question = questions[index]
            opening = self.messages(question, oracle)
            results[index] = await self._answer(
                question, [oracle], opening, sample=sample, first=firsts[index]
            )

        async with anyio.create_task_group() as tg:
            for index in range(len(questions)):
                tg.start_soon(one, index)
        return [r for r in results if r is not None]

    async def _answer(
        self,
        question: Question,
        oracles: list[Chunk],
        opening: list[ChatMessage],
        *,
        sample: int,
        first: tuple[str, Usage, str] | None = None,
    ) -> AnswerResult:
        """Attempts until one verifies against every one of ``oracles``. ``first``: an answer
        already written (by a call for several questions), its share of that call's usage and
        the model; it is attempt 1."""
        messages: Sequence[ChatMessage] = opening
        usage = Usage()
        rejections: list[RejectionReason] = []
        text = ""
        detail = ""
        model = ""
        for attempt in range(self.max_attempts):
            if attempt == 0 and first is not None:
                text, spent, model = first
                usage = usage + spent
            else:
                response = await self._ask(messages, question, oracles, sample, attempt)
                usage = usage + response.total_usage
                text, model = response.text, response.model
            check = self.verify(text, oracles)
            if check.ok:
                return AnswerResult(
                    accepted=True,
                    cot_answer=text,
                    final_answer=check.final_answer,
                    quotes=check.quotes,
                    normalisations=check.normalisations,
                    rejections=rejections,
                    attempts=attempt + 1,
                    usage=usage,
                    model=model,
                )
            reason: RejectionReason = check.reason or "invalid_response"
            rejections.append(reason)
            detail = check.detail
            logger.debug("question %s attempt %d rejected: %s", question.id, attempt + 1, reason)
            if self.feedback and text.strip():
                messages = answer_retry_messages(opening, text, check.detail, self.prompts)
            else:
                messages = opening
        return AnswerResult(
            accepted=False,
            cot_answer=text,
            reason=rejections[-1],
            detail=detail,
            rejections=rejections,
            attempts=self.max_attempts,
            usage=usage,
            model=model,
        )

    async def _ask(
        self,
        messages: Sequence[ChatMessage],
        question: Question,
        oracles: list[Chunk],
        sample: int,
        attempt: int,
    ) -> ChatResponse:
        cap = self.cap([question], oracles)
        response = await self.client.chat(
            messages,
            model=self.model,
            temperature=self.temperature if attempt == 0 else self.retry_temperature,
            max_tokens=cap.max_tokens,
            retry_max_tokens=cap.retry_max_tokens,
            prompt_cache_key=chunk_cache_key(oracles[0].id),
            seed=self.seed,
            sample=sample * self.max_attempts + attempt,
        )
        self._observe(response, [question], oracles)
        return response


@lru_cache(maxsize=4096)
def answer_scale(oracle: str, question: str = "") -> int:
    """The prompt-derived size of an answer to ``question`` over ``oracle``:
    :data:`ANSWER_TOKENS` plus the tokens of the sentence it will most likely quote — the
    longest of those sharing the most words with the question (the longest sentence of all
    when none shares a word, or without a question). Caps learn how long answers are
    relative to it."""
    sentences = _sentences(oracle)
    asked = {t for t in bm25_tokens(question) if len(t) > 3 or not t.isascii()}
    if asked:
        shared = [len(asked.intersection(bm25_tokens(s))) for s in sentences]
        best = max(shared)
        if best > 0:
            sentences = [s for s, n in zip(sentences, shared, strict=True) if n == best]
    return ANSWER_TOKENS + max(estimate_tokens(s) for s in sentences)


def _sentences(text: str) -> list[str]:
    found, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        if _NOT_AN_END.search(text, max(start, end.start() - 8), end.start()):
            continue
        found.append(text[start : end.end()])
        start = end.end()
    found.append(text[start:])
    return [s for s in found if s.strip()] or [text]


def _split(usage: Usage, parts: int) -> list[Usage]:
    """``usage`` shared out over ``parts`` answers (the remainders go to the first ones)."""

    def share(total: int, index: int) -> int:
        return total // parts + int(index < total % parts)

    return [
        Usage(
            prompt_tokens=share(usage.prompt_tokens, i),
            completion_tokens=share(usage.completion_tokens, i),
            cached_tokens=share(usage.cached_tokens, i),
        )
        for i in range(parts)
    ]


def _as_list(oracle: Chunk | Sequence[Chunk]) -> list[Chunk]:
    return [oracle] if isinstance(oracle, Chunk) else list(oracle)


def _joined(oracle: Chunk | Sequence[Chunk]) -> str:
    return "\n\n".join(o.text for o in _as_list(oracle))

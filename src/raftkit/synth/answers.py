"""Chain-of-thought answers from a teacher model, verified before they are kept.

:class:`AnswerGenerator` is the plug-in point; :class:`TeacherAnswerGenerator` is the default.

The teacher sees the question and the oracle chunk only, not the distractors: this follows the
RAFT reference implementation (``generate_label(client, q, chunk)`` in gorilla's ``raft.py``).
The answer is then a faithful reading of the oracle, and the training example teaches the
student to find that reading among distractors — or, when the oracle was left out of the
context (probability ``1 - p``), to recall it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.llm import ChatMessage, LLMClient
from raftkit.synth.prompts import Prompts, answer_messages, answer_retry_messages
from raftkit.synth.verify import Normalisation, RejectionReason, VerifyRules, verify_answer
from raftkit.types import Chunk, Question, Usage

__all__ = [
    "AnswerGenerator",
    "AnswerResult",
    "MultiOracleAnswerGenerator",
    "TeacherAnswerGenerator",
]

logger = logging.getLogger("raftkit.synth")


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


class TeacherAnswerGenerator:
    """Asks a teacher model for a RAFT chain-of-thought answer, re-asking until it verifies.

    Each attempt is one :meth:`LLMClient.chat` call with its own ``sample`` index
    (``sample * max_attempts + attempt``), so that a journal keeps every paid attempt. The first
    attempt uses ``temperature``; re-asks use ``retry_temperature`` (a repeat at temperature 0
    would mostly repeat the mistake) and, with ``feedback=True``, show the teacher its rejected
    answer and what was wrong with it. After ``max_attempts`` failures the result is a
    rejection carrying the last reason. API errors propagate. ``rules`` are the verifier's
    thresholds (:class:`~raftkit.synth.verify.VerifyRules`).
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, max_attempts={self.max_attempts})"

    def messages(self, question: Question, oracle: Chunk) -> list[ChatMessage]:
        """The first request's messages (what the journal keys the first attempt by)."""
        title = oracle.metadata.get("title", "")
        return answer_messages(question.text, [oracle.text], self.prompts, [title])

    async def generate(self, question: Question, oracle: Chunk, *, sample: int = 0) -> AnswerResult:
        return await self._generate(question, [oracle], self.messages(question, oracle), sample)

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
        return await self._generate(question, list(oracles), first, sample)

    async def _generate(
        self,
        question: Question,
        oracles: list[Chunk],
        first: list[ChatMessage],
        sample: int,
    ) -> AnswerResult:
        oracle_text: str | list[str] = (
            oracles[0].text if len(oracles) == 1 else [o.text for o in oracles]
        )
        messages: Sequence[ChatMessage] = first
        usage = Usage()
        rejections: list[RejectionReason] = []
        text = ""
        detail = ""
        model = ""
        for attempt in range(self.max_attempts):
            response = await self.client.chat(
                messages,
                model=self.model,
                temperature=self.temperature if attempt == 0 else self.retry_temperature,
                max_tokens=self.max_tokens,
                seed=self.seed,
                sample=sample * self.max_attempts + attempt,
            )
            usage = usage + response.usage
            text = response.text
            model = response.model
            check = verify_answer(
                text, oracle_text, rules=self.rules, require_quotes=self.require_quotes
            )
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
                messages = answer_retry_messages(first, text, check.detail, self.prompts)
            else:
                messages = first
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

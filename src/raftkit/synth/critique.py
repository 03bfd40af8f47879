"""Question critique: free checks first, then one judge call per chunk.

A question that only makes sense beside its chunk ("What does the text say about bats?"), that
copies a sentence of it, or that asks nothing in particular ("What is known about answerable?")
teaches the student nothing it will meet in use. :class:`QuestionCritic` reviews a chunk's
questions before any answer is paid for:

1. **Filters** (no call): an empty question, an over-long one, a reference to "the text / this
   passage / the chunk" in any of the languages of :data:`TEXT_REFERENCE_LANGUAGES`, a question
   that contains a whole sentence of its chunk, and a question in another script than its chunk
   (Latin letters for a Chinese chunk, or the reverse).
2. **Judge** (one structured call for all the chunk's remaining questions): each question is
   rated 1 to 5 for being self-contained, answerable from the chunk, specific, and in the
   chunk's language; a rating below ``threshold`` rejects it. To keep the call small the judge
   sees, by default, only the chunk's sentences that share most words with each question
   (``context="excerpts"``); ``context="chunk"`` sends the whole chunk.

A judge reply that cannot be read, or gives no rating for a question, keeps the question: the
critique only ever removes what it has a reason to remove. Every rejection names a stable
reason (:data:`QUESTION_REJECTION_REASONS`).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model

from raftkit.errors import StructuredOutputError
from raftkit.llm import ChatMessage, LLMClient
from raftkit.llm.caps import CompletionCaps
from raftkit.synth._language import script_of
from raftkit.synth._support import is_function_word
from raftkit.synth._text import bm25_tokens, dedup_key, match_form, sentences
from raftkit.synth._text_references import TEXT_REFERENCE_LANGUAGES, find_text_reference
from raftkit.synth.prompts import Prompts, chunk_cache_key, format_documents
from raftkit.types import Chunk, Question, Usage

__all__ = [
    "CRITERIA",
    "CRITIQUE_TOKENS",
    "QUESTION_REJECTION_REASONS",
    "TEXT_REFERENCE_LANGUAGES",
    "CritiqueRules",
    "QuestionCritic",
    "QuestionRejectionReason",
    "Review",
    "Reviews",
    "critique_messages",
    "excerpts_for",
    "filter_question",
    "judge_context",
    "ratings_output_model",
]

logger = logging.getLogger("raftkit.synth")

#: The judge's reply per question before any was seen: a row of four digits ("5545") and,
#: for a question rated low, a short note. Its cap is then learned like every teacher call's
#: (kind ``"critique"``, one unit a question): a call sent without one is charged the
#: server's default (often 1,024 tokens) against the account's tokens per minute.
CRITIQUE_TOKENS = 24
_RATINGS_JSON = 32

#: Why a question was dropped before it was answered (the run report counts these).
QuestionRejectionReason = Literal[
    "question_empty",
    "question_too_long",
    "question_text_reference",
    "question_copies_chunk",
    "question_wrong_script",
    "question_not_self_contained",
    "question_not_answerable",
    "question_not_specific",
    "question_wrong_language",
    "duplicate_question",
]
QUESTION_REJECTION_REASONS: tuple[QuestionRejectionReason, ...] = get_args(QuestionRejectionReason)

#: What the judge rates, in the order of each row of its reply.
CRITERIA: tuple[str, ...] = ("self_contained", "answerable", "specific", "language")
_CRITERION_REASON: dict[str, QuestionRejectionReason] = {
    "self_contained": "question_not_self_contained",
    "answerable": "question_not_answerable",
    "specific": "question_not_specific",
    "language": "question_wrong_language",
}

_WORD = re.compile(r"[^\W_]+")
_CJK_LETTER = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


class CritiqueRules(BaseModel):
    """How questions are critiqued. They decide which questions become data, so a run records
    them and refuses to resume with others."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["judge", "filters", "off"] = Field(
        "judge", description="judge: filters then the judge call; filters: the free ones only"
    )
    model: str | None = Field(None, description="the judge model; None: the teacher")
    threshold: int = Field(3, ge=1, le=5, description="a rating below this rejects a question")
    context: Literal["excerpts", "chunk"] = Field(
        "excerpts", description="what the judge sees of the chunk"
    )
    max_question_words: int = Field(40, ge=1, description="longer questions are rejected")
    max_question_chars: int = Field(300, ge=1, description="... or with more characters")
    max_question_cjk_chars: int = Field(100, ge=1, description="... or more CJK characters")
    copy_min_words: int = Field(
        6, ge=1, description="a chunk sentence this long found whole in a question is a copy"
    )
    copy_min_cjk_chars: int = Field(10, ge=1, description="... or with this many CJK characters")


@dataclass(frozen=True)
class Review:
    """The critique's verdict on one question."""

    question: Question
    reason: QuestionRejectionReason | None = None
    detail: str = ""
    scores: dict[str, int] | None = None
    """The judge's ratings (``None`` when the question was not judged)."""

    @property
    def kept(self) -> bool:
        return self.reason is None


@dataclass
class Reviews:
    """The reviews of a chunk's questions, in their order, and what the judge cost."""

    reviews: list[Review] = field(default_factory=list)
    judge_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    unjudged: int = 0
    """Questions kept because the judge's reply gave no usable rating for them."""

    @property
    def kept(self) -> list[Question]:
        return [r.question for r in self.reviews if r.kept]


@lru_cache(maxsize=64)
def _copy_keys(chunk_text: str, min_words: int, min_cjk: int) -> tuple[str, ...]:
    keys = []
    for sentence in sentences(chunk_text):
        cjk = len(_CJK_LETTER.findall(sentence))
        words = len(_WORD.findall(_CJK_LETTER.sub(" ", sentence)))
        if cjk >= min_cjk or words >= min_words:
            keys.append(dedup_key(sentence))
    return tuple(k for k in keys if k)


def filter_question(
    text: str, chunk_text: str, rules: CritiqueRules | None = None
) -> tuple[QuestionRejectionReason, str] | None:
    """The free checks: the reason and a detail if ``text`` fails one, else ``None``."""
    rules = rules if rules is not None else CritiqueRules()
    form = match_form(text)
    if not any(ch.isalnum() for ch in form):
        return "question_empty", "the question has no words"
    cjk = len(_CJK_LETTER.findall(form))
    words = len(_WORD.findall(_CJK_LETTER.sub(" ", form)))
    if (
        words > rules.max_question_words
        or len(form) - cjk > rules.max_question_chars
        or cjk > rules.max_question_cjk_chars
    ):
        return "question_too_long", f"the question is too long ({words} words, {len(form)} chars)"
    found = find_text_reference(form)
    if found is not None:
        return "question_text_reference", (
            f"the question refers to its source ({found!r}) instead of naming its subject"
        )
    key = dedup_key(form)
    for sentence_key in _copy_keys(chunk_text, rules.copy_min_words, rules.copy_min_cjk_chars):
        if sentence_key in key:
            return "question_copies_chunk", "the question copies a whole sentence of its chunk"
    question_script, chunk_script = script_of(form), script_of(chunk_text)
    if "none" not in (question_script, chunk_script) and question_script != chunk_script:
        return "question_wrong_script", (
            f"the question is in {'CJK' if question_script == 'cjk' else 'non-CJK'} script, "
            f"its chunk in {'CJK' if chunk_script == 'cjk' else 'non-CJK'}"
        )
    return None


def _content(text: str) -> set[str]:
    return {t for t in bm25_tokens(text) if not is_function_word(t)}


def excerpts_for(chunk_text: str, questions: Sequence[str]) -> list[str]:
    """The chunk's sentences that share most (IDF-weighted) words with each question, in chunk
    order; the whole chunk when it has no more sentences than questions."""
    parts = sentences(chunk_text)
    if len(parts) <= len(questions):
        return [chunk_text.strip()] if chunk_text.strip() else []
    tokens = [_content(p) for p in parts]
    df = Counter(t for ts in tokens for t in ts)
    idf = {t: math.log((len(parts) + 1) / (n + 0.5)) for t, n in df.items()}
    chosen: set[int] = set()
    for question in questions:
        asked = _content(question)
        scores = [sum(idf[t] for t in asked & ts) for ts in tokens]
        best = max(range(len(parts)), key=lambda i: (scores[i], -i))
        if scores[best] > 0:
            chosen.add(best)
    return [parts[i] for i in sorted(chosen)]


def judge_context(
    chunk_text: str, questions: Sequence[str] | int, context: Literal["excerpts", "chunk"]
) -> list[str]:
    """What the judge is shown of a chunk: the whole chunk, or the excerpts for ``questions``
    joined by " … ". Given a number of questions instead (a cost forecast, before any is
    written), the first that many sentences stand in for the excerpts."""
    if context == "chunk":
        return [chunk_text]
    if isinstance(questions, int):
        return [" ".join(sentences(chunk_text)[:questions])]
    return [" … ".join(excerpts_for(chunk_text, questions))]


@lru_cache(maxsize=64)
def ratings_output_model(n: int) -> type[BaseModel]:
    """The judge's reply for ``n`` questions: ``{"ratings": ["5545", ...], "notes": "2: vague;
    4: …"}`` — each question's four ratings (:data:`CRITERIA`, 1 to 5) as one string of digits,
    and notes only for the questions rated low: a row of four numbers in JSON costs about nine
    tokens, four digits one or two, and this call is paid once per chunk on top of a run.

    The schema asks for exactly ``n`` ratings; validation accepts any count, and a rating
    written as a list of numbers is read too, so an odd reply is used as far as it goes
    instead of paid for again.
    """
    model: type[BaseModel] = create_model(
        "QuestionRatings",
        ratings=(
            list[str | list[int]],
            Field(
                # the prompt says what the digits are: a description here is paid again
                json_schema_extra={
                    "minItems": n,
                    "maxItems": n,
                    "items": {"type": "string"},
                },
            ),
        ),
        notes=(str, ...),
    )
    return model


def critique_messages(
    documents: Sequence[str], questions: Sequence[str], prompts: Prompts
) -> list[ChatMessage]:
    """The judge's request: the chunk (or its excerpts) and the numbered questions."""
    numbered = "\n".join(f"{i}. {q}" for i, q in enumerate(questions, start=1))
    return [
        {"role": "system", "content": prompts.critique_system.format()},
        {
            "role": "user",
            "content": prompts.critique_user.format(
                documents=format_documents(documents, prompts), questions=numbered
            ),
        },
    ]


_NOTE = re.compile(r"(?:^|;)\s*(\d{1,3})\s*[:.)]\s*([^;]*)")


def _notes(text: Any) -> dict[int, str]:
    """``"2: vague; 4: refers to the text"`` → ``{2: "vague", 4: "refers to the text"}``."""
    if not isinstance(text, str):
        return {}
    return {int(m.group(1)): m.group(2).strip() for m in _NOTE.finditer(text)}


def _row_scores(row: Any) -> dict[str, int] | None:
    """``"5545"`` (or ``[5, 5, 4, 5]``) as ratings by criterion; ``None`` if unreadable."""
    if isinstance(row, str):
        values = [int(d) for d in re.findall(r"\d", row)]
    elif isinstance(row, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in row):
        values = [int(v) for v in row]
    else:
        return None
    if len(values) != len(CRITERIA):
        return None
    return {name: min(5, max(1, v)) for name, v in zip(CRITERIA, values, strict=True)}


class QuestionCritic:
    """Reviews a chunk's questions: :func:`filter_question`, then one judge call.

    ``model`` is the judge (the teacher, or a cheaper model). The call goes through ``client``,
    so a journaled client replays it on a rerun. ``sample`` tells apart deliberate repeats.
    ``caps`` gives the call its ``max_tokens`` (the run's :class:`CompletionCaps`, shared with
    the other teacher calls).
    """

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        rules: CritiqueRules | None = None,
        prompts: Prompts | None = None,
        caps: CompletionCaps | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.rules = rules if rules is not None else CritiqueRules()
        self.prompts = prompts if prompts is not None else Prompts()
        self.caps = caps if caps is not None else CompletionCaps()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, mode={self.rules.mode!r})"

    async def review(
        self, chunk: Chunk, questions: Sequence[Question], *, sample: int = 0
    ) -> Reviews:
        rules = self.rules
        result = Reviews()
        if rules.mode == "off":
            result.reviews = [Review(q) for q in questions]
            return result
        verdicts: list[Review | None] = []
        for question in questions:
            failed = filter_question(question.text, chunk.text, rules)
            verdicts.append(None if failed is None else Review(question, *failed))
        pending = [i for i, v in enumerate(verdicts) if v is None]
        if rules.mode == "judge" and pending:
            judged = await self._judge(chunk, [questions[i] for i in pending], sample, result)
            for i, review in zip(pending, judged, strict=True):
                verdicts[i] = review
        result.reviews = [
            v if v is not None else Review(q) for v, q in zip(verdicts, questions, strict=True)
        ]
        return result

    async def _judge(
        self, chunk: Chunk, questions: list[Question], sample: int, result: Reviews
    ) -> list[Review]:
        texts = [q.text for q in questions]
        documents = judge_context(chunk.text, texts, self.rules.context)
        messages = critique_messages(documents, texts, self.prompts)
        n = len(questions)
        cap = self.caps.cap(
            "critique", self.model, initial=_RATINGS_JSON + CRITIQUE_TOKENS * n, units=n
        )
        try:
            reply = await self.client.chat_structured(
                messages,
                ratings_output_model(n),
                model=self.model,
                temperature=0.0,
                max_tokens=cap.max_tokens,
                retry_max_tokens=cap.retry_max_tokens,
                # routed with the chunk's other calls, like them
                prompt_cache_key=chunk_cache_key(chunk.id),
                sample=sample,
            )
        except StructuredOutputError as e:
            logger.warning("chunk %s: unusable critique output (%s); questions kept", chunk.id, e)
            result.judge_calls += 1
            result.unjudged += n
            return [Review(q) for q in questions]
        self.caps.observe("critique", self.model, reply.response, units=n)
        result.judge_calls += 1
        result.usage = result.usage + reply.response.total_usage
        rows = getattr(reply.output, "ratings", [])
        notes = _notes(getattr(reply.output, "notes", ""))
        reviews: list[Review] = []
        for i, question in enumerate(questions):
            scores = _row_scores(rows[i]) if i < len(rows) else None
            if scores is None:
                result.unjudged += 1
                reviews.append(Review(question))
                continue
            note = notes.get(i + 1, "")
            failing = [c for c in CRITERIA if scores[c] < self.rules.threshold]
            if not failing:
                reviews.append(Review(question, scores=scores))
                continue
            detail = ", ".join(f"{c} {scores[c]}/5" for c in failing)
            reviews.append(
                Review(
                    question,
                    _CRITERION_REASON[failing[0]],
                    f"rated {detail}" + (f": {note}" if note else ""),
                    scores,
                )
            )
        return reviews

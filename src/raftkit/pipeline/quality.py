"""The question-quality steps of a generation run, between the questions and the answers.

:class:`QualitySteps` joins the plug-ins of :mod:`raftkit.synth` that act on a whole run:

- per chunk, once its questions are written: the critique (free filters, then one judge call)
  and the corpus-wide de-duplication, whose rejections go to ``rejections.jsonl`` at the
  questions' places in corpus order;
- once the corpus is known (:meth:`QualitySteps.prepare`, beside the distractor sampler): the
  groups of chunks that share text, and the multi-hop pairs;
- per question: a refusal instead of a paid answer when the context will lack the oracle and
  the run asks for refusals; two oracles for a multi-hop question;
- per example: its split group and what the steps add to its metadata; the counts of the
  report's "Question quality" section.

Every paid call goes through the journaled client the pipeline gives, and every decision is a
function of those responses, the corpus and the seed, so a rerun makes no new call and writes
the same dataset.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
import numpy.typing as npt

from raftkit.errors import UsageError
from raftkit.grouped_split import connected_groups
from raftkit.llm import LLMClient
from raftkit.llm.caps import CompletionCaps
from raftkit.pipeline.config import RaftConfig
from raftkit.pipeline.output import Outcome
from raftkit.run_report import QualityCounts
from raftkit.synth import (
    AnswerGenerator,
    AnswerResult,
    Context,
    DistractorSampler,
    EmbeddingSampler,
    MultiAnswerGenerator,
    MultiHopQuestionWriter,
    MultiOracleAnswerGenerator,
    Prompts,
    QuestionCritic,
    QuestionDeduplicator,
    duplicate_chunk_links,
    filter_question,
    multi_hop_pairs,
    multi_hop_selected,
    oracle_kept,
    refusal_result,
)
from raftkit.synth.dedup import Turn
from raftkit.types import Chunk, Question, RaftExample

__all__ = ["QualitySteps", "question_rejection"]


def question_rejection(
    order: tuple[int, int],
    question: Question,
    oracle: Chunk,
    reason: str,
    detail: str,
    **extra: Any,
) -> Outcome:
    """A question dropped before it was answered, as a line of ``rejections.jsonl``."""
    record: dict[str, Any] = {
        "question_id": question.id,
        "chunk_id": oracle.id,
        "question": question.text,
        "reason": reason,
        "detail": detail,
        "stage": "question",
        "attempts": 0,
        "last_answer": "",
    }
    if question.question_type is not None:
        record["question_type"] = question.question_type
    record.update({k: v for k, v in extra.items() if v is not None})
    return Outcome(order, None, record)


class QualitySteps:
    """Critique, de-duplication, refusals and multi-hop questions for one pass of a run."""

    def __init__(
        self,
        client: LLMClient,
        config: RaftConfig,
        prompts: Prompts,
        *,
        answerer: AnswerGenerator,
        caps: CompletionCaps | None = None,
    ) -> None:
        c = config
        self.config = c
        self.counts = QualityCounts()
        self.critic = QuestionCritic(
            client,
            c.critique.model or c.teacher_model,
            rules=c.critique,
            prompts=prompts,
            caps=caps,
        )
        embed = None
        if c.dedup.similarity is not None:
            model = c.embedding_model

            async def embed(texts: list[str]) -> npt.NDArray[np.float32]:
                return await client.embed(texts, model=model)

        self.dedup = QuestionDeduplicator(c.dedup, embed=embed)
        self.writer: MultiHopQuestionWriter | None = None
        if c.multi_hop > 0:
            if not isinstance(answerer, MultiOracleAnswerGenerator):
                raise UsageError(
                    "multi-hop questions need an answer generator with generate_multi() "
                    f"(MultiOracleAnswerGenerator); {type(answerer).__name__} has none"
                )
            self.writer = MultiHopQuestionWriter(
                client,
                c.teacher_model,
                prompts=prompts,
                max_tokens=c.question_max_tokens,
                caps=caps,
            )
        self.answerer = answerer
        self.groups: dict[str, str] = {}
        self.same_text: dict[str, frozenset[str]] = {}
        self.partners: dict[int, int] = {}
        self._scores: dict[str, dict[str, int]] = {}

    # ------------------------------------------------------------------ the corpus

    async def prepare(self, chunks: Sequence[Chunk], sampler: DistractorSampler) -> None:
        """Chunks sharing text, multi-hop pairs, split groups: once every chunk is known."""
        c = self.config
        links = await anyio.to_thread.run_sync(
            lambda: duplicate_chunk_links(chunks, min_overlap=c.dedup.chunk_overlap)
        )
        linked = {chunk_id for pair in links for chunk_id in pair}
        text_groups = {
            chunk_id: group
            for chunk_id, group in connected_groups((ch.id for ch in chunks), links).items()
            if chunk_id in linked
        }
        members: dict[str, set[str]] = {}
        for chunk_id, group in text_groups.items():
            members.setdefault(group, set()).add(chunk_id)
        self.same_text = {
            chunk_id: frozenset(members[group] - {chunk_id})
            for chunk_id, group in text_groups.items()
        }
        self.counts.duplicate_chunk_groups = len(members)
        self.counts.chunks_in_duplicate_groups = len(text_groups)
        if c.multi_hop > 0:
            embeddings = sampler.embeddings if isinstance(sampler, EmbeddingSampler) else None
            self.partners = await anyio.to_thread.run_sync(
                lambda: multi_hop_pairs(
                    chunks,
                    share=c.multi_hop,
                    seed=c.seed,
                    groups=text_groups,
                    embeddings=embeddings,
                )
            )
        pairs = [(chunks[a].id, chunks[b].id) for a, b in self.partners.items()]
        every = [*links, *pairs]
        joined = {chunk_id for pair in every for chunk_id in pair}
        self.groups = {
            chunk_id: group
            for chunk_id, group in connected_groups((ch.id for ch in chunks), every).items()
            if chunk_id in joined
        }

    # ------------------------------------------------------------------ questions

    @asynccontextmanager
    async def turn(self, index: int) -> AsyncIterator[Turn]:
        """Chunk ``index``'s turn at de-duplication: enter it before writing its questions;
        leaving it (even by an error) lets the later chunks through."""
        async with self.dedup.turn(index) as turn:
            yield turn

    async def review(
        self, turn: Turn, index: int, oracle: Chunk, questions: Sequence[Question]
    ) -> tuple[list[tuple[int, Question]], list[Outcome]]:
        """The questions to answer (with their positions) and the rejected ones."""
        reviews = await self.critic.review(oracle, questions)
        counts = self.counts
        counts.critique_calls += reviews.judge_calls
        counts.critique_prompt_tokens += reviews.usage.prompt_tokens
        counts.critique_completion_tokens += reviews.usage.completion_tokens
        counts.questions_unjudged += reviews.unjudged
        rejected: list[Outcome] = []
        passed: list[tuple[int, Question]] = []
        for position, review in enumerate(reviews.reviews):
            if review.scores is not None:
                counts.questions_judged += 1
                self._scores[review.question.id] = review.scores
            if review.reason is None:
                passed.append((position, review.question))
                continue
            rejected.append(
                question_rejection(
                    (index, position),
                    review.question,
                    oracle,
                    review.reason,
                    review.detail,
                    scores=review.scores,
                )
            )
        kept, duplicates = await turn.admit([q for _, q in passed])
        counts.dedup_embedding_calls = self.dedup.embedding_calls
        place = {id(q): position for position, q in passed}
        for duplicate in duplicates:
            counts.duplicate_questions += 1
            rejected.append(
                question_rejection(
                    (index, place[id(duplicate.question)]),
                    duplicate.question,
                    oracle,
                    "duplicate_question",
                    f"a near-duplicate of an earlier question: {duplicate.first.text!r}",
                    duplicate_of=duplicate.first.id,
                    similarity=duplicate.similarity,
                )
            )
        return [(place[id(q)], q) for q in kept], rejected

    def wants_multi_hop(self, oracle: Chunk) -> bool:
        """Whether the chunk is drawn to get a multi-hop question (known before the corpus)."""
        c = self.config
        return self.writer is not None and multi_hop_selected(c.seed, oracle.id, c.multi_hop)

    async def multi_hop(
        self, index: int, oracle: Chunk, chunks: Sequence[Chunk], position: int
    ) -> tuple[Question, Chunk] | Outcome | None:
        """The chunk's multi-hop question and its partner, a rejection, or ``None`` (not drawn,
        or no partner). Call once the corpus is known."""
        c = self.config
        if self.writer is None or not self.wants_multi_hop(oracle):
            return None
        partner_index = self.partners.get(index)
        if partner_index is None:
            self.counts.multi_hop_unpaired += 1
            return None
        partner = chunks[partner_index]
        question = await self.writer.write(oracle, partner)
        self.counts.multi_hop_calls = self.writer.calls
        self.counts.multi_hop_prompt_tokens = self.writer.usage.prompt_tokens
        self.counts.multi_hop_completion_tokens = self.writer.usage.completion_tokens
        if question is None:
            return None
        if c.critique.mode != "off":
            failed = filter_question(question.text, f"{oracle.text}\n{partner.text}", c.critique)
            if failed is not None:
                return question_rejection((index, position), question, oracle, *failed)
        self.counts.multi_hop_questions += 1
        return question, partner

    # ------------------------------------------------------------------ answers

    async def answer(self, question: Question, oracles: Sequence[Chunk]) -> AnswerResult | None:
        """The teacher's answer, or ``None`` when the example will refuse (no call is made)."""
        c = self.config
        present = oracle_kept(c.seed, question.id, c.oracle_probability)
        if c.no_oracle_answer.refuses(c.seed, question.id, oracle_present=present):
            return None
        if len(oracles) > 1:
            assert isinstance(self.answerer, MultiOracleAnswerGenerator)
            return await self.answerer.generate_multi(question, oracles)
        return await self.answerer.generate(question, oracles[0])

    def answers_per_call(self) -> int:
        """Questions of a chunk answered by one call: ``answers_per_call`` when the answerer
        can (a :class:`~raftkit.synth.MultiAnswerGenerator`), else one."""
        wanted = self.config.answers_per_call
        return wanted if isinstance(self.answerer, MultiAnswerGenerator) else 1

    async def answer_many(
        self, questions: Sequence[Question], oracle: Chunk
    ) -> list[AnswerResult | None]:
        """:meth:`answer` for several questions of ``oracle``: the ones not refusing are
        answered by one call, each answer verified (and re-asked) on its own."""
        c = self.config
        refuses = [
            c.no_oracle_answer.refuses(
                c.seed,
                q.id,
                oracle_present=oracle_kept(c.seed, q.id, c.oracle_probability),
            )
            for q in questions
        ]
        asked = [q for q, refused in zip(questions, refuses, strict=True) if not refused]
        if len(asked) > 1 and isinstance(self.answerer, MultiAnswerGenerator):
            answers = iter(await self.answerer.generate_many(asked, oracle))
        else:
            answers = iter([await self.answerer.generate(q, oracle) for q in asked])
        return [None if refused else next(answers) for refused in refuses]

    def refusal(self, oracle: Chunk, context: Context) -> AnswerResult:
        """The refusal of an example whose context lacks the oracle."""
        topics = [d.title for d in context.documents]
        return refusal_result(oracle.text, self.config.no_oracle_answer.phrase, topics=topics)

    def excluded(self, oracle: Chunk) -> frozenset[str]:
        """Chunks never drawn as the oracle's distractors: those sharing its text."""
        return self.same_text.get(oracle.id, frozenset())

    def example_extras(
        self, question: Question, oracles: Sequence[Chunk], result: AnswerResult
    ) -> tuple[str | None, dict[str, Any]]:
        """The example's split group and what the steps add to its metadata."""
        metadata: dict[str, Any] = {}
        if question.metadata.get("persona"):
            metadata["persona"] = question.metadata["persona"]
        scores = self._scores.get(question.id)
        if scores is not None:
            metadata["critique"] = scores
        if len(oracles) > 1:
            metadata["oracle_chunk_ids"] = [o.id for o in oracles]
            metadata["oracle_document_ids"] = [o.document_id for o in oracles]
        if result.kind == "refusal":
            metadata["refusal"] = "template"
        return self.groups.get(oracles[0].id), metadata

    def count(self, item: Outcome) -> None:
        """Count one question's outcome for the report."""
        counts = self.counts
        example: RaftExample | None = item.example
        kind = (
            example.question_type
            if example is not None
            else (item.rejection or {}).get("question_type")
        )
        if kind is not None:
            counts.questions_by_type[kind] = counts.questions_by_type.get(kind, 0) + 1
        if example is None:
            return
        if kind is not None:
            counts.examples_by_type[kind] = counts.examples_by_type.get(kind, 0) + 1
        counts.refusals += int(example.answer_kind == "refusal")
        counts.multi_hop_examples += int("oracle_chunk_ids" in example.metadata)

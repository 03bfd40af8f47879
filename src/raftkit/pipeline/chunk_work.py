"""One chunk's work: its questions (critiqued and de-duplicated), an answer to each (or a
refusal), a context for each, its multi-hop question, the outcomes.

A failure of the chunk's question call or of one answer is decided by
:func:`~raftkit.pipeline.halt.classify_failure`: recorded as that chunk's or question's outcome
(the rest goes on), or a halt of the run (the chunk is then left unfinished and done again by
the next run; what it paid for is journaled).
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import ObjectSendStream

from raftkit.llm import Deferred
from raftkit.pipeline.config import RaftConfig
from raftkit.pipeline.feed import ChunkFeed
from raftkit.pipeline.halt import Halt, classify_failure, describe
from raftkit.pipeline.output import Outcome, failed_outcome, outcome
from raftkit.pipeline.quality import QualitySteps
from raftkit.synth import AnswerResult, QuestionSynthesizer, build_context, question_rng
from raftkit.types import Chunk, Question

__all__ = ["work_on_chunk"]

logger = logging.getLogger("raftkit.pipeline")


async def work_on_chunk(
    index: int,
    feed: ChunkFeed,
    synthesizer: QuestionSynthesizer,
    quality: QualitySteps,
    outbox: ObjectSendStream[Outcome | int],
    *,
    halt: Halt,
    config: RaftConfig,
) -> None:
    """Send an :class:`Outcome` per question (or one for a failed question call) to
    ``outbox``, then ``index`` when the chunk is done — unless the run halted before all of
    its work was decided. ``quality`` critiques and de-duplicates the questions, answers them
    (or writes a refusal) and adds the chunk's multi-hop question."""
    c = config
    oracle = feed.chunks[index]
    unfinished = False

    async def failed(
        error: BaseException, position: int, question: Question | None, *, multi_hop: bool = False
    ) -> None:
        nonlocal unfinished
        if classify_failure(error) == "chunk":
            where = question.id if question is not None else oracle.id
            what = "'s multi-hop question" if multi_hop and question is None else ""
            logger.warning("%s%s failed: %s", where, what, describe(error))
            failure = failed_outcome(
                (index, position), oracle, question, error, multi_hop=multi_hop
            )
            await outbox.send(failure)
        else:
            halt.request(error)
            unfinished = True

    kept: list[tuple[int, Question]] = []
    rejected: list[Outcome] = []
    async with quality.turn(index) as turn:  # de-duplication goes in corpus order
        try:
            questions = await synthesizer.synthesize(oracle, c.questions_per_chunk)
            kept, rejected = await quality.review(turn, index, oracle, questions)
        except (Deferred, BaseExceptionGroup) as e:
            # batch mode: asked in this pass's batch, answered in the next pass
            if not _only_deferred(e):
                await failed(e, -1, None)
        except Exception as e:
            await failed(e, -1, None)
    for item in rejected:
        await outbox.send(item)

    async def answer(group: list[tuple[int, Question]], partner: Chunk | None = None) -> None:
        """Answers to ``group`` (several questions in one call when ``answers_per_call`` > 1;
        a multi-hop question alone, with its ``partner``), then their examples."""
        nonlocal unfinished
        oracles = [oracle] if partner is None else [oracle, partner]
        questions = [question for _, question in group]
        results: list[AnswerResult | None]
        try:
            if len(group) > 1:
                results = await quality.answer_many(questions, oracle)
            else:
                results = [await quality.answer(questions[0], oracles)]
        except (Deferred, BaseExceptionGroup) as e:
            if not _only_deferred(e):
                for position, question in group:
                    await failed(e, position, question)
            return
        except Exception as e:
            for position, question in group:
                await failed(e, position, question)
            return
        await feed.ready.wait()
        if feed.sampler is None:  # halted before the corpus was whole: the answers are
            unfinished = True  # journaled and make their examples on the next run
            return
        for (position, question), result in zip(group, results, strict=True):
            context = await build_context(
                question,
                oracle,
                feed.sampler,
                rng=question_rng(c.seed, question.id),
                k=c.distractors,
                p=c.oracle_probability,
                partners=oracles[1:],
                exclude=quality.excluded(oracle),
            )
            if result is None:  # the example refuses: no call was made
                result = quality.refusal(oracle, context)
            split_group, extra = quality.example_extras(question, oracles, result)
            await outbox.send(
                outcome(
                    (index, position),
                    question,
                    oracle,
                    context,
                    result,
                    c,
                    split_group=split_group,
                    metadata=extra,
                )
            )

    async def multi_hop() -> None:
        nonlocal unfinished
        await feed.ready.wait()
        if feed.sampler is None:  # halted before the corpus was whole
            unfinished = True
            return
        position = c.questions_per_chunk
        try:
            found = await quality.multi_hop(index, oracle, feed.chunks, position)
        except (Deferred, BaseExceptionGroup) as e:
            if not _only_deferred(e):
                await failed(e, position, None, multi_hop=True)
            return
        except Exception as e:
            await failed(e, position, None, multi_hop=True)
            return
        if isinstance(found, Outcome):
            await outbox.send(found)
        elif found is not None:
            question, partner = found
            await answer([(position, question)], partner)

    per_call = quality.answers_per_call()
    async with anyio.create_task_group() as tg:
        for first in range(0, len(kept), per_call):
            tg.start_soon(answer, kept[first : first + per_call])
        if quality.wants_multi_hop(oracle):
            tg.start_soon(multi_hop)
    if not unfinished:
        await outbox.send(index)


def _only_deferred(error: BaseException) -> bool:
    """Whether ``error`` is a deferral (or a group of them, from a plug-in's task group)."""
    if isinstance(error, BaseExceptionGroup):
        return error.split(Deferred)[1] is None
    return isinstance(error, Deferred)

"""One chunk's work: its questions, an answer to each, a context for each, the outcomes.

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
from raftkit.synth import (
    AnswerGenerator,
    AnswerResult,
    MultiAnswerGenerator,
    QuestionSynthesizer,
    build_context,
    question_rng,
)
from raftkit.types import Question

__all__ = ["work_on_chunk"]

logger = logging.getLogger("raftkit.pipeline")


async def work_on_chunk(
    index: int,
    feed: ChunkFeed,
    synthesizer: QuestionSynthesizer,
    answerer: AnswerGenerator,
    outbox: ObjectSendStream[Outcome | int],
    *,
    halt: Halt,
    config: RaftConfig,
) -> None:
    """Send an :class:`Outcome` per question (or one for a failed question call) to
    ``outbox``, then ``index`` when the chunk is done — unless the run halted before all of
    its work was decided."""
    c = config
    oracle = feed.chunks[index]
    unfinished = False

    async def failed(error: BaseException, position: int, question: Question | None) -> None:
        nonlocal unfinished
        if classify_failure(error) == "chunk":
            where = question.id if question is not None else oracle.id
            logger.warning("%s failed: %s", where, describe(error))
            await outbox.send(failed_outcome((index, position), oracle, question, error))
        else:
            halt.request(error)
            unfinished = True

    try:
        questions = await synthesizer.synthesize(oracle, c.questions_per_chunk)
    except (Deferred, BaseExceptionGroup) as e:
        # batch mode: asked in this pass's batch, answered in the next pass
        if not _only_deferred(e):
            await failed(e, -1, None)
        questions = []
    except Exception as e:
        await failed(e, -1, None)
        questions = []

    # answers_per_call questions of the chunk a call (an answerer that cannot: one each)
    per_call = c.answers_per_call if isinstance(answerer, MultiAnswerGenerator) else 1

    async def answer(first: int) -> None:
        nonlocal unfinished
        group = questions[first : first + per_call]
        results: list[AnswerResult]
        try:
            if len(group) > 1:
                assert isinstance(answerer, MultiAnswerGenerator)
                results = await answerer.generate_many(group, oracle)
            else:
                results = [await answerer.generate(group[0], oracle)]
        except (Deferred, BaseExceptionGroup) as e:
            if not _only_deferred(e):
                for position, question in enumerate(group, first):
                    await failed(e, position, question)
            return
        except Exception as e:
            for position, question in enumerate(group, first):
                await failed(e, position, question)
            return
        await feed.ready.wait()
        if feed.sampler is None:  # halted before the corpus was whole: the answers are
            unfinished = True  # journaled and make their examples on the next run
            return
        for position, (question, result) in enumerate(zip(group, results, strict=True), first):
            context = await build_context(
                question,
                oracle,
                feed.sampler,
                rng=question_rng(c.seed, question.id),
                k=c.distractors,
                p=c.oracle_probability,
            )
            await outbox.send(outcome((index, position), question, oracle, context, result, c))

    async with anyio.create_task_group() as tg:
        for first in range(0, len(questions), per_call):
            tg.start_soon(answer, first)
    if not unfinished:
        await outbox.send(index)


def _only_deferred(error: BaseException) -> bool:
    """Whether ``error`` is a deferral (or a group of them, from a plug-in's task group)."""
    if isinstance(error, BaseExceptionGroup):
        return error.split(Deferred)[1] is None
    return isinstance(error, Deferred)

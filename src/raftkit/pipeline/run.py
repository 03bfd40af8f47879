"""The generation run: the plug-ins composed into one resumable pass over a corpus.

Every teacher call goes through the client given to the pipeline, which is wrapped with the
run's :class:`~raftkit.journal.Journal`: a response is on disk before it is used, and a run
started again in the same directory replays it instead of paying twice. Because every random
choice is seeded per question and the output is written in corpus order, a resumed run ends
with the same ``examples.jsonl`` as an uninterrupted one.

Memory: documents are dropped once chunked; the chunks of the corpus are held (distractors are
drawn from all of them); examples stream to disk and only their offsets are kept for the final
ordering.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from raftkit.batch import run_in_rounds
from raftkit.chunking import AsyncChunker, Chunker
from raftkit.errors import BudgetExceededError, UsageError
from raftkit.extract import Extractor
from raftkit.journal import Journal
from raftkit.llm import Deferred, LLMClient
from raftkit.llm.caps import CompletionCaps
from raftkit.llm.polling import PollPolicy
from raftkit.llm.usage import PriceTable
from raftkit.pipeline.config import Progress, RaftConfig, default_chunker
from raftkit.pipeline.feed import ChunkFeed, extract_chunks, reload_chunks
from raftkit.pipeline.output import Outcome, add_usage, outcome, write_ordered, write_report
from raftkit.pipeline.plan import estimate_cost
from raftkit.pipeline.plugins import (
    AnswererArg,
    SamplerArg,
    SynthesizerArg,
    make_answerer,
    make_sampler,
    make_synthesizer,
    run_extractors,
    run_settings,
)
from raftkit.run_dir import RunDir
from raftkit.run_report import CostEstimate, RunReport
from raftkit.synth import (
    AnswerGenerator,
    AnswerResult,
    MultiAnswerGenerator,
    Prompts,
    QuestionSynthesizer,
    build_context,
    question_rng,
)

__all__ = ["RaftPipeline"]

# What the first pass of a batch run learnt from the walk; later passes read chunks.jsonl.
_WALK_FIELDS = ("files", "documents", "pages", "extraction_errors", "skipped_files")
# Finished chunks between two saves of the learned completion caps.
_SAVE_CAPS_EVERY = 10


class RaftPipeline:
    """Composes the plug-ins into one resumable run.

    ``client`` is any :class:`~raftkit.llm.LLMClient`; built-in clients are journaled through
    ``client.with_store``. ``synthesizer`` and ``answerer`` may be instances, or factories
    taking the journaled client (the defaults are teacher-backed). ``sampler`` may be a
    :class:`~raftkit.synth.DistractorSampler` or a factory taking the corpus's chunks.
    ``extractors`` replace the built-in ones (``[*default_extractors(), MyExtractor()]`` adds
    one), in the run and in :meth:`plan` alike. Plug-ins given here are recorded by name in
    the run's ``settings.json``: resuming with others is refused, like other settings.
    """

    def __init__(
        self,
        client: LLMClient,
        config: RaftConfig | None = None,
        *,
        chunker: Chunker | AsyncChunker | None = None,
        synthesizer: SynthesizerArg = None,
        answerer: AnswererArg = None,
        sampler: SamplerArg = None,
        extractors: Sequence[Extractor] | None = None,
        prompts: Prompts | None = None,
        progress: Callable[[Progress], object] | None = None,
        prices: PriceTable | None = None,
        batch: bool = False,
        batch_poll: PollPolicy | None = None,
    ) -> None:
        self.client = client
        self.config = config if config is not None else RaftConfig()
        self._chunker = chunker
        self._extractors = list(extractors) if extractors is not None else None
        self.prompts = prompts if prompts is not None else Prompts()
        self._synthesizer = synthesizer
        self._answerer = answerer
        self._sampler = sampler
        self._progress = progress
        self.batch = batch
        self._batch_poll = batch_poll
        self.prices = prices if prices is not None else PriceTable()
        #: the completion caps of the run's teacher calls (``config.max_tokens_policy``),
        #: restored from and saved to the run directory
        self.caps = CompletionCaps(self.config.max_tokens_policy)

    # ------------------------------------------------------------------ dry run

    async def plan(self, source: str | os.PathLike[str]) -> CostEstimate:
        """Extract and chunk ``source`` and forecast the teacher calls, tokens and $ — free."""
        return await estimate_cost(
            source,
            self.config,
            chunker=self._chunker,
            prompts=self.prompts,
            prices=self.prices,
            extractors=self._extractors,
        )

    # ------------------------------------------------------------------ the run

    async def run(
        self,
        source: str | os.PathLike[str],
        run_dir: str | os.PathLike[str],
        *,
        simulated_teacher: bool = False,
    ) -> RunReport:
        """Generate ``run_dir/examples.jsonl`` from the documents under ``source``.

        Safe to call again on the same ``run_dir`` after a crash or a kill: journaled teacher
        responses are replayed, not paid for again.
        """
        c = self.config
        run = RunDir(run_dir)
        started = anyio.current_time()
        report = RunReport(
            source=str(source),
            run_dir=str(run.root),
            teacher_model=c.teacher_model,
            simulated_teacher=simulated_teacher,
        )
        plugins = {
            "chunker": self._chunker,
            "extractors": self._extractors,
            "synthesizer": self._synthesizer,
            "answerer": self._answerer,
            "sampler": self._sampler,
        }
        journal = Journal(run).open(run_settings(c, plugins))
        self.caps.load(run.completion_caps)
        ledger = self.client.ledger
        before = ledger.report() if ledger is not None else None
        try:
            try:
                if self.batch:
                    await self._generate_in_batches(journal, source, run, report)
                else:
                    client = self.client.with_store(journal)
                    await self._generate(client, source, run, report, reuse_chunks=False)
            except BudgetExceededError as e:
                report.status = "stopped"
                report.stop_reason = f"budget: {e}"
        except BaseException as e:
            report.status = "failed"
            report.stop_reason = f"{type(e).__name__}: {e}"
            raise
        finally:
            journal.close()
            self.caps.save(run.completion_caps)
            report.max_tokens_policy = c.max_tokens_policy
            report.completion_caps = [stats.model_dump() for stats in self.caps.stats()]
            report.wall_seconds = anyio.current_time() - started
            report.teacher_calls_paid = journal.recorded
            report.teacher_calls_replayed = journal.replayed
            if ledger is not None:
                add_usage(report, ledger, before)
            write_report(run, report)
        return report

    async def _generate_in_batches(
        self, journal: Journal, source: str | os.PathLike[str], run: RunDir, report: RunReport
    ) -> None:
        """Passes over the corpus (:func:`~raftkit.batch.run_in_rounds`); each pass's
        unanswered teacher calls go out as one batch, answered in the next pass.

        Each pass counts from the report as it was before the first one, so the last pass's
        counts are the run's; passes after the first read the corpus from ``chunks.jsonl``.
        """
        if self.config.vision_model is not None:
            raise UsageError("batch mode does not read PDFs with a vision model; run without it")
        base = report.model_copy(deep=True)

        async def one_pass(client: LLMClient, batches: int) -> None:
            attempt = base.model_copy(deep=True)
            if batches:
                for name in _WALK_FIELDS:
                    setattr(attempt, name, getattr(report, name))
            await self._generate(client, source, run, attempt, reuse_chunks=batches > 0)
            for name in RunReport.model_fields:
                setattr(report, name, getattr(attempt, name))
            report.batch_rounds = batches

        await run_in_rounds(self.client, journal, one_pass, run_dir=run, poll=self._batch_poll)

    async def _feed(
        self,
        client: LLMClient,
        source: str | os.PathLike[str],
        feed: ChunkFeed,
        run: RunDir,
        report: RunReport,
        reuse_chunks: bool,
    ) -> None:
        async with feed.send:
            if reuse_chunks:
                await reload_chunks(feed, run, report)
            else:
                chunker = self._chunker or default_chunker(self.config, client)
                extractors = run_extractors(self.config, self._extractors, client, self.caps)
                await extract_chunks(
                    feed, source, extractors=extractors, chunker=chunker, run=run, report=report
                )
        feed.sampler = await make_sampler(self._sampler, client, self.config, feed.chunks)
        feed.ready.set()

    # ------------------------------------------------------------------ one pass

    async def _generate(
        self,
        client: LLMClient,
        source: str | os.PathLike[str],
        run: RunDir,
        report: RunReport,
        *,
        reuse_chunks: bool,
    ) -> None:
        c = self.config
        synthesizer = make_synthesizer(self._synthesizer, client, c, self.prompts, self.caps)
        answerer = make_answerer(self._answerer, client, c, self.prompts, self.caps)
        feed = ChunkFeed()
        partial = run.examples.with_name(run.examples.name + ".partial")
        offsets: list[tuple[tuple[int, int], int, int]] = []
        reasons: Counter[str] = Counter()
        send_out, receive_out = anyio.create_memory_object_stream[Outcome | int](c.concurrency * 4)

        async def work(
            inbox: ObjectReceiveStream[int], outbox: ObjectSendStream[Outcome | int]
        ) -> None:
            async with inbox, outbox:
                async for index in inbox:
                    await self._one_chunk(index, feed, synthesizer, answerer, outbox)

        with (
            partial.open("w+b") as sink,
            run.rejections.open("w", encoding="utf-8") as rejects,
        ):
            stopped: BudgetExceededError | None = None
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._feed, client, source, feed, run, report, reuse_chunks)
                    async with send_out:
                        for _ in range(c.concurrency):
                            tg.start_soon(work, feed.receive.clone(), send_out.clone())
                    feed.receive.close()
                    async with receive_out:
                        async for item in receive_out:
                            if isinstance(item, int):  # a chunk finished
                                report.chunks_done += 1
                                self._report_progress(report, reasons)
                                if report.chunks_done % _SAVE_CAPS_EVERY == 0:
                                    self.caps.save(run.completion_caps)
                                continue
                            report.questions += 1
                            report.short_contexts += int(item.short)
                            if item.example is not None:
                                line = (item.example.model_dump_json() + "\n").encode("utf-8")
                                offsets.append((item.order, sink.tell(), len(line)))
                                sink.write(line)
                                report.examples += 1
                                report.examples_with_oracle += int(item.example.oracle_present)
                            elif item.rejection is not None:
                                reasons[item.rejection["reason"]] += 1
                                rejects.write(json.dumps(item.rejection, ensure_ascii=False))
                                rejects.write("\n")
                                report.rejections = dict(reasons)
            except BaseExceptionGroup as group:
                budget, rest = group.split(BudgetExceededError)
                if rest is not None:
                    raise _unwrap(rest) from None
                assert budget is not None
                stopped = _first(budget)
            finally:
                sink.flush()
                write_ordered(sink, offsets, run.examples)
            partial.unlink(missing_ok=True)
            if stopped is not None:
                raise stopped

    async def _one_chunk(
        self,
        index: int,
        feed: ChunkFeed,
        synthesizer: QuestionSynthesizer,
        answerer: AnswerGenerator,
        outbox: ObjectSendStream[Outcome | int],
    ) -> None:
        c = self.config
        oracle = feed.chunks[index]
        try:
            questions = await synthesizer.synthesize(oracle, c.questions_per_chunk)
        except (Deferred, BaseExceptionGroup) as e:
            # batch mode: asked in this pass's batch, answered in the next pass
            if not _only_deferred(e):
                raise
            questions = []

        # answers_per_call questions of the chunk a call (an answerer that cannot: one each)
        per_call = c.answers_per_call if isinstance(answerer, MultiAnswerGenerator) else 1

        async def answer(first: int) -> None:
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
                    raise
                return
            await feed.ready.wait()
            assert feed.sampler is not None
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
        await outbox.send(index)

    def _report_progress(self, report: RunReport, reasons: Counter[str]) -> None:
        if self._progress is not None:
            self._progress(
                Progress(
                    chunks_done=report.chunks_done,
                    chunks_total=report.chunks,
                    questions=report.questions,
                    examples=report.examples,
                    rejected=sum(reasons.values()),
                )
            )


def _only_deferred(error: BaseException) -> bool:
    """Whether ``error`` is a deferral (or a group of them, from a plug-in's task group)."""
    if isinstance(error, BaseExceptionGroup):
        return error.split(Deferred)[1] is None
    return isinstance(error, Deferred)


def _unwrap(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _first(group: BaseExceptionGroup[BudgetExceededError]) -> BudgetExceededError:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, BudgetExceededError)
    return error

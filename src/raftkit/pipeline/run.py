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

import os
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from raftkit.batch import BatchStatus, run_in_rounds
from raftkit.chunking import AsyncChunker, Chunker
from raftkit.errors import BudgetExceededError, UsageError, root_cause
from raftkit.extract import Extractor
from raftkit.journal import Journal
from raftkit.llm import LLMClient
from raftkit.llm.caps import CompletionCaps
from raftkit.llm.polling import PollPolicy
from raftkit.llm.usage import PriceTable
from raftkit.pipeline.chunk_work import work_on_chunk
from raftkit.pipeline.config import Progress, RaftConfig, default_chunker
from raftkit.pipeline.feed import ChunkFeed, extract_chunks, reload_chunks
from raftkit.pipeline.halt import Halt, describe
from raftkit.pipeline.output import (
    Outcome,
    RunOutput,
    add_usage,
    no_examples_reason,
    write_report,
)
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
from raftkit.pipeline.quality import QualitySteps
from raftkit.run_dir import RunDir
from raftkit.run_report import CostEstimate, RunReport
from raftkit.synth import Prompts

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
    ``progress`` is called after every chunk; with ``batch``, ``batch_progress`` after every
    poll of a batch (its id, state and counts).
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
        batch_progress: Callable[[BatchStatus], object] | None = None,
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
        self._batch_progress = batch_progress
        self.prices = prices if prices is not None else PriceTable()
        #: the completion caps of the run's teacher calls (``config.max_tokens_policy``),
        #: restored from and saved to the run directory
        self.caps = CompletionCaps(self.config.max_tokens_policy)

    # ------------------------------------------------------------------ dry run

    async def plan(
        self, source: str | os.PathLike[str], *, limit: int | None = None
    ) -> CostEstimate:
        """Extract and chunk ``source`` and forecast the teacher calls, tokens and $ — free.

        With ``limit``, ``.limited`` forecasts :meth:`run` with that limit beside the corpus.
        """
        return await estimate_cost(
            source,
            self.config,
            chunker=self._chunker,
            prompts=self.prompts,
            prices=self.prices,
            extractors=self._extractors,
            limit=limit,
        )

    # ------------------------------------------------------------------ the run

    async def run(
        self,
        source: str | os.PathLike[str],
        run_dir: str | os.PathLike[str],
        *,
        simulated_teacher: bool = False,
        limit: int | None = None,
    ) -> RunReport:
        """Generate ``run_dir/examples.jsonl`` from the documents under ``source``.

        Safe to call again on the same ``run_dir`` after a crash or a kill: journaled teacher
        responses are replayed, not paid for again. One process at a time writes into a run
        (:meth:`RunDir.lock`). ``limit`` works on the first N chunks of the corpus only; it is
        not a setting of the run, so a later call without it goes on to the whole corpus and
        replays the calls already made.

        The report's status is ``completed`` only when the run made examples; a budget stop
        is ``stopped``, Ctrl-C ``interrupted``. Account-level errors (see
        :mod:`raftkit.pipeline.halt`) and a source without text are raised after the report
        is written.
        """
        if limit is not None and limit < 1:
            raise UsageError(f"limit must be at least 1 chunk, got {limit}")
        run = RunDir(run_dir)
        with run.lock("raftkit generate"):
            return await self._run(source, run, simulated_teacher=simulated_teacher, limit=limit)

    def check_resumable(
        self, run_dir: str | os.PathLike[str], *, simulated_teacher: bool = False
    ) -> None:
        """Raise :class:`~raftkit.errors.ResumeMismatchError` now if :meth:`run` would refuse
        to resume ``run_dir`` (other settings, another endpoint), before anything is asked of
        a service; a run not started yet passes, and nothing is written."""
        Journal(run_dir).check_settings(self._settings(simulated_teacher))

    def _settings(self, simulated_teacher: bool) -> dict[str, Any]:
        """What the run's ``settings.json`` records: the config, the plug-ins by name, the
        endpoint and whether it is simulated."""
        plugins = {
            "chunker": self._chunker,
            "extractors": self._extractors,
            "synthesizer": self._synthesizer,
            "answerer": self._answerer,
            "sampler": self._sampler,
        }
        settings = run_settings(self.config, plugins)
        identity = self.client.endpoint_identity
        settings["endpoint"] = identity.model_dump() if identity is not None else None
        settings["simulated"] = simulated_teacher
        return settings

    async def _run(
        self,
        source: str | os.PathLike[str],
        run: RunDir,
        *,
        simulated_teacher: bool,
        limit: int | None,
    ) -> RunReport:
        started = anyio.current_time()
        report = RunReport(
            source=str(source),
            run_dir=str(run.root),
            teacher_model=self.config.teacher_model,
            simulated_teacher=simulated_teacher,
            limit=limit,
        )
        journal = Journal(run).open(self._settings(simulated_teacher))
        report.simulated_teacher = run.simulated()
        self.caps.load(run.completion_caps)
        ledger = self.client.ledger
        before = ledger.report() if ledger is not None else None
        try:
            try:
                if self.batch:
                    await self._generate_in_batches(journal, source, run, report, limit)
                else:
                    client = self.client.with_store(journal)
                    await self._generate(
                        client, source, run, report, reuse_chunks=False, limit=limit
                    )
            except BudgetExceededError as e:
                report.status = "stopped"
                report.stop_reason = f"budget: {e}"
            else:
                if report.examples == 0:
                    report.status = "failed"
                    report.stop_reason = no_examples_reason(report)
        except BaseException as e:
            cause = root_cause(e)
            if isinstance(cause, KeyboardInterrupt | anyio.get_cancelled_exc_class()):
                report.status = "interrupted"
                report.stop_reason = "interrupted (Ctrl-C or SIGTERM); run it again to resume"
            else:
                report.status = "failed"
                report.stop_reason = describe(cause)
            raise
        finally:
            journal.close()
            self.caps.save(run.completion_caps)
            report.max_tokens_policy = self.config.max_tokens_policy
            report.completion_caps = [stats.model_dump() for stats in self.caps.stats()]
            report.wall_seconds = anyio.current_time() - started
            report.teacher_calls_paid = journal.recorded
            report.teacher_calls_replayed = journal.replayed
            report.structured_modes = dict(self.client.structured_modes())
            if ledger is not None:
                add_usage(report, ledger, before)
                simulated = ledger.report().simulated_responses
                if simulated > (before.simulated_responses if before is not None else 0):
                    journal.mark_simulated()
                    report.simulated_teacher = True
            write_report(run, report)
        return report

    async def _generate_in_batches(
        self,
        journal: Journal,
        source: str | os.PathLike[str],
        run: RunDir,
        report: RunReport,
        limit: int | None,
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
            try:
                await self._generate(
                    client, source, run, attempt, reuse_chunks=batches > 0, limit=limit
                )
            finally:  # a stopped pass's counts are the run's
                for name in RunReport.model_fields:
                    setattr(report, name, getattr(attempt, name))
                report.batch_rounds = batches

        await run_in_rounds(
            self.client,
            journal,
            one_pass,
            run_dir=run,
            poll=self._batch_poll,
            on_status=self._batch_progress,
        )

    async def _feed(
        self,
        client: LLMClient,
        source: str | os.PathLike[str],
        feed: ChunkFeed,
        run: RunDir,
        report: RunReport,
        reuse_chunks: bool,
        halt: Halt,
        quality: QualitySteps,
    ) -> None:
        """The corpus into ``feed``, then the distractor sampler and the question-quality
        steps' view of the corpus. A failure here (a vision page over the budget, a source
        without text) halts the run like a chunk's would."""
        try:
            async with feed.send:
                if reuse_chunks:
                    await reload_chunks(feed, run, report)
                else:
                    chunker = self._chunker or default_chunker(self.config, client)
                    extractors = run_extractors(self.config, self._extractors, client, self.caps)
                    await extract_chunks(
                        feed,
                        source,
                        extractors=extractors,
                        chunker=chunker,
                        run=run,
                        report=report,
                        halt=halt,
                    )
            if not halt.requested:
                sampler = await make_sampler(self._sampler, client, self.config, feed.chunks)
                await quality.prepare(feed.chunks, sampler)
                feed.sampler = sampler  # only once the groups and pairs are known
        except Exception as e:
            halt.request(e)
        finally:
            feed.ready.set()  # with no sampler when halted: waiting questions give up

    # ------------------------------------------------------------------ one pass

    async def _generate(
        self,
        client: LLMClient,
        source: str | os.PathLike[str],
        run: RunDir,
        report: RunReport,
        *,
        reuse_chunks: bool,
        limit: int | None = None,
    ) -> None:
        """One pass over the corpus. A halt (see :mod:`~raftkit.pipeline.halt`) stops handing
        out chunks, lets the chunks in progress finish their calls and raises its cause once
        what was done is written: ``examples.jsonl``, ``rejections.jsonl``, the counts."""
        c = self.config
        synthesizer = make_synthesizer(self._synthesizer, client, c, self.prompts, self.caps)
        answerer = make_answerer(self._answerer, client, c, self.prompts, self.caps)
        feed = ChunkFeed(limit)
        halt = Halt()
        quality = QualitySteps(client, c, self.prompts, answerer=answerer, caps=self.caps)
        report.quality = quality.counts
        send_out, receive_out = anyio.create_memory_object_stream[Outcome | int](c.concurrency * 4)

        async def work(
            inbox: ObjectReceiveStream[int], outbox: ObjectSendStream[Outcome | int]
        ) -> None:
            async with inbox, outbox:
                async for index in inbox:
                    if not halt.requested:  # when halted, the queue drains without work
                        await work_on_chunk(
                            index,
                            feed,
                            synthesizer,
                            quality,
                            outbox,
                            halt=halt,
                            config=c,
                        )
                    else:
                        async with quality.turn(index):  # later chunks' de-duplication goes on
                            pass

        with RunOutput(run, report) as output:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    self._feed, client, source, feed, run, report, reuse_chunks, halt, quality
                )
                async with send_out:
                    for _ in range(c.concurrency):
                        tg.start_soon(work, feed.receive.clone(), send_out.clone())
                feed.receive.close()
                async with receive_out:
                    async for item in receive_out:
                        if isinstance(item, int):  # a chunk finished
                            report.chunks_done += 1
                            self._report_progress(report, output.rejected)
                            if report.chunks_done % _SAVE_CAPS_EVERY == 0:
                                self.caps.save(run.completion_caps)
                        else:
                            output.add(item)
                            if item.is_question:
                                quality.count(item)
        if halt.cause is not None:
            raise halt.cause

    def _report_progress(self, report: RunReport, rejected: int) -> None:
        if self._progress is not None:
            self._progress(
                Progress(
                    chunks_done=report.chunks_done,
                    chunks_total=report.chunks,
                    questions=report.questions,
                    examples=report.examples,
                    rejected=rejected,
                )
            )

"""The RAFT generation pipeline: a folder of documents in, verified examples out.

::

    documents ─Extractor→ Document ─Chunker→ Chunk ─QuestionSynthesizer→ Question
    Question + corpus ─DistractorSampler→ context (oracle kept with probability p, k distractors)
    Question + oracle ─AnswerGenerator→ verified chain-of-thought answer ─→ RaftExample

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
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from pydantic import BaseModel, ConfigDict, Field

from raftkit.chunking import (
    AsyncChunker,
    Chunker,
    MarkdownChunker,
    SemanticChunker,
    TokenChunker,
    chunk_document,
)
from raftkit.errors import BudgetExceededError, UsageError
from raftkit.extract import (
    Extractor,
    PdfExtractor,
    VisionPdfExtractor,
    default_extractors,
    iter_documents,
)
from raftkit.finetune import BatchFailedError, BatchRequest, BatchRunner, PollPolicy
from raftkit.journal import Journal
from raftkit.llm import LLMClient
from raftkit.llm._openai_shaped import OpenAIShapedClient
from raftkit.llm._store import Deferred
from raftkit.llm.tokens import count_message_tokens, estimate_tokens
from raftkit.llm.usage import PriceTable, UsageLedger, UsageReport
from raftkit.run_report import CostEstimate, RunReport
from raftkit.synth import (
    AnswerGenerator,
    AnswerResult,
    BM25Sampler,
    DistractorSampler,
    EmbeddingSampler,
    Prompts,
    QuestionSynthesizer,
    TeacherAnswerGenerator,
    TeacherQuestionSynthesizer,
    UniformSampler,
    VerifyRules,
    build_context,
    question_rng,
)
from raftkit.synth.prompts import answer_messages, question_messages
from raftkit.types import Chunk, Question, RaftExample, Usage

__all__ = ["Progress", "RaftConfig", "RaftPipeline", "default_chunker", "estimate_cost"]

logger = logging.getLogger("raftkit.pipeline")

EXAMPLES_FILE = "examples.jsonl"
CHUNKS_FILE = "chunks.jsonl"
REJECTIONS_FILE = "rejections.jsonl"

# Questions, answers and each re-ask take a round; more means something keeps failing.
_MAX_BATCH_ROUNDS = 12

# Estimates for the dry run: a question is short; an answer is a paragraph of reasoning.
_QUESTION_TOKENS = 30
_ANSWER_TOKENS = 350
# A page image (high detail, about 1024 px) plus the instruction; a page of Markdown back.
_VISION_PROMPT_TOKENS = 1_000
_VISION_PAGE_TOKENS = 800


class RaftConfig(BaseModel):
    """Settings of a generation run.

    Everything but :attr:`concurrency` shapes the data and is recorded in the run directory:
    resuming with other values is refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    teacher_model: str = "gpt-4o"
    questions_per_chunk: int = Field(5, ge=1)
    distractors: int = Field(4, ge=0, description="k: distractor documents beside the oracle")
    oracle_probability: float = Field(0.8, ge=0.0, le=1.0, description="p, 0.8 as in the paper")
    sampler: Literal["uniform", "embedding", "bm25"] = "uniform"
    embedding_model: str = "text-embedding-3-small"
    chunker: Literal["token", "markdown", "semantic"] = "token"
    chunk_size: int = Field(512, ge=16, description="tokens per chunk (estimated)")
    chunk_overlap: int = Field(64, ge=0)
    seed: int = 0
    vision_model: str | None = Field(
        None, description="a vision-capable chat model that reads PDF pages into Markdown"
    )
    vision_pages: Literal["tables", "all"] = Field(
        "tables", description="pages sent to the vision model: those with tables, or all"
    )
    max_answer_attempts: int = Field(3, ge=1)
    answer_max_tokens: int | None = Field(
        None, ge=1, description="cap on the teacher's answer length; None: the server's default"
    )
    question_max_tokens: int | None = Field(
        None, ge=1, description="cap on the teacher's question-list reply; None: server default"
    )
    verification: VerifyRules = Field(
        default_factory=VerifyRules, description="the answer verifier's thresholds"
    )
    concurrency: int = Field(16, ge=1, description="chunks in flight; does not change the data")

    def data_settings(self) -> dict[str, Any]:
        """The settings that shape the data (what a resumed run must share)."""
        return self.model_dump(exclude={"concurrency"})


@dataclass(frozen=True)
class Progress:
    """Passed to the progress callback after every chunk."""

    chunks_done: int
    chunks_total: int
    questions: int
    examples: int
    rejected: int


SynthesizerArg = QuestionSynthesizer | Callable[[LLMClient], QuestionSynthesizer] | None
AnswererArg = AnswerGenerator | Callable[[LLMClient], AnswerGenerator] | None


class _DeferringStore:
    """The journal, except that a paid chat call is kept for the next batch instead of sent."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.pending: dict[str, BatchRequest] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.journal.get(key)

    async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        await self.journal.put(key, request, response)

    async def on_miss(
        self, key: str, *, path: str, body: dict[str, Any], sample: int, model: str
    ) -> None:
        self.pending.setdefault(key, BatchRequest(body={"model": model, **body}, sample=sample))
        raise Deferred(key)


class _Corpus:
    """The chunks found so far, fed to the workers as they are found.

    The index stream is unbounded on purpose: the walk must never wait for the workers, who
    may themselves be waiting for the whole corpus (``ready``) to draw distractors. The chunks
    are held anyway, so the queued indices cost nothing more.
    """

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.send, self.receive = anyio.create_memory_object_stream[int](math.inf)
        self.ready = anyio.Event()
        self.sampler: DistractorSampler | None = None


@dataclass
class _Outcome:
    order: tuple[int, int]
    example: RaftExample | None
    rejection: dict[str, Any] | None
    short: bool = False


class RaftPipeline:
    """Composes the plug-ins into one resumable run.

    ``client`` is any :class:`~raftkit.llm.LLMClient`; built-in clients are journaled through
    ``client.with_store``. ``synthesizer`` and ``answerer`` may be instances, or factories
    taking the journaled client (the defaults are teacher-backed). ``sampler`` may be a
    :class:`~raftkit.synth.DistractorSampler` or a factory taking the corpus's chunks.
    """

    def __init__(
        self,
        client: LLMClient,
        config: RaftConfig | None = None,
        *,
        chunker: Chunker | AsyncChunker | None = None,
        synthesizer: SynthesizerArg = None,
        answerer: AnswererArg = None,
        sampler: DistractorSampler | Callable[[Sequence[Chunk]], DistractorSampler] | None = None,
        prompts: Prompts | None = None,
        progress: Callable[[Progress], object] | None = None,
        prices: PriceTable | None = None,
        batch: bool = False,
        batch_poll: PollPolicy | None = None,
    ) -> None:
        self.client = client
        self.config = config if config is not None else RaftConfig()
        self._chunker = chunker
        self.prompts = prompts if prompts is not None else Prompts()
        self._synthesizer = synthesizer
        self._answerer = answerer
        self._sampler = sampler
        self._progress = progress
        self.batch = batch
        self._batch_poll = batch_poll
        self.prices = prices if prices is not None else PriceTable()

    # ------------------------------------------------------------------ dry run

    async def plan(self, source: str | os.PathLike[str]) -> CostEstimate:
        """Extract and chunk ``source`` and forecast the teacher calls, tokens and $ — free."""
        return await estimate_cost(
            source, self.config, chunker=self._chunker, prompts=self.prompts, prices=self.prices
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
        out = Path(run_dir)
        started = anyio.current_time()
        report = RunReport(
            source=str(source),
            run_dir=str(out),
            teacher_model=c.teacher_model,
            simulated_teacher=simulated_teacher,
        )
        journal = Journal(out).open(c.data_settings())
        ledger = getattr(self.client, "ledger", None)
        before = ledger.report() if isinstance(ledger, UsageLedger) else None
        try:
            try:
                if self.batch:
                    await self._generate_in_batches(journal, source, out, report)
                else:
                    await self._generate_once(self.client.with_store(journal), source, out, report)
            except BudgetExceededError as e:
                report.status = "stopped"
                report.stop_reason = f"budget: {e}"
        except BaseException as e:
            report.status = "failed"
            report.stop_reason = f"{type(e).__name__}: {e}"
            raise
        finally:
            journal.close()
            report.wall_seconds = anyio.current_time() - started
            report.teacher_calls_paid = journal.recorded
            report.teacher_calls_replayed = journal.replayed
            if isinstance(ledger, UsageLedger):
                _add_usage(report, ledger, before)
            _write_report(out, report)
        return report

    async def _generate_once(
        self, client: LLMClient, source: str | os.PathLike[str], out: Path, report: RunReport
    ) -> None:
        synthesizer = _resolve(self._synthesizer, client, self._default_synthesizer)
        answerer = _resolve(self._answerer, client, self._default_answerer)
        await self._generate(client, source, synthesizer, answerer, out, report)

    async def _generate_in_batches(
        self, journal: Journal, source: str | os.PathLike[str], out: Path, report: RunReport
    ) -> None:
        """Passes over the corpus; each pass's unanswered teacher calls go out as one batch.

        A pass replays everything the journal holds and defers every other chat call; the
        batch's answers are merged into the journal under the keys online calls use, so the
        next pass gets further (questions first, then answers, then re-asks). The last pass
        pays for nothing and writes the same ``examples.jsonl`` an online run would.
        """
        if self.config.vision_model is not None:
            raise UsageError("batch mode does not read PDFs with a vision model; run without it")
        if not isinstance(self.client, OpenAIShapedClient):
            raise UsageError("batch mode needs an OpenAIClient or AzureOpenAIClient")
        runner = BatchRunner(self.client, journal, run_dir=out, poll=self._batch_poll)
        for round_ in range(1, _MAX_BATCH_ROUNDS + 1):
            deferring = _DeferringStore(journal)
            attempt = report.model_copy()
            await self._generate_once(self.client.with_store(deferring), source, out, attempt)
            for name in RunReport.model_fields:
                setattr(report, name, getattr(attempt, name))
            report.batch_rounds = round_ - 1
            if not deferring.pending:
                return
            logger.info("batch round %d: %d teacher calls", round_, len(deferring.pending))
            before = len(journal)
            result = await runner.run(list(deferring.pending.values()))
            if len(journal) == before:  # nothing answered: another round would loop forever
                raise BatchFailedError(
                    result.batch_id or "?",
                    result.status or "without answers",
                    [f"{f.code or f.status_code}: {f.message}" for f in result.failures],
                )
        raise BatchFailedError("(several)", f"unfinished after {_MAX_BATCH_ROUNDS} rounds", [])

    def _default_synthesizer(self, client: LLMClient) -> QuestionSynthesizer:
        return TeacherQuestionSynthesizer(
            client,
            self.config.teacher_model,
            prompts=self.prompts,
            max_tokens=self.config.question_max_tokens,
        )

    def _default_answerer(self, client: LLMClient) -> AnswerGenerator:
        c = self.config
        return TeacherAnswerGenerator(
            client,
            c.teacher_model,
            prompts=self.prompts,
            max_attempts=c.max_answer_attempts,
            max_tokens=c.answer_max_tokens,
            rules=c.verification,
        )

    def _extractors(self, client: LLMClient) -> list[Extractor]:
        c = self.config
        extractors = default_extractors()
        if c.vision_model is None:
            return extractors
        vision = VisionPdfExtractor(
            client, c.vision_model, table_pages_only=c.vision_pages == "tables"
        )
        return [vision, *(e for e in extractors if not isinstance(e, PdfExtractor))]

    async def _extract_corpus(
        self,
        client: LLMClient,
        source: str | os.PathLike[str],
        corpus: _Corpus,
        out: Path,
        report: RunReport,
    ) -> None:
        """Walk, extract and chunk ``source``, handing each chunk to the workers at once.

        Questions and answers need only their own chunk, so they start while the walk goes
        on; only the distractors wait for the whole corpus (``corpus.ready``).
        """
        chunker = (
            self._chunker if self._chunker is not None else default_chunker(self.config, client)
        )
        walk = iter_documents(source, extractors=self._extractors(client))
        tmp = out / (CHUNKS_FILE + ".tmp")
        async with corpus.send:
            with tmp.open("w", encoding="utf-8") as f:
                async with walk:
                    async for document in walk:
                        report.pages += len(document.pages)
                        for chunk in await chunk_document(chunker, document):
                            f.write(chunk.model_dump_json() + "\n")
                            corpus.chunks.append(chunk)
                            report.chunks = len(corpus.chunks)
                            corpus.send.send_nowait(len(corpus.chunks) - 1)
        os.replace(tmp, out / CHUNKS_FILE)
        report.files = walk.report.files
        report.documents = walk.report.documents
        report.extraction_errors = [str(e) for e in walk.report.errors]
        report.skipped_files = list(walk.report.skipped)
        for error in walk.report.errors:
            logger.warning("skipped a file that could not be extracted: %s", error)
        corpus.sampler = await self._make_sampler(client, corpus.chunks)
        corpus.ready.set()

    async def _make_sampler(self, client: LLMClient, chunks: list[Chunk]) -> DistractorSampler:
        given = self._sampler
        if given is not None:
            if hasattr(given, "sample"):
                return given
            return given(chunks)
        kind = self.config.sampler
        if kind == "bm25":
            return await BM25Sampler.build(chunks)
        if kind == "embedding":
            return await EmbeddingSampler.from_client(
                chunks, client, model=self.config.embedding_model
            )
        return UniformSampler(chunks)

    async def _generate(
        self,
        client: LLMClient,
        source: str | os.PathLike[str],
        synthesizer: QuestionSynthesizer,
        answerer: AnswerGenerator,
        out: Path,
        report: RunReport,
    ) -> None:
        c = self.config
        corpus = _Corpus()
        partial = out / (EXAMPLES_FILE + ".partial")
        offsets: list[tuple[tuple[int, int], int, int]] = []
        reasons: Counter[str] = Counter()
        send_out, receive_out = anyio.create_memory_object_stream[_Outcome | int](c.concurrency * 4)

        async def work(
            inbox: ObjectReceiveStream[int], outbox: ObjectSendStream[_Outcome | int]
        ) -> None:
            async with inbox, outbox:
                async for index in inbox:
                    await self._one_chunk(index, corpus, synthesizer, answerer, outbox)

        with (
            partial.open("w+b") as sink,
            (out / REJECTIONS_FILE).open("w", encoding="utf-8") as rejects,
        ):
            stopped: BudgetExceededError | None = None
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._extract_corpus, client, source, corpus, out, report)
                    async with send_out:
                        for _ in range(c.concurrency):
                            tg.start_soon(work, corpus.receive.clone(), send_out.clone())
                    corpus.receive.close()
                    async with receive_out:
                        async for item in receive_out:
                            if isinstance(item, int):  # a chunk finished
                                report.chunks_done += 1
                                self._report_progress(report, reasons)
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
                _write_ordered(sink, offsets, out / EXAMPLES_FILE)
            partial.unlink(missing_ok=True)
            if stopped is not None:
                raise stopped

    async def _one_chunk(
        self,
        index: int,
        corpus: _Corpus,
        synthesizer: QuestionSynthesizer,
        answerer: AnswerGenerator,
        outbox: ObjectSendStream[_Outcome | int],
    ) -> None:
        c = self.config
        oracle = corpus.chunks[index]
        try:
            questions = await synthesizer.synthesize(oracle, c.questions_per_chunk)
        except Deferred:  # batch mode: asked in this pass's batch, answered in the next pass
            questions = []

        async def one(position: int, question: Question) -> None:
            try:
                result = await answerer.generate(question, oracle)
            except Deferred:
                return
            await corpus.ready.wait()
            assert corpus.sampler is not None
            context = await build_context(
                question,
                oracle,
                corpus.sampler,
                rng=question_rng(c.seed, question.id),
                k=c.distractors,
                p=c.oracle_probability,
            )
            await outbox.send(_outcome((index, position), question, oracle, context, result, c))

        async with anyio.create_task_group() as tg:
            for position, question in enumerate(questions):
                tg.start_soon(one, position, question)
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


async def estimate_cost(
    source: str | os.PathLike[str],
    config: RaftConfig | None = None,
    *,
    chunker: Chunker | AsyncChunker | None = None,
    prompts: Prompts | None = None,
    prices: PriceTable | None = None,
) -> CostEstimate:
    """Extract and chunk ``source`` and forecast the teacher calls, tokens and $ of a run.

    Pays for nothing and needs no credentials: this is ``raftkit generate --dry-run``.
    """
    c = config if config is not None else RaftConfig()
    chunker = chunker if chunker is not None else default_chunker(c)
    prompts = prompts if prompts is not None else Prompts()
    prices = prices if prices is not None else PriceTable()
    chunks: list[Chunk] = []
    walk = iter_documents(source)
    pages = 0
    async with walk:
        async for document in walk:
            pages += len(document.pages)
            chunks.extend(await chunk_document(chunker, document))
    n = c.questions_per_chunk
    question_prompt = sum(
        count_message_tokens(question_messages(ch.text, n, prompts), c.teacher_model)
        for ch in chunks
    )
    answer_prompt = n * sum(
        count_message_tokens(answer_messages("?" * 20, [ch.text], prompts), c.teacher_model)
        for ch in chunks
    )
    answer_tokens = c.answer_max_tokens or _ANSWER_TOKENS
    questions = n * len(chunks)
    prompt = question_prompt + answer_prompt
    completion = questions * _QUESTION_TOKENS + questions * answer_tokens
    # Re-asks resend the whole conversation plus the rejected answer.
    extra = c.max_answer_attempts - 1
    prompt_max = (
        question_prompt
        + answer_prompt * (1 + extra)
        + questions * answer_tokens * (extra * (extra + 1) // 2)
    )
    completion_max = questions * _QUESTION_TOKENS + questions * answer_tokens * (1 + extra)
    embedded = c.sampler == "embedding" or c.chunker == "semantic"
    embedding_tokens = sum(estimate_tokens(ch.text) for ch in chunks) if embedded else 0
    # Vision: at most one call per PDF page (fewer with vision_pages="tables").
    vision_calls = pages if c.vision_model is not None else 0
    vision_usage = Usage(
        prompt_tokens=vision_calls * _VISION_PROMPT_TOKENS,
        completion_tokens=vision_calls * _VISION_PAGE_TOKENS,
    )

    def dollars(p: int, q: int) -> float | None:
        cost = prices.cost(
            c.teacher_model, Usage(prompt_tokens=p, completion_tokens=q), kind="chat"
        )
        if cost is not None and c.vision_model is not None:
            seen = prices.cost(c.vision_model, vision_usage, kind="chat")
            cost = None if seen is None else cost + seen
        if cost is not None and embedding_tokens:
            emb = prices.cost(
                c.embedding_model, Usage(prompt_tokens=embedding_tokens), kind="embedding"
            )
            cost = None if emb is None else cost + emb
        return cost

    return CostEstimate(
        documents=walk.report.documents,
        pages=pages,
        chunks=len(chunks),
        questions=questions,
        teacher_calls_min=len(chunks) + questions,
        teacher_calls_max=len(chunks) + questions * c.max_answer_attempts,
        vision_calls_max=vision_calls,
        prompt_tokens=prompt + vision_usage.prompt_tokens,
        completion_tokens=completion + vision_usage.completion_tokens,
        embedding_tokens=embedding_tokens,
        cost_usd=dollars(prompt, completion),
        cost_usd_max=dollars(prompt_max, completion_max),
        price_note=_price_note(prices, c),
        extraction_errors=[str(e) for e in walk.report.errors],
    )


def _price_note(prices: PriceTable, config: RaftConfig) -> str:
    notes = [f"Prices as of {prices.as_of}." if prices.as_of else "", "Token counts are estimates."]
    if config.chunker == "semantic":
        notes.append("Semantic chunks are estimated as token windows of the same size.")
    return " ".join(n for n in notes if n)


def default_chunker(config: RaftConfig, client: LLMClient | None = None) -> Chunker | AsyncChunker:
    """The chunker a config names, with its size and overlap.

    The semantic chunker embeds sentences, so it needs ``client``; without one (a dry run,
    which pays for nothing) token windows of the same size stand in for it.
    """
    if config.chunker == "semantic" and client is not None:
        model = config.embedding_model

        async def embed(texts: Sequence[str]) -> Any:
            return await client.embed(list(texts), model=model)

        return SemanticChunker(embed, max_tokens=config.chunk_size)
    if config.chunker == "markdown":
        return MarkdownChunker(size=config.chunk_size, overlap=config.chunk_overlap)
    return TokenChunker(size=config.chunk_size, overlap=config.chunk_overlap)


def _outcome(
    order: tuple[int, int],
    question: Question,
    oracle: Chunk,
    context: Any,
    result: AnswerResult,
    config: RaftConfig,
) -> _Outcome:
    short = bool(context.short)
    if not result.accepted:
        rejection = {
            "question_id": question.id,
            "chunk_id": oracle.id,
            "question": question.text,
            "reason": result.reason or "invalid_response",
            "detail": result.detail,
            "attempts": result.attempts,
            "last_answer": result.cot_answer,
        }
        return _Outcome(order, None, rejection, short)
    example = RaftExample(
        id=question.id,
        question_id=question.id,
        question=question.text,
        chunk_id=oracle.id,
        document_id=oracle.document_id,
        documents=list(context.documents),
        oracle_present=bool(context.oracle_present),
        cot_answer=result.cot_answer,
        final_answer=result.final_answer,
        quotes=list(result.quotes),
        teacher_model=result.model or config.teacher_model,
        usage=result.usage,
        metadata={
            "attempts": result.attempts,
            "page_start": oracle.page_start,
            "normalisations": list(result.normalisations),
        },
    )
    return _Outcome(order, example, None, short)


def _write_ordered(
    sink: Any, offsets: list[tuple[tuple[int, int], int, int]], target: Path
) -> None:
    """Write the examples in corpus order (chunk, then question): the same file on every run."""
    tmp = target.with_suffix(".jsonl.tmp")
    fd = sink.fileno()
    with tmp.open("wb") as f:
        for _, offset, length in sorted(offsets):
            f.write(os.pread(fd, length, offset))
    os.replace(tmp, target)


def _resolve(given: Any, client: LLMClient, default: Callable[[LLMClient], Any]) -> Any:
    if given is None:
        return default(client)
    if hasattr(given, "synthesize") or hasattr(given, "generate"):
        return given
    return given(client)


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


def _add_usage(report: RunReport, ledger: UsageLedger, before: UsageReport | None) -> None:
    """This run's share of the ledger (the client may have been used before the run)."""
    after = ledger.report()
    usage, spent = after.usage, after.total_cost_usd
    if before is not None:
        prior = before.usage
        usage = Usage(
            prompt_tokens=usage.prompt_tokens - prior.prompt_tokens,
            completion_tokens=usage.completion_tokens - prior.completion_tokens,
            cached_tokens=usage.cached_tokens - prior.cached_tokens,
        )
        spent -= before.total_cost_usd
    report.prompt_tokens = usage.prompt_tokens
    report.completion_tokens = usage.completion_tokens
    report.cached_tokens = usage.cached_tokens
    report.cost_usd = spent if after.cost_complete else None
    report.usage_by_model = {name: model.model_dump() for name, model in after.models.items()}


def _write_report(out: Path, report: RunReport) -> None:
    (out / "report.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(report.markdown(), encoding="utf-8")

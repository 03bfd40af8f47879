"""The dry run: what a generation run would ask of the teacher, and cost, before paying."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from raftkit.chunking import AsyncChunker, Chunker, chunk_document
from raftkit.errors import UsageError
from raftkit.extract import Extractor, iter_documents
from raftkit.llm import ChatMessage
from raftkit.llm.tokens import count_message_tokens, estimate_tokens
from raftkit.llm.usage import PriceTable
from raftkit.pipeline.config import RaftConfig, default_chunker
from raftkit.pipeline.feed import empty_input
from raftkit.pipeline.plugins import run_extractors
from raftkit.run_report import CostEstimate
from raftkit.synth import Prompts
from raftkit.synth.critique import critique_messages, judge_context
from raftkit.synth.prompts import answer_messages, answers_messages, question_messages
from raftkit.types import Usage

__all__ = ["estimate_cost"]

# Estimates for the dry run: a question is short; an answer is a paragraph of reasoning.
_QUESTION_TOKENS = 30
_ANSWER_TOKENS = 350
# A page image (high detail, about 1024 px) plus the instruction; a page of Markdown back.
_VISION_PROMPT_TOKENS = 1_000
_VISION_PAGE_TOKENS = 800


@dataclass
class _Tally:
    """What the forecast needs of each chunk (the chunks themselves are not kept)."""

    question_prompt: list[int] = field(default_factory=list)
    answer_prompt: list[int] = field(default_factory=list)  # all of a chunk's answer calls
    single_prompt: list[int] = field(default_factory=list)  # one question's (a re-ask's)
    embedding: list[int] = field(default_factory=list)
    critique_prompt: list[int] = field(default_factory=list)  # the judge call's prompt
    # the multi-hop calls' prompts over this chunk and the one before it (0 for the first)
    pair_prompt: list[int] = field(default_factory=list)
    document: list[int] = field(default_factory=list)  # the chunk's document, by ordinal
    pages: list[int] = field(default_factory=list)  # pages of each document, by ordinal


async def estimate_cost(
    source: str | os.PathLike[str],
    config: RaftConfig | None = None,
    *,
    chunker: Chunker | AsyncChunker | None = None,
    prompts: Prompts | None = None,
    prices: PriceTable | None = None,
    extractors: Sequence[Extractor] | None = None,
    limit: int | None = None,
) -> CostEstimate:
    """Extract and chunk ``source`` and forecast the teacher calls, tokens and $ of a run.

    Pays for nothing and needs no credentials: this is ``raftkit generate --dry-run``.
    ``extractors`` are those of the run (the built-in ones unless given). With ``limit``
    (``--limit``), ``.limited`` forecasts a run on the first N chunks beside the estimate of
    the whole corpus. A source without text raises :class:`~raftkit.errors.EmptyInputError`.
    """
    c = config if config is not None else RaftConfig()
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be at least 1 chunk, got {limit}")
    chunker = chunker if chunker is not None else default_chunker(c)
    prompts = prompts if prompts is not None else Prompts()
    prices = prices if prices is not None else PriceTable()
    used_extractors = run_extractors(c, extractors)
    walk = iter_documents(source, extractors=used_extractors)
    n = c.questions_per_chunk
    embedded = c.sampler == "embedding" or c.chunker == "semantic"
    tally = _Tally()
    previous: str | None = None
    async with walk:
        async for document in walk:
            tally.pages.append(len(document.pages))
            for ch in await chunk_document(chunker, document):
                tally.critique_prompt.append(_critique_prompt(ch.text, c, prompts))
                tally.pair_prompt.append(_pair_prompt(previous, ch.text, c, prompts))
                previous = ch.text
                tally.question_prompt.append(
                    count_message_tokens(question_messages(ch.text, n, prompts), c.teacher_model)
                )
                # answers_per_call questions of a chunk share one answer call (and its prompt)
                tally.answer_prompt.append(
                    sum(
                        count_message_tokens(
                            _answer_prompt(ch.text, size, prompts), c.teacher_model
                        )
                        for size in _groups(c)
                    )
                )
                tally.single_prompt.append(
                    count_message_tokens(_answer_prompt(ch.text, 1, prompts), c.teacher_model)
                )
                tally.embedding.append(estimate_tokens(ch.text) if embedded else 0)
                tally.document.append(len(tally.pages) - 1)
    if not tally.document:
        raise empty_input(source, walk.report, used_extractors)
    whole = _forecast(tally, len(tally.document), c, prices)
    whole.documents = walk.report.documents
    whole.extraction_errors = [str(e) for e in walk.report.errors]
    if limit is not None:
        whole.limit = limit
        whole.limited = _forecast(tally, min(limit, len(tally.document)), c, prices)
    return whole


def _forecast(tally: _Tally, count: int, c: RaftConfig, prices: PriceTable) -> CostEstimate:
    """The forecast of a run on the first ``count`` chunks of ``tally``."""
    documents = sorted(set(tally.document[:count]))
    pages = sum(tally.pages[d] for d in documents)
    if count == len(tally.document):
        pages = sum(tally.pages)  # documents without a chunk were read too
    n = c.questions_per_chunk
    question_prompt = sum(tally.question_prompt[:count])
    answer_prompt = sum(tally.answer_prompt[:count])
    answer_tokens = c.answer_max_tokens or _ANSWER_TOKENS
    questions = n * count
    # Refusals are written without a call: (1 - p) of the answers, times the refusing share.
    refused = (1 - c.oracle_probability) * c.no_oracle_answer.refuses_share()
    answer_prompt = round(answer_prompt * (1 - refused))
    critique = _critique_usage(tally, count, c)
    multi_hop = _multi_hop_usage(tally, count, c, answer_tokens)
    prompt = question_prompt + answer_prompt + critique.prompt_tokens + multi_hop.prompt_tokens
    completion = (
        questions * _QUESTION_TOKENS
        + round(questions * (1 - refused)) * answer_tokens
        + critique.completion_tokens
        + multi_hop.completion_tokens
    )
    # Re-asks (one question each) resend its prompt, the rejected answer and the feedback.
    extra = c.max_answer_attempts - 1
    single_prompt = n * sum(tally.single_prompt[:count])
    prompt_max = (
        question_prompt
        + answer_prompt
        + single_prompt * extra
        + questions * answer_tokens * (extra * (extra + 1) // 2)
        + critique.prompt_tokens
        + multi_hop.prompt_tokens
    )
    completion_max = (
        questions * _QUESTION_TOKENS
        + questions * answer_tokens * (1 + extra)
        + critique.completion_tokens
        + multi_hop.completion_tokens
    )
    embedding_tokens = sum(tally.embedding[:count])
    # Vision: at most one call per PDF page (fewer with vision_pages="tables").
    vision_calls = pages if c.vision_model is not None else 0
    vision_usage = Usage(
        prompt_tokens=vision_calls * _VISION_PROMPT_TOKENS,
        completion_tokens=vision_calls * _VISION_PAGE_TOKENS,
    )

    judge = c.critique.model

    def dollars(p: int, q: int) -> float | None:
        if judge is not None and judge != c.teacher_model:
            # the judge's tokens at the judge's price
            p, q = p - critique.prompt_tokens, q - critique.completion_tokens
        cost = prices.cost(
            c.teacher_model, Usage(prompt_tokens=p, completion_tokens=q), kind="chat"
        )
        if cost is not None and judge is not None and judge != c.teacher_model:
            judged = prices.cost(judge, critique, kind="chat")
            cost = None if judged is None else cost + judged
        if cost is not None and c.vision_model is not None:
            seen = prices.cost(c.vision_model, vision_usage, kind="chat")
            cost = None if seen is None else cost + seen
        if cost is not None and embedding_tokens:
            emb = prices.cost(
                c.embedding_model, Usage(prompt_tokens=embedding_tokens), kind="embedding"
            )
            cost = None if emb is None else cost + emb
        return cost

    answered = round(questions * (1 - refused))
    critique_calls = count if c.critique.mode == "judge" else 0
    multi_hop_calls = 2 * _multi_hop_count(count, c)
    return CostEstimate(
        documents=len(documents),
        pages=pages,
        chunks=count,
        questions=questions,
        # answers_per_call questions share a call (fewer when some refuse without one)
        teacher_calls_min=count
        + min(answered, count * len(_groups(c)))
        + critique_calls
        + multi_hop_calls,
        teacher_calls_max=count
        + answered * c.max_answer_attempts
        + critique_calls
        + multi_hop_calls * c.max_answer_attempts,
        critique_calls=critique_calls,
        multi_hop_calls=multi_hop_calls,
        vision_calls_max=vision_calls,
        prompt_tokens=prompt + vision_usage.prompt_tokens,
        completion_tokens=completion + vision_usage.completion_tokens,
        embedding_tokens=embedding_tokens,
        cost_usd=dollars(prompt, completion),
        cost_usd_max=dollars(prompt_max, completion_max),
        price_note=_price_note(prices, c),
    )


def _groups(c: RaftConfig) -> list[int]:
    """Sizes of a chunk's answer calls: ``answers_per_call`` questions each, the rest last."""
    n, k = c.questions_per_chunk, c.answers_per_call
    return [min(k, n - start) for start in range(0, n, k)]


def _answer_prompt(chunk: str, questions: int, prompts: Prompts) -> list[ChatMessage]:
    if questions == 1:
        return answer_messages("?" * 20, [chunk], prompts)
    return answers_messages(["?" * 20] * questions, [chunk], prompts)


def _price_note(prices: PriceTable, config: RaftConfig) -> str:
    notes = [f"Prices as of {prices.as_of}." if prices.as_of else "", "Token counts are estimates."]
    if config.chunker == "semantic":
        notes.append("Semantic chunks are estimated as token windows of the same size.")
    return " ".join(n for n in notes if n)


def _critique_prompt(text: str, c: RaftConfig, prompts: Prompts) -> int:
    """The judge call's prompt for one chunk: over its first ``n`` sentences (about what the
    excerpts hold) or the whole chunk, and ``n`` questions."""
    if c.critique.mode != "judge":
        return 0
    n = c.questions_per_chunk
    model = c.critique.model or c.teacher_model
    shown = judge_context(text, n, c.critique.context)
    questions = ["?" * _QUESTION_TOKENS] * n
    return count_message_tokens(critique_messages(shown, questions, prompts), model)


def _pair_prompt(previous: str | None, text: str, c: RaftConfig, prompts: Prompts) -> int:
    """A multi-hop question's two calls (the question, the answer) over two chunks, estimated
    with each chunk paired with the one before it."""
    if previous is None or not c.multi_hop:
        return 0
    texts = [previous, text]
    question = count_message_tokens(
        question_messages("\n".join(texts), 1, prompts), c.teacher_model
    )
    return question + count_message_tokens(
        answer_messages("?" * 20, texts, prompts), c.teacher_model
    )


def _critique_usage(tally: _Tally, count: int, c: RaftConfig) -> Usage:
    """The judge calls of the first ``count`` chunks: one per chunk."""
    if c.critique.mode != "judge":
        return Usage()
    return Usage(
        prompt_tokens=sum(tally.critique_prompt[:count]),
        completion_tokens=count * (12 + 4 * c.questions_per_chunk),
    )


def _multi_hop_count(count: int, c: RaftConfig) -> int:
    return round(c.multi_hop * count) if count > 1 else 0


def _multi_hop_usage(tally: _Tally, count: int, c: RaftConfig, answer_tokens: int) -> Usage:
    """Per multi-hop question: a call that sees two chunks and an answer call over both."""
    pairs = _multi_hop_count(count, c)
    if not pairs:
        return Usage()
    per_pair = sum(tally.pair_prompt[1:count]) / max(1, count - 1)
    return Usage(
        prompt_tokens=round(per_pair * pairs),
        completion_tokens=pairs * (_QUESTION_TOKENS + answer_tokens),
    )

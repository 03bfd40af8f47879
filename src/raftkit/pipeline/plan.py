"""The dry run: what a generation run would ask of the teacher, and cost, before paying."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

from raftkit.chunking import AsyncChunker, Chunker, chunk_document
from raftkit.extract import Extractor, iter_documents
from raftkit.llm.tokens import count_message_tokens, estimate_tokens
from raftkit.llm.usage import PriceTable
from raftkit.pipeline.config import RaftConfig, default_chunker
from raftkit.pipeline.plugins import run_extractors
from raftkit.run_report import CostEstimate
from raftkit.synth import Prompts
from raftkit.synth.critique import critique_messages, judge_context
from raftkit.synth.prompts import answer_messages, question_messages
from raftkit.types import Chunk, Usage

__all__ = ["estimate_cost"]

# Estimates for the dry run: a question is short; an answer is a paragraph of reasoning.
_QUESTION_TOKENS = 30
_ANSWER_TOKENS = 350
# A page image (high detail, about 1024 px) plus the instruction; a page of Markdown back.
_VISION_PROMPT_TOKENS = 1_000
_VISION_PAGE_TOKENS = 800


async def estimate_cost(
    source: str | os.PathLike[str],
    config: RaftConfig | None = None,
    *,
    chunker: Chunker | AsyncChunker | None = None,
    prompts: Prompts | None = None,
    prices: PriceTable | None = None,
    extractors: Sequence[Extractor] | None = None,
) -> CostEstimate:
    """Extract and chunk ``source`` and forecast the teacher calls, tokens and $ of a run.

    Pays for nothing and needs no credentials: this is ``raftkit generate --dry-run``.
    ``extractors`` are those of the run (the built-in ones unless given).
    """
    c = config if config is not None else RaftConfig()
    chunker = chunker if chunker is not None else default_chunker(c)
    prompts = prompts if prompts is not None else Prompts()
    prices = prices if prices is not None else PriceTable()
    chunks: list[Chunk] = []
    walk = iter_documents(source, extractors=run_extractors(c, extractors))
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
    # Refusals are written without a call: (1 - p) of the answers, times the refusing share.
    refused = (1 - c.oracle_probability) * c.no_oracle_answer.refuses_share()
    answer_prompt = round(answer_prompt * (1 - refused))
    critique = _critique_usage(chunks, c, prompts)
    multi_hop = _multi_hop_usage(chunks, c, prompts, answer_tokens)
    prompt = question_prompt + answer_prompt + critique.prompt_tokens + multi_hop.prompt_tokens
    completion = (
        questions * _QUESTION_TOKENS
        + round(questions * (1 - refused)) * answer_tokens
        + critique.completion_tokens
        + multi_hop.completion_tokens
    )
    # Re-asks resend the whole conversation plus the rejected answer.
    extra = c.max_answer_attempts - 1
    prompt_max = (
        question_prompt
        + answer_prompt * (1 + extra)
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
    embedded = c.sampler == "embedding" or c.chunker == "semantic"
    embedding_tokens = sum(estimate_tokens(ch.text) for ch in chunks) if embedded else 0
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
    critique_calls = len(chunks) if c.critique.mode == "judge" else 0
    multi_hop_calls = 2 * _multi_hop_count(chunks, c)
    return CostEstimate(
        documents=walk.report.documents,
        pages=pages,
        chunks=len(chunks),
        questions=questions,
        teacher_calls_min=len(chunks) + answered + critique_calls + multi_hop_calls,
        teacher_calls_max=len(chunks)
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
        extraction_errors=[str(e) for e in walk.report.errors],
    )


def _price_note(prices: PriceTable, config: RaftConfig) -> str:
    notes = [f"Prices as of {prices.as_of}." if prices.as_of else "", "Token counts are estimates."]
    if config.chunker == "semantic":
        notes.append("Semantic chunks are estimated as token windows of the same size.")
    return " ".join(n for n in notes if n)


def _critique_usage(chunks: Sequence[Chunk], c: RaftConfig, prompts: Prompts) -> Usage:
    """The judge calls: one per chunk, over its first ``n`` sentences (about what the excerpts
    hold) or the whole chunk, and ``n`` questions."""
    if c.critique.mode != "judge":
        return Usage()
    n = c.questions_per_chunk
    model = c.critique.model or c.teacher_model
    questions = ["?" * _QUESTION_TOKENS] * n
    prompt = 0
    for chunk in chunks:
        shown = judge_context(chunk.text, n, c.critique.context)
        prompt += count_message_tokens(critique_messages(shown, questions, prompts), model)
    return Usage(prompt_tokens=prompt, completion_tokens=len(chunks) * (12 + 4 * n))


def _multi_hop_count(chunks: Sequence[Chunk], c: RaftConfig) -> int:
    return round(c.multi_hop * len(chunks)) if len(chunks) > 1 else 0


def _multi_hop_usage(
    chunks: Sequence[Chunk], c: RaftConfig, prompts: Prompts, answer_tokens: int
) -> Usage:
    """Per multi-hop question: a call that sees two chunks and an answer call over both
    (estimated with each chunk paired with the next)."""
    count = _multi_hop_count(chunks, c)
    if not count:
        return Usage()
    prompt = 0
    for first, second in itertools.pairwise(chunks):
        texts = [first.text, second.text]
        prompt += count_message_tokens(
            question_messages("\n".join(texts), 1, prompts), c.teacher_model
        )
        prompt += count_message_tokens(answer_messages("?" * 20, texts, prompts), c.teacher_model)
    per_pair = prompt / max(1, len(chunks) - 1)
    return Usage(
        prompt_tokens=round(per_pair * count),
        completion_tokens=count * (_QUESTION_TOKENS + answer_tokens),
    )

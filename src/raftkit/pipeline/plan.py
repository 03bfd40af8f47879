"""The dry run: what a generation run would ask of the teacher, and cost, before paying."""

from __future__ import annotations

import os
from collections.abc import Sequence

from raftkit.chunking import AsyncChunker, Chunker, chunk_document
from raftkit.extract import Extractor, iter_documents
from raftkit.llm import ChatMessage
from raftkit.llm.tokens import count_message_tokens, estimate_tokens
from raftkit.llm.usage import PriceTable
from raftkit.pipeline.config import RaftConfig, default_chunker
from raftkit.pipeline.plugins import run_extractors
from raftkit.run_report import CostEstimate
from raftkit.synth import Prompts
from raftkit.synth.prompts import answer_messages, answers_messages, question_messages
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
    # answers_per_call questions of a chunk share one answer call (and its prompt)
    groups = [min(c.answers_per_call, n - start) for start in range(0, n, c.answers_per_call)]
    answer_prompt = sum(
        count_message_tokens(_answer_prompt(ch.text, size, prompts), c.teacher_model)
        for ch in chunks
        for size in groups
    )
    answer_tokens = c.answer_max_tokens or _ANSWER_TOKENS
    questions = n * len(chunks)
    prompt = question_prompt + answer_prompt
    completion = questions * _QUESTION_TOKENS + questions * answer_tokens
    # Re-asks (one question each) resend its prompt, the rejected answer and the feedback.
    extra = c.max_answer_attempts - 1
    single_prompt = n * sum(
        count_message_tokens(_answer_prompt(ch.text, 1, prompts), c.teacher_model) for ch in chunks
    )
    prompt_max = (
        question_prompt
        + answer_prompt
        + single_prompt * extra
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
        teacher_calls_min=len(chunks) * (1 + len(groups)),
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


def _answer_prompt(chunk: str, questions: int, prompts: Prompts) -> list[ChatMessage]:
    if questions == 1:
        return answer_messages("?" * 20, [chunk], prompts)
    return answers_messages(["?" * 20] * questions, [chunk], prompts)


def _price_note(prices: PriceTable, config: RaftConfig) -> str:
    notes = [f"Prices as of {prices.as_of}." if prices.as_of else "", "Token counts are estimates."]
    if config.chunker == "semantic":
        notes.append("Semantic chunks are estimated as token windows of the same size.")
    return " ".join(n for n in notes if n)

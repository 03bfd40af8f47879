"""The settings of a generation run, its progress report, and the chunker they name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from raftkit.chunking import AsyncChunker, Chunker, MarkdownChunker, SemanticChunker, TokenChunker
from raftkit.llm import LLMClient
from raftkit.llm.caps import CapPolicy
from raftkit.reference_data import default_models
from raftkit.synth import AbstentionRules, CritiqueRules, DedupRules, QuestionMix, VerifyRules

__all__ = ["Progress", "RaftConfig", "default_chunker"]


class RaftConfig(BaseModel):
    """Settings of a generation run.

    Everything but :attr:`concurrency` shapes the data and is recorded in the run directory:
    resuming with other values is refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    teacher_model: str = Field(
        default_factory=lambda: default_models().teacher,
        description="default: the teacher of raftkit/data/defaults.toml",
    )
    questions_per_chunk: int = Field(5, ge=1)
    distractors: int = Field(4, ge=0, description="k: distractor documents beside the oracle")
    oracle_probability: float = Field(0.8, ge=0.0, le=1.0, description="p, 0.8 as in the paper")
    sampler: Literal["uniform", "embedding", "bm25"] = "uniform"
    embedding_model: str = Field(default_factory=lambda: default_models().embedding)
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
    answers_per_call: int = Field(
        1, ge=1, le=20, description="questions of a chunk one teacher call answers (K)"
    )
    answer_max_tokens: int | None = Field(
        None, ge=1, description="pinned cap on each teacher answer; None: learned (or server's)"
    )
    question_max_tokens: int | None = Field(
        None, ge=1, description="pinned cap on each question-list reply; None: learned"
    )
    max_tokens_policy: CapPolicy = Field(
        "adaptive",
        description="adaptive: a learned max_tokens on every call; server-default: none sent",
    )
    verification: VerifyRules = Field(
        default_factory=VerifyRules, description="the answer verifier's thresholds"
    )
    critique: CritiqueRules = Field(
        default_factory=CritiqueRules, description="question filters and the judge call"
    )
    dedup: DedupRules = Field(
        default_factory=DedupRules, description="near-duplicate questions and chunks"
    )
    no_oracle_answer: AbstentionRules = Field(
        default_factory=AbstentionRules,
        description="what examples whose context lacks the oracle say: the paper's answer or a "
        "refusal",
    )
    multi_hop: float = Field(
        0.0, ge=0.0, le=1.0, description="share of chunks that also get a two-chunk question"
    )
    question_mix: QuestionMix | None = Field(
        None, description="question types and their shares, optional personas; None: untyped"
    )
    concurrency: int = Field(16, ge=1, description="chunks in flight; does not change the data")

    def data_settings(self) -> dict[str, Any]:
        """The settings that shape the data (what a resumed run must share).

        ``max_tokens_policy`` is left out with ``concurrency``: caps are not part of the
        journal's keys, so a run resumed under the other policy replays what was paid for.
        """
        return self.model_dump(exclude={"concurrency", "max_tokens_policy"})


@dataclass(frozen=True)
class Progress:
    """Passed to the progress callback after every chunk."""

    chunks_done: int
    chunks_total: int
    questions: int
    examples: int
    rejected: int


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

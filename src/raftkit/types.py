"""The records that flow between raftkit's stages.

Every stage hands the next one of these pydantic models, and every file raftkit writes is a
JSON line of one of them, so a run directory can be read back with ``Model.model_validate_json``.
This module imports nothing else of raftkit (floor 1 of the design guide).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_REFUSAL_ANSWER",
    "Chunk",
    "ContextDocument",
    "Document",
    "PageSpan",
    "Question",
    "RaftExample",
    "Usage",
]


#: The final answer (after ``<ANSWER>:``) of an abstention: what a RAFT example whose context
#: lacks the oracle says when it is written to refuse, and what evaluation recognises as a
#: refusal (after normalisation; configurable on both sides). One constant for generation and
#: evaluation, so the two cannot drift apart.
DEFAULT_REFUSAL_ANSWER = "I cannot answer this from the given documents."


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PageSpan(_Record):
    """Where one page of the source lies in :attr:`Document.text` (``text[start:end]``)."""

    page: int = Field(ge=1, description="1-based page number in the source file")
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Document(_Record):
    """The text of one source file, as an :class:`~raftkit.extract.Extractor` produced it."""

    id: str = Field(description="stable id: derived from the path relative to the walked root")
    source: str = Field(description="path of the file the text came from")
    text: str
    pages: list[PageSpan] = Field(default_factory=list, description="empty for unpaged formats")
    metadata: dict[str, str] = Field(default_factory=dict)

    def page_of(self, offset: int) -> int | None:
        """The page holding character ``offset`` of :attr:`text`, or ``None`` if unpaged."""
        for span in self.pages:
            if span.start <= offset < span.end:
                return span.page
        if self.pages and offset >= self.pages[-1].end:
            return self.pages[-1].page
        return None


class Chunk(_Record):
    """A piece of a document small enough to be one retrieval unit and one oracle."""

    id: str = Field(description="stable id, unique within a run: '<document id>#<index>'")
    document_id: str
    index: int = Field(ge=0, description="position of the chunk within its document")
    text: str
    start: int = Field(ge=0, description="offset of the chunk's first character in Document.text")
    end: int = Field(ge=0, description="offset one past the chunk's last character")
    page_start: int | None = None
    page_end: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class Question(_Record):
    """A question synthesized from one chunk; that chunk is its oracle."""

    id: str
    chunk_id: str
    text: str
    question_type: str | None = Field(
        None, description="the kind of question asked (factoid, explanation, …) when set"
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="how it was asked (e.g. the persona), when set"
    )


class ContextDocument(_Record):
    """One document shown to the model beside a question: the oracle or a distractor."""

    chunk_id: str
    position: int = Field(ge=0, description="0-based position in the prompt")
    is_oracle: bool
    title: str = Field(default="", description="document title shown to the model, may be empty")
    text: str


class Usage(_Record):
    """Tokens a call (or a sum of calls) consumed, as the API reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


class RaftExample(_Record):
    """One RAFT training example: a question, its context documents and the teacher's answer."""

    id: str
    question_id: str
    question: str
    chunk_id: str = Field(description="the oracle chunk the question was written from")
    document_id: str = Field(description="the document the oracle chunk belongs to")
    documents: list[ContextDocument]
    oracle_present: bool
    cot_answer: str = Field(description="reasoning with ##begin_quote## quotes, ending <ANSWER>:")
    final_answer: str
    quotes: list[str] = Field(default_factory=list)
    teacher_model: str = ""
    usage: Usage = Field(default_factory=Usage)
    question_type: str | None = Field(
        None, description="the kind of question asked (factoid, explanation, …) when set"
    )
    answer_kind: Literal["answer", "refusal"] = Field(
        "answer",
        description="refusal: the context lacks the oracle and the teacher wrote an abstention",
    )
    split: Literal["train", "validation", "test"] | None = None
    split_group: str | None = Field(
        None,
        description="the split keeps examples sharing this key on one side (near-duplicate or "
        "multi-hop chunks); None: the oracle chunk alone",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def oracle(self) -> ContextDocument | None:
        return next((d for d in self.documents if d.is_oracle), None)

from __future__ import annotations

from raftkit.types import ContextDocument, Document, PageSpan, RaftExample, Usage


def test_usage_adds() -> None:
    total = Usage(prompt_tokens=3, completion_tokens=2) + Usage(prompt_tokens=1, cached_tokens=1)
    assert (total.prompt_tokens, total.completion_tokens, total.cached_tokens) == (4, 2, 1)
    assert total.total_tokens == 6


def test_page_of_offsets() -> None:
    doc = Document(
        id="d",
        source="d.pdf",
        text="aaabbb",
        pages=[PageSpan(page=1, start=0, end=3), PageSpan(page=2, start=3, end=6)],
    )
    assert [doc.page_of(i) for i in (0, 2, 3, 5, 9)] == [1, 1, 2, 2, 2]
    assert Document(id="t", source="t.txt", text="x").page_of(0) is None


def test_example_roundtrips_as_json() -> None:
    example = RaftExample(
        id="e1",
        question_id="q1",
        question="蝙蝠会飞吗？",
        chunk_id="d#0",
        document_id="d",
        documents=[ContextDocument(chunk_id="d#0", position=0, is_oracle=True, text="蝙蝠会飞。")],
        oracle_present=True,
        cot_answer="##begin_quote##蝙蝠会飞。##end_quote## <ANSWER>: 会",
        final_answer="会",
        quotes=["蝙蝠会飞。"],
    )
    again = RaftExample.model_validate_json(example.model_dump_json())
    assert again == example
    assert again.oracle is not None
    assert again.oracle.chunk_id == "d#0"

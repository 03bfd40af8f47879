"""Split groups: examples whose chunks share text, or feed one multi-hop question, stay on one
side of the split, by chunk and by document, whatever order they come in."""

from __future__ import annotations

import random

import pytest

from raftkit.dataset import split_examples
from raftkit.types import RaftExample


def example(
    n: int, chunk: str, document: str, group: str | None = None, **metadata: object
) -> RaftExample:
    return RaftExample(
        id=f"e{n:03d}",
        question_id=f"q{n:03d}",
        question="Q?",
        chunk_id=chunk,
        document_id=document,
        documents=[],
        oracle_present=False,
        cot_answer="<ANSWER>: A",
        final_answer="A",
        split_group=group,
        metadata=dict(metadata),
    )


def corpus() -> list[RaftExample]:
    examples = []
    n = 0
    for d in range(30):
        for c in range(2):
            for _ in range(3):
                examples.append(example(n, f"d{d}#{c}", f"d{d}"))
                n += 1
    # d0#1 and d7#0 hold the same paragraph; d3#0 and d9#1 feed a multi-hop question
    examples += [example(n + i, "d0#1", "d0", "d0#1") for i in range(3)]
    examples += [example(n + 3 + i, "d7#0", "d7", "d0#1") for i in range(3)]
    examples.append(
        example(
            n + 6,
            "d3#0",
            "d3",
            "d3#0",
            oracle_document_ids=["d3", "d9"],
            oracle_chunk_ids=["d3#0", "d9#1"],
        )
    )
    examples.append(example(n + 7, "d9#1", "d9", "d3#0"))
    return examples


def side(split: object, chunk: str) -> set[str | None]:
    parts = [*split.train, *split.validation, *split.test]  # type: ignore[attr-defined]
    return {e.split for e in parts if e.chunk_id == chunk and e.split_group is not None}


@pytest.mark.parametrize("seed", range(6))
def test_a_split_group_stays_on_one_side_by_chunk(seed: int) -> None:
    split = split_examples(corpus(), ratios=(0.4, 0.3, 0.3), seed=seed)
    assert len(side(split, "d0#1") | side(split, "d7#0")) == 1
    assert len(side(split, "d3#0") | side(split, "d9#1")) == 1


@pytest.mark.parametrize("seed", range(6))
def test_documents_joined_by_a_group_or_a_multi_hop_example_stay_together(seed: int) -> None:
    split = split_examples(corpus(), ratios=(0.4, 0.3, 0.3), seed=seed, group_by="document")
    where: dict[str, set[str | None]] = {}
    for e in [*split.train, *split.validation, *split.test]:
        where.setdefault(e.document_id, set()).add(e.split)
    assert all(len(parts) == 1 for parts in where.values())
    assert where["d0"] == where["d7"]
    assert where["d3"] == where["d9"]


def test_the_split_ignores_the_order_examples_come_in() -> None:
    examples = corpus()
    shuffled = examples[:]
    random.Random(5).shuffle(shuffled)
    for group_by in ("chunk", "document"):
        a = split_examples(examples, seed=3, group_by=group_by)
        b = split_examples(shuffled, seed=3, group_by=group_by)
        assert [e.id for e in a.test] == [e.id for e in b.test]
        assert [e.id for e in a.train] == [e.id for e in b.train]


def test_examples_without_a_group_split_as_before() -> None:
    plain = [e for e in corpus() if e.split_group is None and not e.metadata]
    split = split_examples(plain, seed=1)
    by_chunk: dict[str, set[str | None]] = {}
    for e in [*split.train, *split.validation, *split.test]:
        by_chunk.setdefault(e.chunk_id, set()).add(e.split)
    assert all(len(parts) == 1 for parts in by_chunk.values())
    assert split.group_counts == (
        len({e.chunk_id for e in split.train}),
        len({e.chunk_id for e in split.validation}),
        len({e.chunk_id for e in split.test}),
    )

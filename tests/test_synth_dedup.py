"""De-duplication: question keys, the first in corpus order whatever order chunks finish in,
embedding similarity, and chunks that share text."""

from __future__ import annotations

import anyio
import numpy as np
import numpy.typing as npt
import pytest

from raftkit.grouped_split import connected_groups
from raftkit.synth import (
    DedupRules,
    QuestionDeduplicator,
    duplicate_chunk_groups,
    duplicate_chunk_links,
    question_key,
)
from raftkit.types import Chunk, Question

pytestmark = pytest.mark.anyio


def q(text: str, chunk: int) -> Question:
    return Question(id=f"q-{chunk}-{text}", chunk_id=f"doc#{chunk}", text=text)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("What's the capital of France?", "What is the capital of France"),
        ("WHAT IS THE CAPITAL OF FRANCE？", "what is the capital of france?"),
        ("Which bats drink blood?", "Which bat drinks blood?"),
        ("什么是蝙蝠？", "什么是蝙蝠?"),
    ],
)
def test_question_keys_ignore_case_width_punctuation_and_function_words(
    left: str, right: str
) -> None:
    assert question_key(left) == question_key(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("When was Everest first climbed?", "Where was Everest first climbed?"),
        ("What is the capital of France?", "Is Paris the capital of France?"),
        ("What is the main point?", "What is the main goal?"),
    ],
)
def test_question_keys_keep_what_changes_the_question(left: str, right: str) -> None:
    assert question_key(left) != question_key(right)


async def test_the_first_in_corpus_order_is_kept_whatever_order_chunks_finish_in(
    anyio_backend: str,
) -> None:
    dedup = QuestionDeduplicator()
    asked = {
        0: [q("What is a bat?", 0)],
        1: [q("What is a Bat?", 1), q("Where do bats roost?", 1)],
        2: [q("Where do bats roost", 2), q("What is a bat?", 2)],
    }
    results: dict[int, tuple[list[str], list[str]]] = {}

    async def chunk(index: int, delay: float) -> None:
        async with dedup.turn(index) as turn:
            await anyio.sleep(delay)  # the later chunks are ready first
            kept, dropped = await turn.admit(asked[index])
        results[index] = ([x.text for x in kept], [d.first.id for d in dropped])

    async with anyio.create_task_group() as tg:
        tg.start_soon(chunk, 0, 0.05)
        tg.start_soon(chunk, 1, 0.02)
        tg.start_soon(chunk, 2, 0.0)
    assert results == {
        0: (["What is a bat?"], []),
        1: (["Where do bats roost?"], ["q-0-What is a bat?"]),
        2: ([], ["q-1-Where do bats roost?", "q-0-What is a bat?"]),
    }


async def test_a_chunk_that_fails_before_admitting_lets_the_others_through(
    anyio_backend: str,
) -> None:
    dedup = QuestionDeduplicator()
    with pytest.raises(RuntimeError):
        async with dedup.turn(0):
            raise RuntimeError("the teacher was unreachable")
    with anyio.fail_after(2):
        async with dedup.turn(1) as turn:
            kept, dropped = await turn.admit([q("What is a bat?", 1)])
    assert [x.text for x in kept] == ["What is a bat?"]
    assert dropped == []


async def test_turned_off_it_keeps_everything_without_waiting(anyio_backend: str) -> None:
    dedup = QuestionDeduplicator(DedupRules(questions=False))
    with anyio.fail_after(2):
        async with dedup.turn(5) as turn:  # chunks 0-4 never came: no wait when off
            kept, dropped = await turn.admit([q("a?", 5), q("a?", 5)])
    assert len(kept) == 2
    assert dropped == []


async def test_embedding_similarity_drops_paraphrases(anyio_backend: str) -> None:
    meaning = {
        "How do bats find insects in the dark?": [1.0, 0.0, 0.0],
        "By what means do bats locate prey at night?": [0.98, 0.2, 0.0],
        "What do vampire bats eat?": [0.0, 1.0, 0.0],
    }
    calls: list[list[str]] = []

    async def embed(texts: list[str]) -> npt.NDArray[np.float32]:
        calls.append(texts)
        return np.array([meaning[t] for t in texts], dtype=np.float32)

    dedup = QuestionDeduplicator(DedupRules(similarity=0.95), embed=embed)
    async with dedup.turn(0) as turn:
        _first, _ = await turn.admit([q("How do bats find insects in the dark?", 0)])
    async with dedup.turn(1) as turn:
        kept, dropped = await turn.admit(
            [q("By what means do bats locate prey at night?", 1), q("What do vampire bats eat?", 1)]
        )
    assert [x.text for x in kept] == ["What do vampire bats eat?"]
    assert len(dropped) == 1
    assert dropped[0].first.text == "How do bats find insects in the dark?"
    assert dropped[0].similarity is not None
    assert dropped[0].similarity >= 0.95
    assert dedup.embedding_calls == len(calls) == 2
    # without a threshold the embedder is never called
    plain = QuestionDeduplicator(DedupRules(), embed=embed)
    async with plain.turn(0) as turn:
        await turn.admit([q("What do vampire bats eat?", 0)])
    assert len(calls) == 2


PARAGRAPH = (
    "The common vampire bat feeds on the blood of cattle and horses at night. It finds its "
    "prey by smell and sound, and heat sensors on its nose show where blood flows near the "
    "skin. A bat drinks about half its weight in blood each night."
)


def chunk(document: str, index: int, text: str) -> Chunk:
    return Chunk(
        id=f"{document}#{index}",
        document_id=document,
        index=index,
        text=text,
        start=0,
        end=len(text),
    )


def test_the_same_paragraph_in_two_documents_makes_one_group() -> None:
    chunks = [
        chunk("a.md", 0, "Bats are mammals that fly with wings made of skin and long fingers."),
        chunk("a.md", 1, PARAGRAPH),
        chunk("b.md", 0, "Cattle farmers in Brazil report losses to bats every year in spring."),
        chunk("b.md", 1, "Intro sentence of another page here. " + PARAGRAPH),
        chunk("c.md", 0, "Surfing is riding a wave standing on a board, mostly in the ocean."),
    ]
    assert duplicate_chunk_links(chunks) == [("a.md#1", "b.md#1")]
    assert duplicate_chunk_groups(chunks) == {"a.md#1": "a.md#1", "b.md#1": "a.md#1"}
    assert duplicate_chunk_groups(chunks, min_overlap=0) == {}


def test_neighbours_sharing_their_overlap_and_boilerplate_link_nothing() -> None:
    licence = "This article is licensed under the Creative Commons Attribution Share-Alike."
    words = [f"word{i}" for i in range(40)]
    first = " ".join(words[:20]) + ". " + " ".join(words[20:30]) + "."
    second = " ".join(words[20:30]) + ". " + " ".join(words[30:]) + "."
    chunks = [chunk("a.md", 0, first), chunk("a.md", 1, second)]
    chunks += [
        chunk(f"doc{i}.md", 0, f"Page {i} talks about topic number {i} alone. {licence}")
        for i in range(25)
    ]
    assert duplicate_chunk_links(chunks) == []


def test_extra_links_join_groups_named_by_their_first_chunk() -> None:
    chunks = [chunk("a.md", i, f"Sentence about subject {i} alone here.") for i in range(4)]
    groups = duplicate_chunk_groups(chunks, links=[("a.md#3", "a.md#1")])
    assert groups == {"a.md#1": "a.md#1", "a.md#3": "a.md#1"}


def test_connected_groups_name_each_group_by_its_first_member() -> None:
    groups = connected_groups(["c", "a", "b", "d"], [("b", "d"), ("d", "a"), ("x", "y")])
    assert groups == {"c": "c", "a": "a", "b": "a", "d": "a", "x": "x", "y": "x"}
    # the order of the links does not matter
    again = connected_groups(["c", "a", "b", "d"], [("x", "y"), ("a", "d"), ("d", "b")])
    assert again == groups

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pymupdf
import pytest

from data_files import CORPUS
from raftkit.errors import UsageError
from raftkit.synth import (
    BM25Sampler,
    DistractorSampler,
    EmbeddingSampler,
    UniformSampler,
    build_context,
    question_rng,
)
from raftkit.types import Chunk, ContextDocument, Question

pytestmark = pytest.mark.anyio

# pymupdf has no type hints
PDF: Any = pymupdf


def chunk(i: int, text: str, doc: str = "d") -> Chunk:
    return Chunk(id=f"{doc}#{i}", document_id=doc, index=i, text=text, start=0, end=len(text))


def question_for(oracle: Chunk, text: str = "What is it?") -> Question:
    return Question(id=f"q-{oracle.id}", chunk_id=oracle.id, text=text)


def plain_corpus(n: int) -> list[Chunk]:
    return [chunk(i, f"Paragraph number {i} talks about topic {i % 7}.") for i in range(n)]


def ids(chunks: list[Chunk]) -> list[str]:
    return [c.id for c in chunks]


# ---------------------------------------------------------------- seeding


def test_question_rng_depends_on_seed_and_question_only() -> None:
    def draws(seed: int, qid: str) -> list[float]:
        return [float(x) for x in question_rng(seed, qid).random(3)]

    assert draws(7, "q-a") == draws(7, "q-a")
    assert draws(7, "q-a") != draws(7, "q-b")
    assert draws(7, "q-a") != draws(8, "q-a")
    with pytest.raises(UsageError):
        question_rng(-1, "q-a")


async def test_contexts_do_not_depend_on_the_order_questions_are_handled() -> None:
    corpus = plain_corpus(30)
    sampler = UniformSampler(corpus)
    questions = [question_for(c) for c in corpus[:10]]

    async def run(order: list[int]) -> dict[str, list[str]]:
        out = {}
        for i in order:
            ctx = await build_context(
                questions[i], corpus[i], sampler, rng=question_rng(42, questions[i].id)
            )
            out[questions[i].id] = ids_of(ctx.documents)
        return out

    assert await run(list(range(10))) == await run(list(reversed(range(10))))


def ids_of(documents: Sequence[ContextDocument]) -> list[str]:
    return [d.chunk_id for d in documents]


# ---------------------------------------------------------------- uniform


async def test_uniform_is_reproducible_and_excludes_the_oracle() -> None:
    corpus = plain_corpus(50)
    oracle = corpus[3]
    q = question_for(oracle)
    first = await UniformSampler(corpus).sample(q, oracle, 4, np.random.default_rng(1))
    again = await UniformSampler(corpus).sample(q, oracle, 4, np.random.default_rng(1))
    assert ids(first) == ids(again)
    assert len(set(ids(first))) == 4
    seen: Counter[str] = Counter()
    sampler = UniformSampler(corpus)
    rng = np.random.default_rng(2)
    for _ in range(500):
        seen.update(ids(await sampler.sample(q, oracle, 4, rng)))
    assert oracle.id not in seen
    # every other chunk turns up: uniform over the rest, not a fixed few
    assert len(seen) == 49


async def test_uniform_excludes_copies_of_the_oracle_text() -> None:
    corpus = [
        chunk(0, "Bats are mammals."),
        chunk(1, "bats  are MAMMALS!"),
        chunk(2, "Dogs bark."),
        chunk(3, "Cats purr."),
    ]
    got = await UniformSampler(corpus).sample(
        question_for(corpus[0]), corpus[0], 3, np.random.default_rng(0)
    )
    assert sorted(ids(got)) == ["d#2", "d#3"]


async def test_uniform_with_a_corpus_smaller_than_k() -> None:
    corpus = plain_corpus(3)
    got = await UniformSampler(corpus).sample(
        question_for(corpus[0]), corpus[0], 4, np.random.default_rng(0)
    )
    assert sorted(ids(got)) == ["d#1", "d#2"]
    alone = [chunk(0, "only one")]
    assert (
        await UniformSampler(alone).sample(
            question_for(alone[0]), alone[0], 4, np.random.default_rng(0)
        )
        == []
    )


def test_duplicate_chunk_ids_are_refused() -> None:
    with pytest.raises(UsageError, match="duplicate"):
        UniformSampler([chunk(0, "a"), chunk(0, "b")])


# ---------------------------------------------------------------- embeddings


def graded_embeddings(n: int) -> np.ndarray:
    """Row 0 is the oracle; row 1 a near-copy (cos 0.99); row i >= 2 has falling similarity."""
    rows = [np.array([1.0, 0.0], dtype=np.float32)]
    angles = [np.arccos(0.99)] + [0.3 + 2.5 * i / n for i in range(n - 2)]
    rows += [
        np.array([np.cos(a), np.sin(a)], dtype=np.float32) * (1 + i) for i, a in enumerate(angles)
    ]
    return np.stack(rows)


async def test_embedding_top_k_excludes_oracle_and_near_duplicates() -> None:
    corpus = plain_corpus(12)
    sampler = EmbeddingSampler(corpus, graded_embeddings(12), pool_factor=1)
    got = await sampler.sample(question_for(corpus[0]), corpus[0], 4, np.random.default_rng(0))
    assert sorted(ids(got)) == ["d#2", "d#3", "d#4", "d#5"]


async def test_embedding_pool_is_random_but_reproducible() -> None:
    corpus = plain_corpus(30)
    sampler = EmbeddingSampler(corpus, graded_embeddings(30), pool_factor=2)
    q = question_for(corpus[0])
    a = await sampler.sample(q, corpus[0], 3, np.random.default_rng(5))
    b = await sampler.sample(q, corpus[0], 3, np.random.default_rng(5))
    assert ids(a) == ids(b)
    seen: set[str] = set()
    rng = np.random.default_rng(6)
    for _ in range(200):
        seen.update(ids(await sampler.sample(q, corpus[0], 3, rng)))
    # the pool is the best 6 eligible chunks: d#2 … d#7
    assert seen == {f"d#{i}" for i in range(2, 8)}


async def test_embedding_corpus_too_small() -> None:
    corpus = plain_corpus(3)
    sampler = EmbeddingSampler(corpus, graded_embeddings(3))
    got = await sampler.sample(question_for(corpus[0]), corpus[0], 4, np.random.default_rng(0))
    assert ids(got) == ["d#2"]  # d#1 is a near-duplicate of the oracle: one distractor left


def test_embedding_rejects_a_matrix_of_the_wrong_shape() -> None:
    with pytest.raises(UsageError, match="matrix"):
        EmbeddingSampler(plain_corpus(3), np.zeros((2, 4)))
    with pytest.raises(UsageError, match="NaN"):
        EmbeddingSampler(plain_corpus(2), np.array([[1.0, np.nan], [0.0, 1.0]]))


async def test_embedding_oracle_must_be_in_the_corpus() -> None:
    corpus = plain_corpus(3)
    sampler = EmbeddingSampler(corpus, graded_embeddings(3))
    stranger = chunk(99, "not indexed")
    with pytest.raises(UsageError, match="not in the sampler"):
        await sampler.sample(question_for(stranger), stranger, 2, np.random.default_rng(0))


# ---------------------------------------------------------------- BM25

ZH = [
    "吸血蝙蝠以血液为食，主要吸食牛和马的血。",
    "吸血蝙蝠在夜间捕食，它们用热感受器找到血管。",
    "果蝠主要吃水果和花蜜，对植物授粉很重要。",
    "冲浪是一项在海浪上滑行的运动。",
    "风筝冲浪结合了冲浪和滑翔伞的技巧。",
    "滑水板运动员被快艇拖着在水面上滑行。",
    "蝙蝠是唯一能够真正飞行的哺乳动物。",
]


async def test_bm25_ranks_chinese_text_by_character_bigrams() -> None:
    corpus = [chunk(i, t, "zh") for i, t in enumerate(ZH)]
    sampler = BM25Sampler(corpus, pool_factor=1)
    oracle = corpus[0]
    q = question_for(oracle, "吸血蝙蝠在什么时候捕食？")
    scores = sampler.scores(q.text)
    assert int(np.argmax(scores)) == 1
    assert scores[3] == 0.0  # surfing shares no bigram with the question
    got = await sampler.sample(q, oracle, 2, np.random.default_rng(0))
    assert set(ids(got)) == {"zh#1", "zh#6"}  # the other vampire-bat chunk, then "蝙蝠"


async def test_bm25_fills_with_uniform_picks_when_few_chunks_match() -> None:
    corpus = [chunk(i, t, "zh") for i, t in enumerate(ZH)]
    sampler = BM25Sampler(corpus)
    q = question_for(corpus[3], "果蝠吃什么？")
    got = await sampler.sample(q, corpus[3], 4, np.random.default_rng(0))
    assert len(set(ids(got))) == 4
    assert "zh#2" in ids(got)
    assert "zh#3" not in ids(got)


async def test_bm25_excludes_near_duplicates_of_the_oracle() -> None:
    texts = [
        "Vampire bats feed on the blood of cattle and horses at night.",
        "Vampire bats feed on the blood of cattle and horses at night!!",  # same normalised text
        "Vampire bats feed on the blood of cattle and horses at night time.",  # Jaccard 0.91
        "Vampire bats find blood vessels with heat sensors.",
        "Fruit bats eat fruit.",
        "Surfers ride waves.",
    ]
    corpus = [chunk(i, t) for i, t in enumerate(texts)]
    sampler = BM25Sampler(corpus, query="oracle", pool_factor=1)
    got = await sampler.sample(question_for(corpus[0]), corpus[0], 2, np.random.default_rng(0))
    assert sorted(ids(got)) == ["d#3", "d#4"]


def test_bm25_refuses_an_unknown_query_kind() -> None:
    with pytest.raises(UsageError):
        BM25Sampler(plain_corpus(2), query="title")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def wiki_chunks() -> list[Chunk]:
    out: list[Chunk] = []
    for folder, name in (
        ("bats", "Vampire bat"),
        ("surfing", "Foilboard"),
        ("surfing", "Wakeboarding"),
    ):
        with PDF.open(CORPUS / folder / f"{name} - Wikipedia.pdf") as pdf:
            text = " ".join(page.get_text() for page in pdf)
        words = text.split()
        for i in range(0, len(words), 120):
            out.append(chunk(i // 120, " ".join(words[i : i + 120]), name))
    return out


async def test_bm25_on_real_articles_finds_on_topic_distractors(wiki_chunks: list[Chunk]) -> None:
    sampler = await BM25Sampler.build(wiki_chunks, pool_factor=1)
    oracle = next(c for c in wiki_chunks if c.document_id == "Vampire bat" and "blood" in c.text)
    q = question_for(oracle, "What do vampire bats feed on?")
    got = await sampler.sample(q, oracle, 4, np.random.default_rng(0))
    assert len(got) == 4
    assert all(c.document_id == "Vampire bat" for c in got)
    assert oracle.id not in ids(got)


# ---------------------------------------------------------------- the context


@pytest.mark.parametrize("kind", ["uniform", "embedding", "bm25"])
async def test_context_keeps_the_oracle_with_probability_p(kind: str) -> None:
    corpus = plain_corpus(40)
    sampler: DistractorSampler
    if kind == "uniform":
        sampler = UniformSampler(corpus)
    elif kind == "embedding":
        sampler = EmbeddingSampler(corpus, np.random.default_rng(0).normal(size=(40, 8)))
    else:
        sampler = BM25Sampler(corpus)
    rng = np.random.default_rng(1234)
    present = 0
    positions: Counter[int] = Counter()
    # many draws where a draw is cheap; the hard samplers need fewer to show the same shape
    draws = 1200 if kind == "uniform" else 400
    for i in range(draws):
        oracle = corpus[i % 40]
        ctx = await build_context(question_for(oracle), oracle, sampler, k=4, p=0.8, rng=rng)
        assert len(ctx.documents) == 5
        assert [d.position for d in ctx.documents] == list(range(5))
        assert len(set(ids_of(ctx.documents))) == 5
        oracles = [d for d in ctx.documents if d.is_oracle]
        assert len(oracles) == int(ctx.oracle_present)
        assert ctx.distractors_requested == (4 if ctx.oracle_present else 5)
        assert not ctx.short
        if ctx.oracle_present:
            assert oracles[0].chunk_id == oracle.id
            positions[oracles[0].position] += 1
            present += 1
        else:
            assert oracle.id not in ids_of(ctx.documents)
    tolerance = 0.035 if kind == "uniform" else 0.06
    assert abs(present / draws - 0.8) < tolerance
    # shuffled: the oracle lands in every slot, none far more often than the others
    assert set(positions) == set(range(5))
    assert max(positions.values()) < 2 * min(positions.values())


async def test_context_is_reproducible() -> None:
    corpus = plain_corpus(20)
    sampler = UniformSampler(corpus)
    q = question_for(corpus[0])
    a = await build_context(q, corpus[0], sampler, rng=question_rng(3, q.id))
    b = await build_context(q, corpus[0], sampler, rng=question_rng(3, q.id))
    assert a == b


@pytest.mark.parametrize(("p", "expected"), [(0.0, False), (1.0, True)])
async def test_context_p_extremes(p: float, expected: bool) -> None:
    corpus = plain_corpus(10)
    sampler = UniformSampler(corpus)
    rng = np.random.default_rng(0)
    for oracle in corpus:
        ctx = await build_context(question_for(oracle), oracle, sampler, k=2, p=p, rng=rng)
        assert ctx.oracle_present is expected
        assert len(ctx.documents) == 3


async def test_context_from_a_tiny_corpus_is_short_but_valid() -> None:
    corpus = plain_corpus(3)
    ctx = await build_context(
        question_for(corpus[0]),
        corpus[0],
        UniformSampler(corpus),
        k=4,
        p=1.0,
        rng=np.random.default_rng(0),
    )
    assert ctx.short
    assert ctx.distractor_count == 2
    assert sorted(ids_of(ctx.documents)) == ["d#0", "d#1", "d#2"]
    alone = [chunk(0, "only")]
    ctx = await build_context(
        question_for(alone[0]),
        alone[0],
        UniformSampler(alone),
        p=0.0,
        rng=np.random.default_rng(0),
    )
    assert ctx.documents == []
    assert ctx.short


async def test_context_guards_against_a_sloppy_sampler() -> None:
    corpus = plain_corpus(6)

    class Sloppy:
        async def sample(
            self, question: Question, oracle: Chunk, k: int, rng: np.random.Generator
        ) -> list[Chunk]:
            return [oracle, corpus[1], corpus[1], *corpus[2:]]

    ctx = await build_context(
        question_for(corpus[0]), corpus[0], Sloppy(), k=2, p=1.0, rng=np.random.default_rng(0)
    )
    assert sorted(ids_of(ctx.documents)) == ["d#0", "d#1", "d#2"]
    assert sum(d.is_oracle for d in ctx.documents) == 1


async def test_context_titles_come_from_chunk_metadata() -> None:
    corpus = [
        Chunk(
            id=f"t#{i}",
            document_id="t",
            index=i,
            text=f"text {i}",
            start=0,
            end=6,
            metadata={"title": f"Title {i}"},
        )
        for i in range(3)
    ]
    ctx = await build_context(
        question_for(corpus[0]),
        corpus[0],
        UniformSampler(corpus),
        k=2,
        p=1.0,
        rng=np.random.default_rng(0),
    )
    assert {d.title for d in ctx.documents} == {"Title 0", "Title 1", "Title 2"}


async def test_context_rejects_bad_arguments() -> None:
    corpus = plain_corpus(3)
    with pytest.raises(UsageError):
        await build_context(
            question_for(corpus[0]),
            corpus[0],
            UniformSampler(corpus),
            p=1.5,
            rng=np.random.default_rng(0),
        )
    with pytest.raises(UsageError):
        await build_context(
            question_for(corpus[0]),
            corpus[0],
            UniformSampler(corpus),
            k=-1,
            rng=np.random.default_rng(0),
        )

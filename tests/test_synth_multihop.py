"""Multi-hop questions: pairing related chunks, writing the question, answering from both
oracles, and the context that keeps or drops both together."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from raftkit.errors import UsageError
from raftkit.llm import OpenAIClient
from raftkit.synth import (
    MULTI_HOP_TYPE,
    MultiHopQuestionWriter,
    MultiOracleAnswerGenerator,
    TeacherAnswerGenerator,
    UniformSampler,
    build_context,
    multi_hop_pairs,
    multi_hop_selected,
    oracle_kept,
    question_rng,
    verify_answer,
)
from raftkit.testing import Simulator
from raftkit.testing.scripted import ScriptedClient
from raftkit.types import Chunk, Question

pytestmark = pytest.mark.anyio


def chunk(document: str, index: int, text: str) -> Chunk:
    return Chunk(
        id=f"{document}#{index}", document_id=document, index=index, text=text, start=0, end=1
    )


CORPUS = [
    chunk("bats.md", 0, "The vampire bat lives in Mexico and Brazil. It feeds on blood at night."),
    chunk(
        "bats.md", 1, "Its saliva holds Draculin, named in Brazil, which stops blood from clotting."
    ),
    chunk(
        "caves.md",
        0,
        "The Cueva del Guácharo in Venezuela shelters oilbirds. Explorers mapped it in 1953.",
    ),
    chunk(
        "farms.md",
        0,
        "Ranchers in Mexico and Brazil lose cattle to rabies carried by the vampire bat each "
        "year, and Draculin is studied as a drug.",
    ),
    chunk("sea.md", 0, "Surfing began in Hawaii, where riders stood on long wooden boards."),
]


def test_the_share_of_chunks_drawn_is_seeded() -> None:
    ids = [f"doc#{i}" for i in range(3000)]
    drawn = [multi_hop_selected(0, i, 0.2) for i in ids]
    assert 0.17 < sum(drawn) / len(ids) < 0.23
    assert drawn == [multi_hop_selected(0, i, 0.2) for i in ids]
    assert not any(multi_hop_selected(0, i, 0.0) for i in ids)


def test_partners_share_rare_names_and_are_never_neighbours_or_the_same_text() -> None:
    pairs = multi_hop_pairs(CORPUS, share=1.0)
    # bats#0 and farms#0 share Mexico, Brazil; bats#1 and farms#0 Draculin, Brazil; bats#0 and
    # bats#1 are neighbours in one document; caves and sea share nothing rare
    assert pairs == {0: 3, 1: 3}
    assert 2 not in pairs
    assert 4 not in pairs
    # a pair is asked once, by its first chunk
    assert (3, 0) not in pairs.items()
    # chunks sharing their text are never partners
    same_text = {"bats.md#0": "bats.md#0", "farms.md#0": "bats.md#0"}
    assert 0 not in multi_hop_pairs(CORPUS, share=1.0, groups=same_text)


def test_with_embeddings_the_nearest_eligible_chunk_is_the_partner() -> None:
    embeddings = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.99, 0.14, 0.0],  # bats#1: nearest to bats#0, but its neighbour
            [0.0, 1.0, 0.0],
            [0.8, 0.6, 0.0],
            [0.0, 0.0, 1.0],
        ],
        dtype=np.float32,
    )
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    pairs = multi_hop_pairs(CORPUS, share=1.0, embeddings=embeddings)
    assert pairs[0] == 3


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


async def test_a_two_chunk_question_and_its_answer_verify_against_both_oracles(
    anyio_backend: str, sim: Simulator
) -> None:
    first, second = CORPUS[0], CORPUS[2]
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        writer = MultiHopQuestionWriter(client, "gpt-4o")
        question = await writer.write(first, second)
        assert question is not None
        answerer = TeacherAnswerGenerator(client, "gpt-4o")
        assert isinstance(answerer, MultiOracleAnswerGenerator)
        result = await answerer.generate_multi(question, [first, second])
    assert question.chunk_id == first.id
    assert question.question_type == MULTI_HOP_TYPE
    assert question.metadata == {"partner_chunk_id": second.id}
    assert ", and " in question.text
    assert writer.calls == 1
    assert writer.usage.prompt_tokens > 0
    assert result.accepted, result.detail
    check = verify_answer(result.cot_answer, [first.text, second.text])
    assert {c.oracle for c in check.quote_checks} == {0, 1}
    # the same answer against one oracle does not verify
    assert not verify_answer(result.cot_answer, first.text).ok
    sent = [r for r in sim.requests if r.path.endswith("/chat/completions")]
    prompt = sent[-1].json["messages"][-1]["content"]
    assert first.text in prompt
    assert second.text in prompt
    assert "quote each of them" in prompt
    # the question call is capped (before anything is learned, for one long question)
    assert sent[0].json["max_tokens"] == 32 + 2 * 64


async def test_an_answer_quoting_one_oracle_is_re_asked_then_rejected(
    anyio_backend: str,
) -> None:
    one_sided = (
        "##begin_quote##The vampire bat lives in Mexico and Brazil.##end_quote##\n"
        "<ANSWER>: Mexico and Brazil"
    )
    client = ScriptedClient(lambda call: one_sided)
    question = Question(id="q-1", chunk_id=CORPUS[0].id, text="Where do vampire bats live?")
    result = await TeacherAnswerGenerator(client, "teacher").generate_multi(
        question, [CORPUS[0], CORPUS[2]]
    )
    assert not result.accepted
    assert result.rejections == ["oracle_not_quoted"] * 3
    assert "document(s) 2" in result.detail
    # the re-ask tells the teacher which document it left out
    assert "document(s) 2" in client.calls[1].prompt
    # one oracle: the multi-hop path is the plain one
    single = await TeacherAnswerGenerator(client, "teacher").generate_multi(question, [CORPUS[0]])
    assert single.accepted


async def test_both_oracles_are_kept_or_dropped_together_and_never_drawn(
    anyio_backend: str,
) -> None:
    sampler = UniformSampler(CORPUS)
    oracle, partner = CORPUS[0], CORPUS[3]
    seen = {True: 0, False: 0}
    for i in range(60):
        question = Question(id=f"q-{i}", chunk_id=oracle.id, text="Who?")
        context = await build_context(
            question,
            oracle,
            sampler,
            rng=question_rng(7, question.id),
            k=2,
            p=0.5,
            partners=[partner],
            exclude={"bats.md#1"},
        )
        ids = [d.chunk_id for d in context.documents]
        oracles = {d.chunk_id for d in context.documents if d.is_oracle}
        assert context.oracle_present == oracle_kept(7, question.id, 0.5)
        if context.oracle_present:
            assert oracles == {oracle.id, partner.id}
            assert len(ids) == 4
        else:
            assert oracle.id not in ids
            assert partner.id not in ids
            assert not oracles
        assert "bats.md#1" not in ids
        assert len(set(ids)) == len(ids)
        seen[context.oracle_present] += 1
    assert seen[True]
    assert seen[False]


async def test_oracle_kept_matches_the_contexts_first_draw(anyio_backend: str) -> None:
    sampler = UniformSampler(CORPUS)
    for i in range(50):
        question = Question(id=f"q-{i}", chunk_id=CORPUS[0].id, text="Who?")
        context = await build_context(
            question, CORPUS[0], sampler, rng=question_rng(3, question.id), k=2, p=0.7
        )
        assert context.oracle_present == oracle_kept(3, question.id, 0.7)


async def test_a_pipeline_refuses_multi_hop_without_a_multi_oracle_answerer(
    anyio_backend: str, sim: Simulator, tmp_path: object
) -> None:
    from pathlib import Path

    from raftkit.pipeline import RaftConfig, RaftPipeline
    from raftkit.synth import AnswerResult

    class OneOracle:
        async def generate(
            self, question: Question, oracle: Chunk, *, sample: int = 0
        ) -> AnswerResult:
            raise AssertionError("never asked")

    docs = Path(str(tmp_path)) / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Bats fly at night in Mexico.", encoding="utf-8")
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        pipeline = RaftPipeline(client, RaftConfig(multi_hop=0.5), answerer=OneOracle())
        with pytest.raises(UsageError, match="generate_multi"):
            await pipeline.run(docs, Path(str(tmp_path)) / "run")

"""Retrieval: metrics, search, adapters (gradients, training), batching, pairs, cache, report."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from raftkit.errors import UsageError
from raftkit.llm.openai import OpenAIClient
from raftkit.pipeline import RaftConfig, RaftPipeline
from raftkit.retrieval import (
    AdaptedEmbedder,
    Adapter,
    AdapterKind,
    ClientEmbedder,
    Embedder,
    EmbeddingCache,
    NoDuplicateBatchSampler,
    RetrievalPair,
    TrainingConfig,
    build_report,
    compare_results,
    embed_documents,
    embedding_sampler,
    evaluate_retrieval,
    fit_adapter,
    mnrl_loss,
    pairs_from_run,
    read_chunks,
    read_pairs,
    split_pairs,
    synthesize_pairs,
    top_k,
    train_adapter,
    write_pairs,
)
from raftkit.retrieval.search import hit_rate, mrr, ndcg, recall, relevance_matrix
from raftkit.synth import EmbeddingSampler
from raftkit.synth.questions import TeacherQuestionSynthesizer
from raftkit.testing import Simulator
from raftkit.types import Chunk, Question

pytestmark = pytest.mark.anyio

# ---------------------------------------------------------------- metrics and search


def test_metrics_on_hand_made_rankings() -> None:
    ranked = np.array([[3, 1, 2, 0], [0, 1, 2, 3], [2, 3, 0, 1], [1, 2, 3, 0]], dtype=np.int64)
    relevant = [{1}, {0}, {1}, {0, 3}]
    rel = relevance_matrix(ranked, relevant)
    assert hit_rate(rel, 1).tolist() == [0.0, 1.0, 0.0, 0.0]
    assert hit_rate(rel, 2).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert hit_rate(rel, 3).tolist() == [1.0, 1.0, 0.0, 1.0]
    assert mrr(rel, 4).tolist() == pytest.approx([0.5, 1.0, 0.25, 1 / 3])
    assert mrr(rel, 3).tolist() == pytest.approx([0.5, 1.0, 0.0, 1 / 3])
    n_rel = np.array([len(r) for r in relevant])
    assert recall(rel, 3, n_rel).tolist() == pytest.approx([1.0, 1.0, 0.0, 0.5])
    assert recall(rel, 4, n_rel).tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0])
    # query 3: relevant at ranks 3 and 4 of two relevant -> (1/log2 4 + 1/log2 5) / (1 + 1/log2 3)
    expected = (1 / np.log2(4) + 1 / np.log2(5)) / (1 + 1 / np.log2(3))
    assert ndcg(rel, 4, n_rel).tolist() == pytest.approx(
        [1 / np.log2(3), 1.0, 1 / np.log2(5), expected]
    )
    assert np.isnan(recall(rel[:1], 2, [0])[0])


def test_top_k_matches_a_full_sort_in_blocks() -> None:
    rng = np.random.default_rng(1)
    queries = rng.standard_normal((37, 8)).astype(np.float32)
    corpus = rng.standard_normal((50, 8)).astype(np.float32)
    indices, scores = top_k(queries, corpus, 5, block=8)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    cn = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    expected = np.argsort(-(qn @ cn.T), axis=1)[:, :5]
    assert indices.tolist() == expected.tolist()
    assert np.all(np.diff(scores, axis=1) <= 1e-7)
    everything, _ = top_k(queries, corpus, 500)
    assert everything.shape == (37, 50)


def test_top_k_refuses_mismatched_dimensions() -> None:
    with pytest.raises(UsageError, match="dimension"):
        top_k(np.ones((2, 3)), np.ones((4, 5)), 1)


# ---------------------------------------------------------------- adapters


def _finite_difference(
    adapter: Adapter, q: npt.NDArray[np.float64], d: npt.NDArray[np.float64], name: str
) -> npt.NDArray[np.float64]:
    param = adapter.params[name]
    grad: npt.NDArray[np.float64] = np.zeros_like(param, dtype=np.float64)
    eps = 1e-6
    for index in np.ndindex(param.shape):
        saved = param[index]
        param[index] = saved + eps
        up, _ = mnrl_loss(adapter, q, d, 0.1)
        param[index] = saved - eps
        down, _ = mnrl_loss(adapter, q, d, 0.1)
        param[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize(
    ("kind", "d_out"), [("linear", None), ("mlp", None), ("linear", 3), ("mlp", 6)]
)
def test_hand_written_gradients_match_finite_differences(
    kind: AdapterKind, d_out: int | None
) -> None:
    rng = np.random.default_rng(7)
    q = rng.standard_normal((5, 4))
    d = rng.standard_normal((5, 4))
    adapter = Adapter.create(kind, 4, d_out, hidden=3, corpus=d, dtype=np.float64)
    for name in adapter.params:  # move away from the identity so every gradient is non-zero
        adapter.params[name] = adapter.params[name] + 0.3 * rng.standard_normal(
            adapter.params[name].shape
        )
    _, grads = mnrl_loss(adapter, q, d, 0.1)
    assert set(grads) == set(adapter.params)
    for name in adapter.params:
        numeric = _finite_difference(adapter, q, d, name)
        assert np.abs(numeric).max() > 1e-6, name
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-4, atol=1e-7, err_msg=name)


def _rotation_task(
    seed: int, n_chunks: int = 120, per_chunk: int = 3, dim: int = 16, noise: float = 0.25
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Queries are a fixed random rotation of their chunk's vector plus noise: base retrieval
    is poor, a linear adapter can learn the inverse rotation."""
    rng = np.random.default_rng(seed)
    corpus = rng.standard_normal((n_chunks, dim)).astype(np.float32)
    rotation, _ = np.linalg.qr(np.random.default_rng(99).standard_normal((dim, dim)))
    targets = np.repeat(np.arange(n_chunks), per_chunk)
    queries = corpus[targets] @ rotation.T + noise * rng.standard_normal((targets.size, dim))
    return queries.astype(np.float32), targets.astype(np.int64), corpus


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_adapter_learns_a_rotation_and_raises_validation_mrr(kind: AdapterKind) -> None:
    queries, targets, corpus = _rotation_task(0)
    val_mask = np.arange(targets.size) % 3 == 0  # a third of the questions held out
    cfg = TrainingConfig(
        kind=kind,
        epochs=30,
        batch_size=32,
        learning_rate=5e-3,
        temperature=0.1,
        patience=5,
    )
    adapter, history = train_adapter(
        queries[~val_mask],
        targets[~val_mask],
        corpus,
        validation_queries=queries[val_mask],
        validation_targets=targets[val_mask],
        config=cfg,
        base="synthetic",
    )
    assert history.initial_validation_mrr < 0.3
    assert max(history.validation_mrr) > history.initial_validation_mrr + 0.4
    assert history.train_loss[-1] < history.train_loss[0]
    assert adapter.metadata["best_validation_mrr"] == pytest.approx(max(history.validation_mrr))
    # the kept weights are the best epoch's
    ranked, _ = top_k(adapter.query(queries[val_mask]), adapter.corpus(corpus), 10)
    rel = relevance_matrix(ranked, [{int(t)} for t in targets[val_mask]])
    assert float(mrr(rel, 10).mean()) == pytest.approx(max(history.validation_mrr), abs=1e-6)


def test_adapter_with_a_smaller_output_dimension_projects_both_sides(tmp_path: Path) -> None:
    queries, targets, corpus = _rotation_task(1, dim=16)
    cfg = TrainingConfig(kind="linear", out_dim=8, epochs=15, learning_rate=5e-3, temperature=0.1)
    adapter, history = train_adapter(
        queries,
        targets,
        corpus,
        validation_queries=queries[:60],
        validation_targets=targets[:60],
        config=cfg,
    )
    assert adapter.projects_corpus
    assert adapter.query(queries).shape == (queries.shape[0], 8)
    assert adapter.corpus(corpus).shape == (corpus.shape[0], 8)
    assert max(history.validation_mrr) > history.initial_validation_mrr
    path = adapter.save(tmp_path / "a")
    again = Adapter.load(path)
    assert (again.kind, again.d_in, again.d_out) == ("linear", 16, 8)
    np.testing.assert_array_equal(again.query(queries), adapter.query(queries))
    np.testing.assert_array_equal(again.corpus(corpus), adapter.corpus(corpus))


def test_untrained_adapters_change_nothing() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    kinds: tuple[AdapterKind, ...] = ("linear", "mlp")
    for kind in kinds:
        adapter = Adapter.create(kind, 6)
        np.testing.assert_allclose(adapter.query(x), unit, rtol=1e-6)
        np.testing.assert_allclose(adapter.corpus(x), unit, rtol=1e-6)


def test_training_is_seeded() -> None:
    queries, targets, corpus = _rotation_task(2, n_chunks=30)
    cfg = TrainingConfig(kind="mlp", epochs=3, batch_size=16, seed=5)
    first, _ = train_adapter(queries, targets, corpus, config=cfg)
    second, _ = train_adapter(queries, targets, corpus, config=cfg)
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], second.params[name])


def test_loading_a_file_that_is_not_an_adapter_fails(tmp_path: Path) -> None:
    from raftkit.errors import InputError

    bogus = tmp_path / "x.npz"
    np.savez(bogus, something=np.zeros(3))
    with pytest.raises(InputError):
        Adapter.load(bogus)


# ---------------------------------------------------------------- batches


def test_batches_never_hold_two_questions_of_one_chunk() -> None:
    rng = np.random.default_rng(0)
    groups = [f"c{int(g)}" for g in rng.integers(0, 40, size=500)]
    groups += ["big"] * 30  # one chunk with many questions
    sampler = NoDuplicateBatchSampler(groups, 16, seed=1)
    first_epoch = [b.tolist() for b in sampler.epoch(0)]
    seen: list[int] = []
    for batch in first_epoch:
        assert len({groups[i] for i in batch}) == len(batch)
        assert 2 <= len(batch) <= 16
        seen.extend(batch)
    assert len(seen) + sampler.dropped == len(groups)
    assert len(set(seen)) == len(seen)
    assert [b.tolist() for b in sampler.epoch(0)] == first_epoch  # seeded
    assert [b.tolist() for b in sampler.epoch(1)] != first_epoch  # reshuffled per epoch


# ---------------------------------------------------------------- pairs


def test_split_is_grouped_by_chunk_and_independent_of_order() -> None:
    pairs = [
        RetrievalPair(question_id=f"q{c}-{i}", question=f"question {i} on {c}", chunk_id=f"c{c}")
        for c in range(50)
        for i in range(3)
    ]
    split = split_pairs(pairs, seed=4)
    again = split_pairs(list(reversed(pairs)), seed=4)
    # resuming keeps every chunk on its side: a prefix of the chunks splits the same way
    prefix = split_pairs(pairs[:60], seed=4)
    assert [p.question_id for p in split.train] == [p.question_id for p in again.train]
    sides = {p.chunk_id: p.split for p in split.all()}
    assert all(p.split == "train" for p in split.train)
    for pair in split.all():
        assert sides[pair.chunk_id] == pair.split
    assert {p.chunk_id for p in split.train}.isdisjoint({p.chunk_id for p in split.test})
    assert len(split.train) > len(split.test) > 0
    assert len(prefix.all()) == 60


CHINESE = (
    "蝙蝠是唯一能够真正飞行的哺乳动物。它们的前肢演化成了翼膜。"
    "大多数蝙蝠在夜间活动，并使用回声定位寻找食物。吸血蝠以动物的血液为食。"
)


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bats.md").write_text(
        "# Bats\n\nBats are the only mammals capable of true flight. Their wings are membranes "
        "of skin stretched between long fingers. Most bats are nocturnal and use echolocation "
        "to find insects in the dark.\n\nVampire bats feed on the blood of cattle and horses. "
        "They have heat sensors on their noses and share meals with roost mates.\n\n"
        "Fruit bats, also called flying foxes, eat fruit and nectar and pollinate many plants "
        "such as bananas, mangoes and durian.\n",
        encoding="utf-8",
    )
    (docs / "surf.md").write_text(
        "# Surfing\n\nSurfing is riding breaking waves on a board. Longboards are stable and "
        "suit small waves. Shortboards turn quickly on steep waves.\n\nWindsurfing combines a "
        "board with a sail; kiteboarding uses a large kite to pull the rider across water.\n\n"
        "Wetsuits made of neoprene keep surfers warm in cold oceans.\n",
        encoding="utf-8",
    )
    (docs / "蝙蝠.md").write_text(CHINESE, encoding="utf-8")
    return docs


async def test_pairs_from_a_generation_run_and_back(tmp_path: Path) -> None:
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
    ):
        config = RaftConfig(questions_per_chunk=2, chunk_size=48, chunk_overlap=0, seed=1)
        await RaftPipeline(client, config).run(_docs(tmp_path), tmp_path / "run")
    run = tmp_path / "run"
    chunks = read_chunks(run)
    pairs = await pairs_from_run(run)
    chunk_ids = {c.id for c in chunks}
    assert pairs
    assert all(p.chunk_id in chunk_ids for p in pairs)
    assert len({(p.chunk_id, p.question) for p in pairs}) == len(pairs)
    examples = (run / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    rejections_path = run / "rejections.jsonl"
    rejected = (
        rejections_path.read_text(encoding="utf-8").splitlines() if rejections_path.exists() else []
    )
    assert len(pairs) <= len(examples) + len(rejected)
    only_accepted = await pairs_from_run(run, include_rejected=False)
    assert all(p.source == "example" for p in only_accepted)
    split = split_pairs(pairs, ratios=(0.6, 0.2, 0.2))
    write_pairs(run / "retrieval" / "pairs.jsonl", split.all())
    back = read_pairs(run / "retrieval" / "pairs.jsonl")
    assert back.train == split.train
    assert back.test == split.test


async def test_synthesized_pairs_keep_chunk_order() -> None:
    chunks = [
        Chunk(id=f"d#{i}", document_id="d", index=i, text=t, start=0, end=len(t))
        for i, t in enumerate(
            ["Bats fly at night and eat insects.", "Surfers ride waves on boards.", CHINESE]
        )
    ]
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
    ):
        pairs = await synthesize_pairs(
            chunks, TeacherQuestionSynthesizer(client, "gpt-4o-mini"), questions_per_chunk=2
        )
    assert [p.chunk_id for p in pairs] == sorted(p.chunk_id for p in pairs)
    assert {p.chunk_id for p in pairs} == {c.id for c in chunks}
    assert all(p.source == "synthesized" and p.question for p in pairs)


# ---------------------------------------------------------------- embedding, cache, evaluation


def _corpus() -> tuple[list[Chunk], list[RetrievalPair]]:
    texts = [
        "Vampire bats feed on the blood of cattle and horses at night.",
        "Fruit bats eat mangoes and bananas and pollinate durian trees.",
        "Longboards are stable surfboards that suit small waves.",
        "Kiteboarding uses a large kite to pull the rider across water.",
        "Neoprene wetsuits keep surfers warm in cold oceans.",
        "Echolocation lets bats find insects in the dark.",
        CHINESE,
        "吸血蝠以动物的血液为食，并与同伴分享食物。",
    ]
    chunks = [
        Chunk(id=f"doc#{i}", document_id="doc", index=i, text=t, start=0, end=len(t))
        for i, t in enumerate(texts)
    ]
    questions = [
        "What do vampire bats feed on?",
        "Which fruits do fruit bats eat?",
        "Which surfboards suit small waves?",
        "What pulls the rider in kiteboarding?",
        "What keeps surfers warm?",
        "How do bats find insects?",
        "哪种哺乳动物能够真正飞行？",
        "吸血蝠吃什么？",
    ]
    pairs = [
        RetrievalPair(question_id=f"q{i}", question=q, chunk_id=f"doc#{i}")
        for i, q in enumerate(questions)
    ]
    return chunks, pairs


def _embedding_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.path.endswith("/embeddings"))


async def test_the_cache_means_a_second_evaluation_embeds_nothing(tmp_path: Path) -> None:
    chunks, pairs = _corpus()
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
    ):
        embedder = ClientEmbedder(client, "text-embedding-3-small", cache_dir=tmp_path / "cache")
        assert isinstance(embedder, Embedder)
        first = await evaluate_retrieval(embedder, pairs, chunks, ks=(1, 5))
        assert _embedding_requests(sim) >= 1
        assert embedder.cache is not None
        assert embedder.cache.stats.misses == len(chunks) + len(pairs)
        sim.clear_requests()
        # a new process: a fresh embedder over the same cache directory
        again = ClientEmbedder(client, "text-embedding-3-small", cache_dir=tmp_path / "cache")
        second = await evaluate_retrieval(again, pairs, chunks, ks=(1, 5))
        assert _embedding_requests(sim) == 0
        assert again.cache is not None
        assert (again.cache.stats.hits, again.cache.stats.misses) == (len(chunks) + len(pairs), 0)
        assert second.per_query == first.per_query
        assert first.mean("hit@5") >= 0.5  # the simulator's embeddings are meaningful
        # a new text costs exactly one more text embedded
        await again.embed(["a brand new sentence about bats"])
        assert _embedding_requests(sim) == 1
        assert again.cache.stats.misses == 1


async def test_without_a_cache_dir_each_text_is_still_embedded_once_per_embedder() -> None:
    chunks, pairs = _corpus()
    async with (
        Simulator() as sim,
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
    ):
        embedder = ClientEmbedder(client, "text-embedding-3-small", batch_size=3)
        await evaluate_retrieval(embedder, pairs, chunks)
        sent = sum(len(r.json["input"]) for r in sim.requests if r.path.endswith("/embeddings"))
        assert sent == len(chunks) + len(pairs)  # batched by 3, every text once
        sim.clear_requests()
        adapter = Adapter.create("linear", embedder.dimension or 0)
        await evaluate_retrieval(AdaptedEmbedder(embedder, adapter), pairs, chunks)
        assert _embedding_requests(sim) == 0


async def _fake_compute(texts: list[str]) -> npt.NDArray[np.float32]:
    return np.array([[len(t), 1.0, 2.0] for t in texts], dtype=np.float32)


def _tear(directory: Path) -> Path:
    """Append half a record, as a process killed mid-write would leave it."""
    [path] = list(directory.iterdir())
    with path.open("ab") as f:
        f.write(b"\x01\x02\x03 half a record")
    return path


async def test_a_torn_cache_record_is_cut_off(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "m")
    await cache.embed_through(["a", "bb", "a"], _fake_compute)
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)
    path = _tear(tmp_path)
    reopened = EmbeddingCache(tmp_path, "m")
    assert len(reopened) == 2
    vectors = await reopened.embed_through(["bb", "ccc"], _fake_compute)
    assert vectors[:, 0].tolist() == [2.0, 3.0]
    assert (reopened.stats.hits, reopened.stats.misses) == (1, 1)
    assert len(EmbeddingCache(tmp_path, "m")) == 3
    assert b"bb" not in path.read_bytes()  # hashes only, never the text


class _Keyword:
    """A deterministic embedder for unit tests: bag of hashed character bigrams."""

    name = "keyword"
    dimension = 64

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            folded = text.lower()
            for a, b in itertools.pairwise(folded):
                out[row, hash((a, b)) % 64] += 1.0
        return out


async def test_adapter_fit_embeds_once_and_plugs_into_the_sampler(tmp_path: Path) -> None:
    chunks, pairs = _corpus()
    base = _Keyword()
    adapter, _ = await fit_adapter(
        base, chunks, pairs, pairs[:3], config=TrainingConfig(epochs=2, batch_size=4)
    )
    # chunks, training questions, validation questions: three calls, never one per batch
    assert base.calls == [len(chunks), len(pairs), 3]
    adapted = AdaptedEmbedder(base, adapter)
    assert isinstance(adapted, Embedder)
    result = await evaluate_retrieval(adapted, pairs, chunks, ks=(1, 3))
    assert len(result.per_query["hit@3"]) == len(pairs)
    corpus_side = await embed_documents(adapted, [c.text for c in chunks])
    sampler = EmbeddingSampler(chunks, corpus_side, pool_factor=1.0)
    question = Question(id="q0", chunk_id=chunks[0].id, text=pairs[0].question)
    distractors = await sampler.sample(question, chunks[0], 2, np.random.default_rng(0))
    assert len(distractors) == 2
    assert chunks[0] not in distractors
    # the deprecated one-call form builds the same sampler
    with pytest.warns(DeprecationWarning, match="embedding_sampler"):
        legacy = await embedding_sampler(adapted, chunks, pool_factor=1.0)
    assert await legacy.sample(question, chunks[0], 2, np.random.default_rng(0)) == distractors
    with pytest.raises(UsageError, match="trained on"):
        AdaptedEmbedder(_Renamed(), adapter)


class _Renamed(_Keyword):
    name = "other"


class _LengthReranker:
    """Prefers documents whose length is closest to 60 characters: deterministic, checkable."""

    name = "length"

    async def score(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[np.float32]:
        return np.array([-abs(len(d) - 60) for _, d in pairs], dtype=np.float32)


async def test_reranking_reorders_the_head_and_the_report_compares() -> None:
    chunks, pairs = _corpus()
    base = _Keyword()
    plain = await evaluate_retrieval(base, pairs, chunks, ks=(1, 5, 10))
    reranked = await evaluate_retrieval(
        base, pairs, chunks, ks=(1, 5, 10), reranker=_LengthReranker(), rerank_depth=len(chunks)
    )
    best_by_length = min(chunks, key=lambda c: abs(len(c.text) - 60)).id
    assert all(row[0] == best_by_length for row in reranked.ranked_chunk_ids)
    assert reranked.system == "keyword+length"
    comparison = compare_results(plain, reranked, "hit@1", n_resamples=200)
    assert comparison.n == len(pairs)
    report = build_report([plain, reranked], metrics=("hit@1", "hit@5", "mrr@10"), n_resamples=200)
    markdown = report.markdown()
    assert "| keyword+length | hit@1 |" in markdown
    assert "| system | queries | hit@1 | hit@5 | mrr@10 |" in markdown
    page = report.html()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "keyword+length" in page
    assert json.loads(report.model_dump_json())["baseline"] == "keyword"


# ---------------------------------------------------------------- public surface


def test_all_names_resolve_are_sorted_and_complete() -> None:
    import raftkit.retrieval as retrieval

    names = retrieval.__all__
    assert list(names) == sorted(names)
    for name in names:
        assert getattr(retrieval, name) is not None
    public = {
        n
        for n, v in vars(retrieval).items()
        if not n.startswith("_")
        and getattr(v, "__module__", "").startswith("raftkit.retrieval")
        and not isinstance(v, type(retrieval))
    }
    aliases = {"AdapterKind"}  # a typing alias has no __module__ of its own
    assert public | aliases == set(names)


def test_importing_retrieval_loads_neither_torch_nor_sentence_transformers() -> None:
    import subprocess
    import sys

    code = (
        "import sys, raftkit.retrieval; "
        "print(any(m in sys.modules for m in ('torch', 'sentence_transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

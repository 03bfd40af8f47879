"""Training an embedding adapter in numpy.

Training minimises the multiple-negatives ranking loss (InfoNCE): for a batch of (question,
chunk) pairs, cosine similarities divided by a temperature, softmax cross-entropy with the
question's own chunk as the target and the other chunks of the batch as negatives. The
gradients are written out by hand (checked against finite differences in the tests) and
applied with Adam. Embeddings are computed once before training, never per batch; batches
never hold two questions of the same chunk; validation MRR@10 after each epoch drives early
stopping and the best epoch's weights are kept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import numpy.typing as npt

from raftkit.errors import UsageError
from raftkit.retrieval.adapters import Adapter, AdapterKind, Array, EpochCallback, Params
from raftkit.retrieval.sampler import NoDuplicateBatchSampler
from raftkit.retrieval.search import mrr, relevance_matrix, top_k

if TYPE_CHECKING:
    from raftkit.retrieval import Embedder
    from raftkit.retrieval.pairs import RetrievalPair
    from raftkit.types import Chunk

__all__ = ["TrainingConfig", "TrainingHistory", "fit_adapter", "mnrl_loss", "train_adapter"]


def mnrl_loss(
    adapter: Adapter, queries: Array, documents: Array, temperature: float
) -> tuple[float, Params]:
    """Multiple-negatives ranking loss of a batch and its gradient for every parameter.

    ``queries[i]`` and ``documents[i]`` are a positive pair (base embeddings); every
    ``documents[j]``, ``j != i``, is a negative for query ``i``.
    """
    yq, cache = adapter._forward_query(queries)
    yd = adapter._forward_corpus(documents)
    nq = np.linalg.norm(yq, axis=1, keepdims=True)
    nd = np.linalg.norm(yd, axis=1, keepdims=True)
    nq = np.maximum(nq, 1e-12)
    nd = np.maximum(nd, 1e-12)
    q = yq / nq
    d = yd / nd
    scores = (q @ d.T) / temperature
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    probs = exp / exp.sum(axis=1, keepdims=True)
    n = q.shape[0]
    diagonal = np.arange(n)
    loss = float(-np.log(np.maximum(probs[diagonal, diagonal], 1e-30)).mean())
    dscores = probs
    dscores[diagonal, diagonal] -= 1.0
    dscores /= n * temperature
    dq = dscores @ d
    dd = dscores.T @ q
    # back through x / |x|: (g - u (u . g)) / |x|
    dyq = (dq - q * (dq * q).sum(axis=1, keepdims=True)) / nq
    grads = adapter._backward_query(cache, dyq)
    if adapter.projects_corpus:
        dyd = (dd - d * (dd * d).sum(axis=1, keepdims=True)) / nd
        grads["P"] = documents.T @ dyd
    return loss, grads


class _Adam:
    def __init__(self, params: Params, lr: float, beta1: float = 0.9, beta2: float = 0.999):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, 1e-8
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params: Params, grads: Params) -> None:
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        for k, g in grads.items():
            self.m[k] = self.beta1 * self.m[k] + (1.0 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1.0 - self.beta2) * g * g
            params[k] -= (self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)).astype(
                params[k].dtype
            )


@dataclass(frozen=True)
class TrainingConfig:
    """Adapter training settings."""

    kind: AdapterKind = "linear"
    out_dim: int | None = None
    hidden: int | None = None
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    temperature: float = 0.05
    patience: int = 3
    seed: int = 0
    validation_k: int = 10


@dataclass
class TrainingHistory:
    """What happened during training, epoch by epoch."""

    train_loss: list[float] = field(default_factory=list)
    validation_mrr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    initial_validation_mrr: float = float("nan")
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "train_loss": self.train_loss,
            "validation_mrr": self.validation_mrr,
            "epoch_seconds": self.epoch_seconds,
            "best_epoch": self.best_epoch,
            "initial_validation_mrr": self.initial_validation_mrr,
            "stopped_early": self.stopped_early,
        }


def _validation_mrr(
    adapter: Adapter, queries: Array, targets: npt.NDArray[np.int64], corpus: Array, k: int
) -> float:
    if queries.shape[0] == 0:
        return float("nan")
    ranked, _ = top_k(adapter.query(queries), adapter.corpus(corpus), k)
    rel = relevance_matrix(ranked, [{int(t)} for t in targets])
    return float(mrr(rel, k).mean())


def train_adapter(
    query_embeddings: npt.ArrayLike,
    targets: npt.ArrayLike,
    corpus_embeddings: npt.ArrayLike,
    *,
    validation_queries: npt.ArrayLike | None = None,
    validation_targets: npt.ArrayLike | None = None,
    config: TrainingConfig | None = None,
    base: str = "",
    adapter: Adapter | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[Adapter, TrainingHistory]:
    """Train an adapter on precomputed embeddings (blocking: call it in a worker thread).

    ``query_embeddings[i]``'s positive is ``corpus_embeddings[targets[i]]``; the corpus matrix
    also serves validation, which ranks every chunk for each validation query. Without a
    validation set, training runs all epochs and keeps the last weights.
    ``on_epoch(epoch, epochs, loss)`` is called after each epoch (1-based).
    """
    cfg = config or TrainingConfig()
    if cfg.epochs < 1 or cfg.temperature <= 0 or cfg.learning_rate <= 0 or cfg.patience < 1:
        raise UsageError("epochs, temperature, learning_rate and patience must be positive")
    xq = np.asarray(query_embeddings, dtype=np.float32)
    xc = np.asarray(corpus_embeddings, dtype=np.float32)
    tgt = np.asarray(targets, dtype=np.int64)
    if xq.ndim != 2 or xc.ndim != 2 or xq.shape[1] != xc.shape[1] or tgt.shape != xq.shape[:1]:
        raise UsageError(
            f"shapes do not match: queries {xq.shape}, targets {tgt.shape}, corpus {xc.shape}"
        )
    if xq.shape[0] < 2:
        raise UsageError("training needs at least two pairs")
    model = adapter or Adapter.create(
        cfg.kind, xq.shape[1], cfg.out_dim, hidden=cfg.hidden, corpus=xc, base=base, seed=cfg.seed
    )
    held_out: tuple[Array, npt.NDArray[np.int64]] | None = None
    if validation_queries is not None and validation_targets is not None:
        vq = np.asarray(validation_queries, np.float32)
        if vq.shape[0] > 0:
            held_out = (vq, np.asarray(validation_targets, np.int64))
    sampler = NoDuplicateBatchSampler([str(t) for t in tgt], cfg.batch_size, seed=cfg.seed)
    optimiser = _Adam(model.params, cfg.learning_rate)
    history = TrainingHistory()
    if held_out is not None:
        history.initial_validation_mrr = _validation_mrr(model, *held_out, xc, cfg.validation_k)
    best_score = history.initial_validation_mrr
    best = {k: v.copy() for k, v in model.params.items()}
    stale = 0
    for epoch in range(cfg.epochs):
        started = time.perf_counter()
        losses: list[float] = []
        for batch in sampler.epoch(epoch):
            loss, grads = mnrl_loss(model, xq[batch], xc[tgt[batch]], cfg.temperature)
            optimiser.step(model.params, grads)
            losses.append(loss)
        history.epoch_seconds.append(time.perf_counter() - started)
        history.train_loss.append(float(np.mean(losses)) if losses else float("nan"))
        if on_epoch is not None:
            on_epoch(epoch + 1, cfg.epochs, history.train_loss[-1])
        if held_out is None:
            history.best_epoch = epoch
            continue
        score = _validation_mrr(model, *held_out, xc, cfg.validation_k)
        history.validation_mrr.append(score)
        if score > best_score:
            best_score, stale, history.best_epoch = score, 0, epoch
            best = {k: v.copy() for k, v in model.params.items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                history.stopped_early = True
                break
    if held_out is not None:
        model.params.update(best)
    model.metadata.update(
        {
            "temperature": cfg.temperature,
            "epochs_run": len(history.train_loss),
            "best_epoch": history.best_epoch,
            "initial_validation_mrr": history.initial_validation_mrr,
            "best_validation_mrr": best_score,
            "seed": cfg.seed,
        }
    )
    return model, history


async def _embed_unique(embedder: Embedder, texts: Sequence[str], *, queries: bool) -> Array:
    """Each distinct text embedded once, rows in the order of ``texts``."""
    from raftkit.retrieval.measure import embed_documents, embed_queries

    distinct = list(dict.fromkeys(texts))
    if not distinct:
        return np.zeros((0, 0), dtype=np.float32)
    vectors = await (embed_queries if queries else embed_documents)(embedder, distinct)
    where = {t: i for i, t in enumerate(distinct)}
    return vectors[[where[t] for t in texts]]


async def fit_adapter(
    embedder: Embedder,
    chunks: Sequence[Chunk],
    train: Sequence[RetrievalPair],
    validation: Sequence[RetrievalPair] = (),
    *,
    config: TrainingConfig | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[Adapter, TrainingHistory]:
    """Embed the chunks and questions once with ``embedder``, then train an adapter on them.

    Pairs whose chunk is not among ``chunks`` are ignored. Training runs in a worker thread,
    which calls ``on_epoch(epoch, epochs, loss)`` after each epoch.
    """
    position = {c.id: i for i, c in enumerate(chunks)}
    train = [p for p in train if p.chunk_id in position]
    validation = [p for p in validation if p.chunk_id in position]
    if len(train) < 2:
        raise UsageError("need at least two training pairs whose chunk is in the corpus")
    corpus = await _embed_unique(embedder, [c.text for c in chunks], queries=False)
    xq = await _embed_unique(embedder, [p.question for p in train], queries=True)
    vq = await _embed_unique(embedder, [p.question for p in validation], queries=True)
    targets = np.array([position[p.chunk_id] for p in train], dtype=np.int64)
    vtargets = np.array([position[p.chunk_id] for p in validation], dtype=np.int64)

    def run() -> tuple[Adapter, TrainingHistory]:
        return train_adapter(
            xq,
            targets,
            corpus,
            validation_queries=vq if validation else None,
            validation_targets=vtargets if validation else None,
            config=config,
            base=embedder.name,
            on_epoch=on_epoch,
        )

    return await anyio.to_thread.run_sync(run)

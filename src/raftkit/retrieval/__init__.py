"""Retrieval: the retriever that feeds a RAFT model, fine-tuned and measured.

- :mod:`~raftkit.retrieval.pairs` — (question, chunk) pairs from a generation run or
  synthesized, split by chunk;
- :mod:`~raftkit.retrieval.embedders` — :class:`ClientEmbedder` (an API model) and
  :class:`SentenceTransformerEmbedder` (local, offline MiniLM by default), both cached on disk;
- :mod:`~raftkit.retrieval.adapters` — linear and residual-MLP adapters (trained in numpy by
  :mod:`~raftkit.retrieval.adapter_training`);
- :mod:`~raftkit.retrieval.encoder_training` — full bi-encoder fine-tuning and a cross-encoder
  reranker (the ``embeddings`` extra);
- :mod:`~raftkit.retrieval.measure` — hit rate, MRR, recall and nDCG per query, compared with
  bootstrap intervals; :mod:`~raftkit.retrieval.report` renders them.

The interface of the plug-in point is :class:`Embedder`, below.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from raftkit.retrieval.adapter_training import (
    TrainingConfig,
    TrainingHistory,
    fit_adapter,
    mnrl_loss,
    train_adapter,
)
from raftkit.retrieval.adapters import AdaptedEmbedder, Adapter, AdapterKind
from raftkit.retrieval.cache import CacheStats, EmbeddingCache
from raftkit.retrieval.embedders import (
    ClientEmbedder,
    SentenceTransformerEmbedder,
    default_model_path,
)
from raftkit.retrieval.encoder_training import (
    CrossEncoderReranker,
    FinetuneConfig,
    FinetuneResult,
    HardNegativeTriple,
    finetune_bi_encoder,
    finetune_cross_encoder,
    mine_hard_negatives,
)
from raftkit.retrieval.measure import (
    Reranker,
    RetrievalResult,
    compare_results,
    embed_documents,
    embed_queries,
    evaluate_retrieval,
)
from raftkit.retrieval.pairs import (
    PairSplit,
    QuestionSource,
    RetrievalPair,
    pairs_from_run,
    read_chunks,
    read_pairs,
    split_pairs,
    synthesize_pairs,
    write_pairs,
)
from raftkit.retrieval.report import RetrievalReport, build_report
from raftkit.retrieval.sampler import NoDuplicateBatchSampler
from raftkit.retrieval.search import top_k

if TYPE_CHECKING:
    from raftkit.synth.distractors import EmbeddingSampler
    from raftkit.types import Chunk

__all__ = [
    "AdaptedEmbedder",
    "Adapter",
    "AdapterKind",
    "CacheStats",
    "ClientEmbedder",
    "CrossEncoderReranker",
    "Embedder",
    "EmbeddingCache",
    "FinetuneConfig",
    "FinetuneResult",
    "HardNegativeTriple",
    "NoDuplicateBatchSampler",
    "PairSplit",
    "QuestionSource",
    "Reranker",
    "RetrievalPair",
    "RetrievalReport",
    "RetrievalResult",
    "SentenceTransformerEmbedder",
    "TrainingConfig",
    "TrainingHistory",
    "build_report",
    "compare_results",
    "default_model_path",
    "embed_documents",
    "embed_queries",
    "embedding_sampler",
    "evaluate_retrieval",
    "finetune_bi_encoder",
    "finetune_cross_encoder",
    "fit_adapter",
    "mine_hard_negatives",
    "mnrl_loss",
    "pairs_from_run",
    "read_chunks",
    "read_pairs",
    "split_pairs",
    "synthesize_pairs",
    "top_k",
    "train_adapter",
    "write_pairs",
]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors. ``name`` identifies the model (and keys caches and adapters);
    ``dimension`` is the vector size, or ``None`` until the first call reveals it.

    An embedder that treats queries differently from documents (an adapter) also has
    ``async def embed_queries(texts)``; evaluation uses it for questions when present.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int | None: ...

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


async def embedding_sampler(
    embedder: Embedder,
    chunks: Sequence[Chunk],
    *,
    near_duplicate: float = 0.98,
    pool_factor: float = 3.0,
) -> EmbeddingSampler:
    """A hard-negative :class:`~raftkit.synth.EmbeddingSampler` over ``chunks`` embedded by
    ``embedder`` (for an :class:`AdaptedEmbedder`, the adapted corpus side).

    Deprecated: it joins two plug-in packages, which import nothing of each other otherwise.
    Compose the two instead:
    ``EmbeddingSampler(chunks, await embed_documents(embedder, [c.text for c in chunks]))``.
    """
    warnings.warn(
        "raftkit.retrieval.embedding_sampler is deprecated: use "
        "raftkit.synth.EmbeddingSampler(chunks, await embed_documents(embedder, texts))",
        DeprecationWarning,
        stacklevel=2,
    )
    # the one import across plug-in packages, declared in the import-linter contract
    from raftkit.synth.distractors import EmbeddingSampler

    matrix = await embed_documents(embedder, [c.text for c in chunks])
    return EmbeddingSampler(chunks, matrix, near_duplicate=near_duplicate, pool_factor=pool_factor)

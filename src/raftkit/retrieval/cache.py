"""An on-disk embedding cache: no text is embedded twice by the same model, across runs.

One append-only file per (model, dimension): fixed-size records of the text's sha256 (32
bytes) followed by the float32 vector. Appending a record is the only write, so a process
killed mid-write leaves at most one torn record at the end, which the next open cuts off.
Texts are never stored, only their hashes.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio
import numpy as np
import numpy.typing as npt

from raftkit.errors import UsageError

__all__ = ["CacheStats", "EmbeddingCache", "text_key"]

_KEY_BYTES = 32


def text_key(text: str) -> bytes:
    """The cache key of a text: its UTF-8 sha256 digest."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def _slug(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    # the hash keeps two names that slug alike apart
    return f"{safe[:80]}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


class CacheStats:
    """Since the cache was opened: texts embedded (misses) and texts served without (hits)."""

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"CacheStats(hits={self.hits}, misses={self.misses})"


class EmbeddingCache:
    """Vectors of one model, keyed by text hash, kept in ``directory`` (or, with ``None``,
    in memory only: the embedder then embeds each text once per process).

    The dimension is learnt from the first vectors stored (or from an existing file), so one
    cache object serves a model whose dimension is not known in advance.
    """

    def __init__(self, directory: str | os.PathLike[str] | None, model: str) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.model = model
        self.stats = CacheStats()
        self._index: dict[bytes, npt.NDArray[np.float32]] = {}
        self._dimension: int | None = None
        self._path: Path | None = None
        self._loaded = False
        # appends run in worker threads; a thread lock also survives a change of event loop
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"EmbeddingCache(model={self.model!r}, entries={len(self._index)}, "
            f"dimension={self._dimension}, {self.stats!r})"
        )

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._index)

    @property
    def dimension(self) -> int | None:
        self._ensure_loaded()
        return self._dimension

    def _ensure_loaded(self) -> None:
        # read lazily (async callers do it in a worker thread): a big cache takes a moment
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def _file_for(self, dimension: int) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"{_slug(self.model)}.{dimension}d.f32"

    def _load(self) -> None:
        if self.directory is None or not self.directory.is_dir():
            return
        prefix = _slug(self.model) + "."
        found = sorted(p for p in self.directory.glob(prefix + "*d.f32"))
        if not found:
            return
        if len(found) > 1:
            raise UsageError(
                f"{self.directory} holds {len(found)} cache files for {self.model!r} with "
                "different dimensions; pass a distinct model name per dimension"
            )
        path = found[0]
        dimension = int(path.name[len(prefix) : -len("d.f32")])
        record = _KEY_BYTES + 4 * dimension
        size = path.stat().st_size
        whole = size - size % record
        if whole != size:
            # a torn last record from a killed writer: cut it off
            with path.open("r+b") as f:
                f.truncate(whole)
        raw = np.fromfile(path, dtype=np.uint8, count=whole).reshape(-1, record)
        vectors = raw[:, _KEY_BYTES:].copy().view(np.float32)
        for row in range(raw.shape[0]):
            self._index[raw[row, :_KEY_BYTES].tobytes()] = vectors[row]
        self._dimension = dimension
        self._path = path

    def get(self, key: bytes) -> npt.NDArray[np.float32] | None:
        self._ensure_loaded()
        return self._index.get(key)

    def _append(self, keys: Sequence[bytes], vectors: npt.NDArray[np.float32]) -> None:
        self._ensure_loaded()
        with self._lock:
            self._append_locked(keys, vectors)

    def _append_locked(self, keys: Sequence[bytes], vectors: npt.NDArray[np.float32]) -> None:
        if vectors.ndim != 2 or vectors.shape[0] != len(keys):
            raise UsageError(f"expected {len(keys)} vectors, got shape {vectors.shape}")
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
            self._path = self._file_for(self._dimension)
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
        if vectors.shape[1] != self._dimension:
            raise UsageError(
                f"cache for {self.model!r} holds {self._dimension}-d vectors, "
                f"got {vectors.shape[1]}-d"
            )
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._path is not None:
            blob = b"".join(k + rows[i].tobytes() for i, k in enumerate(keys))
            with self._path.open("ab") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
        for i, k in enumerate(keys):
            self._index[k] = rows[i].copy()

    async def embed_through(
        self,
        texts: Sequence[str],
        compute: Callable[[list[str]], Awaitable[npt.NDArray[np.float32]]],
    ) -> npt.NDArray[np.float32]:
        """Vectors of ``texts`` in order: cached ones looked up, the rest (each distinct text
        once) computed with ``compute`` and appended before they are returned."""
        if not self._loaded:
            await anyio.to_thread.run_sync(self._ensure_loaded)
        keys = [text_key(t) for t in texts]
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._index:
                missing.setdefault(key, text)
        # a miss is a text sent to the model; a repeat within one call rides along free
        self.stats.misses += len(missing)
        self.stats.hits += len(texts) - len(missing)
        if missing:
            fresh = np.asarray(await compute(list(missing.values())), dtype=np.float32)
            await anyio.to_thread.run_sync(self._append, list(missing), fresh)
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        return np.stack([self._index[k] for k in keys]).astype(np.float32, copy=False)

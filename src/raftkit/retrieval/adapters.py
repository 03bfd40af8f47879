"""Embedding adapters trained in numpy: a cheap way to fit a frozen embedder to a domain.

An adapter maps the *query* embedding of a frozen base model: ``linear`` is ``x W + b`` (``W``
starts as the identity, so an untrained adapter changes nothing); ``mlp`` adds a residual
two-layer branch, ``x W + relu(x W1 + b1) W2 + b2`` with ``W2 = 0`` at the start. The output
dimension may differ from the input; the corpus side then gets a trainable projection ``P``
(both ``W`` and ``P`` start from the corpus' top principal directions) so that queries and
chunks meet in the same space. With equal dimensions the corpus side is left untouched and
existing chunk vectors stay valid.

Training lives in :mod:`~raftkit.retrieval.adapter_training`; this module is the
adapter itself (its forward and backward passes, saving and loading) and
:class:`AdaptedEmbedder`, which puts one in front of a base embedder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import numpy.typing as npt

from raftkit.errors import InputError, UsageError
from raftkit.retrieval.search import normalise

if TYPE_CHECKING:
    from raftkit.retrieval import Embedder

__all__ = ["AdaptedEmbedder", "Adapter", "AdapterKind", "Array", "EpochCallback", "Params"]

AdapterKind = Literal["linear", "mlp"]
Array = npt.NDArray[np.floating[Any]]
Params = dict[str, Array]
#: Called after each training epoch with the epoch (1-based), the epochs planned and its loss.
EpochCallback = Callable[[int, int, float], object]

_FORMAT_VERSION = 1


def _initial_projection(
    d_in: int, d_out: int, corpus: Array | None, dtype: type[np.floating[Any]]
) -> Array:
    if d_out == d_in:
        return np.eye(d_in, dtype=dtype)
    if d_out < d_in and corpus is not None and corpus.shape[0] >= d_out:
        # the directions the corpus varies most along keep the most of its similarities
        _, _, vt = np.linalg.svd(np.asarray(corpus, dtype=np.float64), full_matrices=False)
        return np.ascontiguousarray(vt[:d_out].T, dtype=dtype)
    projection = np.zeros((d_in, d_out), dtype=dtype)
    n = min(d_in, d_out)
    projection[np.arange(n), np.arange(n)] = 1.0
    return projection


class Adapter:
    """A query-side adapter (and, when dimensions differ, a corpus-side projection)."""

    def __init__(
        self,
        kind: AdapterKind,
        params: Params,
        *,
        base: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if kind not in ("linear", "mlp"):
            raise UsageError(f"adapter kind must be 'linear' or 'mlp', not {kind!r}")
        self.kind: AdapterKind = kind
        self.params = params
        self.base = base
        self.metadata: dict[str, Any] = dict(metadata or {})

    @classmethod
    def create(
        cls,
        kind: AdapterKind,
        d_in: int,
        d_out: int | None = None,
        *,
        hidden: int | None = None,
        corpus: npt.ArrayLike | None = None,
        base: str = "",
        seed: int = 0,
        dtype: type[np.floating[Any]] = np.float32,
    ) -> Adapter:
        """A fresh adapter that starts as (a projection of) the identity.

        ``corpus`` (chunk embeddings) seeds the projection when ``d_out < d_in``; ``hidden``
        is the width of the MLP branch (default ``d_in``).
        """
        d_out = d_in if d_out is None else d_out
        if d_in < 1 or d_out < 1:
            raise UsageError("adapter dimensions must be >= 1")
        matrix = None if corpus is None else np.asarray(corpus)
        projection = _initial_projection(d_in, d_out, matrix, dtype)
        params: Params = {"W": projection.copy(), "b": np.zeros(d_out, dtype=dtype)}
        if kind == "mlp":
            width = hidden or d_in
            rng = np.random.default_rng(seed)
            params["W1"] = (rng.standard_normal((d_in, width)) * np.sqrt(2.0 / d_in)).astype(dtype)
            params["b1"] = np.zeros(width, dtype=dtype)
            params["W2"] = np.zeros((width, d_out), dtype=dtype)
            params["b2"] = np.zeros(d_out, dtype=dtype)
        if d_out != d_in:
            params["P"] = projection.copy()
        return cls(kind, params, base=base)

    def __repr__(self) -> str:
        return (
            f"Adapter(kind={self.kind!r}, d_in={self.d_in}, d_out={self.d_out}, base={self.base!r})"
        )

    @property
    def d_in(self) -> int:
        return int(self.params["W"].shape[0])

    @property
    def d_out(self) -> int:
        return int(self.params["W"].shape[1])

    @property
    def projects_corpus(self) -> bool:
        return "P" in self.params

    # ------------------------------------------------------------------ forward / backward

    def _forward_query(self, x: Array) -> tuple[Array, tuple[Array, ...]]:
        p = self.params
        y = x @ p["W"] + p["b"]
        if self.kind == "linear":
            return y, (x,)
        h = x @ p["W1"] + p["b1"]
        z = np.maximum(h, 0.0)
        return y + z @ p["W2"] + p["b2"], (x, h, z)

    def _backward_query(self, cache: tuple[Array, ...], dy: Array) -> Params:
        x = cache[0]
        grads: Params = {"W": x.T @ dy, "b": dy.sum(axis=0)}
        if self.kind == "mlp":
            _, h, z = cache
            p = self.params
            grads["W2"] = z.T @ dy
            grads["b2"] = dy.sum(axis=0)
            dh = (dy @ p["W2"].T) * (h > 0)
            grads["W1"] = x.T @ dh
            grads["b1"] = dh.sum(axis=0)
        return grads

    def _forward_corpus(self, x: Array) -> Array:
        return x @ self.params["P"] if self.projects_corpus else x

    def query(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Adapted query vectors (unit length, float32)."""
        x = np.asarray(embeddings, dtype=self.params["W"].dtype)
        return normalise(self._forward_query(x)[0])

    def corpus(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Chunk vectors in the adapter's output space (unit length, float32)."""
        x = np.asarray(embeddings, dtype=self.params["W"].dtype)
        return normalise(self._forward_corpus(x))

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the weights and metadata (kind, dimensions, base embedder) as ``.npz``."""
        target = Path(path)
        if target.suffix != ".npz":
            target = target.with_suffix(".npz")
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": _FORMAT_VERSION,
            "kind": self.kind,
            "d_in": self.d_in,
            "d_out": self.d_out,
            "base": self.base,
            **{k: v for k, v in self.metadata.items() if k not in {"format", "kind"}},
        }
        partial = target.with_name(target.stem + ".partial.npz")
        arrays: dict[str, Any] = {f"param_{k}": v for k, v in self.params.items()}
        np.savez(partial, metadata=np.array(json.dumps(meta)), **arrays)
        partial.replace(target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Adapter:
        """Read an adapter written by :meth:`save`."""
        source = Path(path)
        try:
            with np.load(source, allow_pickle=False) as data:
                meta = json.loads(str(data["metadata"]))
                params = {k[len("param_") :]: data[k] for k in data.files if k.startswith("param_")}
        except (OSError, KeyError, ValueError) as e:
            raise InputError(f"{source}: not a raftkit adapter file: {e}") from e
        if meta.get("format") != _FORMAT_VERSION:
            raise InputError(f"{source}: unsupported adapter format {meta.get('format')!r}")
        metadata = {k: v for k, v in meta.items() if k not in {"format", "kind", "base"}}
        return cls(meta["kind"], params, base=str(meta.get("base", "")), metadata=metadata)


class AdaptedEmbedder:
    """A base embedder with an adapter: queries through the adapter, documents through the
    corpus-side projection (unchanged when the dimensions are equal).

    The base embedder (and its cache) does the embedding; the adapter is a cheap matrix
    product on top, so an adapted evaluation makes no new embedding requests.
    """

    def __init__(self, base: Embedder, adapter: Adapter, *, name: str | None = None) -> None:
        if adapter.base and adapter.base != base.name:
            raise UsageError(
                f"adapter was trained on {adapter.base!r} embeddings, not {base.name!r}"
            )
        self.base = base
        self.adapter = adapter
        self.name = name or f"{base.name}+{adapter.kind}-adapter"

    def __repr__(self) -> str:
        return f"AdaptedEmbedder(base={self.base!r}, adapter={self.adapter!r})"

    @property
    def dimension(self) -> int:
        return self.adapter.d_out

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Document (chunk) vectors in the adapter's space."""
        vectors = await self.base.embed(texts)
        return await anyio.to_thread.run_sync(self.adapter.corpus, vectors)

    async def embed_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Query vectors through the adapter."""
        from raftkit.retrieval.measure import embed_queries

        vectors = await embed_queries(self.base, texts)
        return await anyio.to_thread.run_sync(self.adapter.query, vectors)

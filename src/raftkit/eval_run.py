"""Evaluating a run directory: the questions, prompt and models that the run's own files name.

``raftkit eval RUN`` must ask the student exactly as it was trained and only on questions it
never saw. This module reads that from the run directory instead of asking the user to repeat
it: the held-out split is recomputed with the seed, grouping and ratios ``raftkit export``
recorded in ``dataset/split.json``; the system prompt is the one in ``dataset/export.json``
(else the one the exported chat rows carry); ``@finetuned`` is the model ``finetune.json``
records (for a local LoRA adapter, the name ``raftkit serve --run`` gives it, and ``@base`` its
BASE); the training curve, when saved, is linked. It also joins the retrieval package to
the evaluation for ``--retriever``: :class:`EmbeddingRetriever` ranks the run's chunks with an
embedder (base, adapter or fine-tuned model), which :mod:`raftkit.evaluate` sees only through
its :class:`~raftkit.evaluate.retrieved.Retriever` protocol. It sits on floor 4 because it
joins ``dataset``, ``retrieval``, ``finetune`` (where a local adapter is kept) and
``evaluate``, which floor 3 packages may not do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from raftkit.dataset import read_examples, read_export_manifest, split_examples
from raftkit.dataset.split import DEFAULT_RATIOS, GroupBy
from raftkit.errors import InputError, UsageError
from raftkit.finetune import LocalLoRAProvider
from raftkit.grouped_split import SplitReport
from raftkit.retrieval import (
    AdaptedEmbedder,
    Adapter,
    Embedder,
    SentenceTransformerEmbedder,
    embed_documents,
    embed_queries,
    top_k,
)
from raftkit.run_dir import RunDir
from raftkit.types import Chunk, RaftExample

__all__ = [
    "LOCAL_ADAPTER_NAME",
    "EmbeddingRetriever",
    "HeldOut",
    "LocalAdapter",
    "RetrieverSpec",
    "TrainedPrompt",
    "base_model",
    "finetuned_adapter",
    "finetuned_model",
    "held_out_examples",
    "parse_retriever_spec",
    "retriever_embedder",
    "trained_prompt",
    "training_curve_links",
]


# ---------------------------------------------------------------------------- the questions


@dataclass(frozen=True)
class HeldOut:
    """The questions to evaluate, the split they came from, and every example of the run."""

    examples: list[RaftExample]
    all_examples: list[RaftExample]
    split: str
    seed: int
    group_by: GroupBy
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _split_report(run: RunDir) -> SplitReport | None:
    path = run.split_report
    if not path.is_file():
        return None
    try:
        return SplitReport.model_validate_json(path.read_bytes())
    except ValidationError as e:
        raise InputError(f"{path} is not a split report: {e.errors()[0]['msg']}") from e


def _held_out_sync(
    run: RunDir, split: str, seed: int | None, group_by: GroupBy | None, limit: int | None
) -> HeldOut:
    if not run.examples.is_file():
        raise UsageError(f"{run.examples} does not exist: run `raftkit generate` first")
    recorded = _split_report(run)
    notes: list[str] = []
    warnings: list[str] = []
    if recorded is None:
        notes.append(
            f"no {run.split_report}: the default split is used (seed 0, by chunk); run "
            "`raftkit export` before training so that training and evaluation share one split"
        )
        use_seed, use_group, ratios = seed or 0, group_by or "chunk", DEFAULT_RATIOS
    else:
        use_seed = recorded.seed if seed is None else seed
        use_group = group_by or ("document" if recorded.group_by == "document" else "chunk")
        requested = recorded.requested
        ratios = (requested["train"], requested["validation"], requested["test"])
        notes.append(f"split as exported ({run.split_report}): seed {use_seed}, by {use_group}")
        if use_seed != recorded.seed or use_group != recorded.group_by:
            warnings.append(
                f"the export split with seed {recorded.seed} by {recorded.group_by}; this "
                f"evaluation uses seed {use_seed} by {use_group}, so its questions may include "
                "ones the student was trained on"
            )
    everything = read_examples(run.examples)
    parts = split_examples(everything, ratios=ratios, seed=use_seed, group_by=use_group)
    chosen = {"test": parts.test, "validation": parts.validation, "train": parts.train}[split]
    if limit is not None:
        chosen = chosen[:limit]
    if not chosen:
        raise UsageError(f"the {split} split of {run.examples} is empty")
    return HeldOut(chosen, everything, split, use_seed, use_group, notes, warnings)


async def held_out_examples(
    run: RunDir,
    *,
    split: str = "test",
    seed: int | None = None,
    group_by: GroupBy | None = None,
    limit: int | None = None,
) -> HeldOut:
    """The ``split`` part of the run's examples, split as the export split them.

    ``seed`` and ``group_by`` override what ``dataset/split.json`` recorded (a warning says so
    when they differ: the questions may then overlap the training set).
    """
    if split not in ("test", "validation", "train"):
        raise UsageError(f"split must be test, validation or train, not {split!r}")
    return await anyio.to_thread.run_sync(_held_out_sync, run, split, seed, group_by, limit)


# ---------------------------------------------------------------------------- the prompt


@dataclass(frozen=True)
class TrainedPrompt:
    """The system prompt the student was trained with (``None``: none) and where it was found."""

    system_prompt: str | None
    source: str


def _first_chat_row_system(path: Path) -> str | None:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                messages = json.loads(line).get("messages") or []
            except (ValueError, AttributeError) as e:
                raise InputError(f"{path}: the first row is not a chat row") from e
            first = messages[0] if messages else {}
            if isinstance(first, dict) and first.get("role") == "system":
                return str(first.get("content") or "") or None
            return None
    return None


def trained_prompt(run: RunDir) -> TrainedPrompt:
    """The system prompt of the export: ``dataset/export.json``, else the first exported chat
    training row, else none (nothing was exported)."""
    manifest = read_export_manifest(run.export_manifest)
    if manifest is not None:
        where = f"as exported ({run.export_manifest})"
        return TrainedPrompt(manifest.system_prompt, where)
    chat = run.dataset_file("chat", "train")
    if chat.is_file():
        return TrainedPrompt(_first_chat_row_system(chat), f"as in the exported rows ({chat})")
    return TrainedPrompt(None, "nothing exported yet: no system prompt")


# ---------------------------------------------------------------------------- the models


#: The name a run's local adapter is served under (``raftkit serve --run``; vLLM
#: ``--lora-modules raft=...``; llama-server ``--alias raft``), which ``@finetuned`` stands for.
LOCAL_ADAPTER_NAME = "raft"


def _finetune_state(run: RunDir, alias: str) -> dict[str, object]:
    path = run.finetune_state
    if not path.is_file():
        raise UsageError(
            f"{alias}: {path} does not exist; run `raftkit finetune {run.root}` first, "
            "or name the model"
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise InputError(f"{path} is not JSON") from e
    if not isinstance(state, dict):
        raise InputError(f"{path} is not a fine-tuning record")
    return state


def finetuned_model(run: RunDir) -> str:
    """The fine-tuned model ``finetune.json`` records (its ``fine_tuned_model`` field); for a
    local LoRA adapter, the name it is served under (:data:`LOCAL_ADAPTER_NAME`)."""
    state = _finetune_state(run, "@finetuned")
    name = state.get("fine_tuned_model")
    if not isinstance(name, str) or not name:
        job, status = state.get("job_id", "?"), state.get("status", "unknown")
        raise UsageError(
            f"@finetuned: {run.finetune_state} records no fine-tuned model yet (job {job} is "
            f"{status}); wait for it with `raftkit finetune {run.root} --wait`, or name the model"
        )
    if state.get("provider") == "local":
        return LOCAL_ADAPTER_NAME
    return name


def base_model(run: RunDir) -> str:
    """The base model ``finetune.json`` records (``@base``): what the student was tuned from,
    as ``raftkit serve --run`` names it."""
    state = _finetune_state(run, "@base")
    model = state.get("model")
    if not isinstance(model, str) or not model:
        raise UsageError(f"@base: {run.finetune_state} records no base model; name the model")
    return model


@dataclass(frozen=True)
class LocalAdapter:
    """A run's LoRA adapter as ``raftkit serve --run`` serves it."""

    base: str
    adapter: Path
    name: str
    cache_dir: Path


def finetuned_adapter(run: RunDir) -> LocalAdapter:
    """The local adapter ``finetune.json`` records, its BASE and where that BASE is kept
    dequantized; :class:`UsageError` when the run's fine-tune is not a finished local one."""
    state = _finetune_state(run, "@finetuned")
    if state.get("provider") != "local":
        raise UsageError(
            f"{run.finetune_state} records a job on {state.get('provider', 'a service')}, not a "
            "local adapter: that model is served where it was trained"
        )
    adapter = state.get("fine_tuned_model")
    if not isinstance(adapter, str) or not Path(adapter).is_dir():
        job, status = state.get("job_id", "?"), state.get("status", "unknown")
        raise UsageError(
            f"{run.finetune_state}: local job {job} ({status}) has no adapter yet; finish it "
            f"with `raftkit finetune {run.root} --provider local --model BASE --wait`"
        )
    return LocalAdapter(
        base=base_model(run),
        adapter=Path(adapter),
        name=LOCAL_ADAPTER_NAME,
        cache_dir=LocalLoRAProvider(run.local_training).cache_dir,
    )


def training_curve_links(run: RunDir, relative_to: Path) -> dict[str, str]:
    """Links to the fine-tune's training curve files that exist, relative to ``relative_to``."""
    links: dict[str, str] = {}
    for label, path in (
        ("training curve (plot)", run.training_curve_svg),
        ("training curve (CSV)", run.training_curve_csv),
    ):
        if path.is_file():
            links[label] = os.path.relpath(path, relative_to)
    return links


# ---------------------------------------------------------------------------- the retriever


@dataclass(frozen=True)
class RetrieverSpec:
    """``base``, ``adapter:PATH`` or ``model:NAME`` as given to ``--retriever``."""

    kind: str
    where: str = ""

    @property
    def name(self) -> str:
        if self.kind == "base":
            return "base"
        where = Path(self.where)
        return f"{self.kind}:{where.stem if self.kind == 'adapter' else where.name}"


def parse_retriever_spec(text: str) -> RetrieverSpec:
    """Parse ``base``, ``adapter:PATH`` (a trained adapter file) or ``model:NAME`` (a local
    sentence-transformers model folder or a name in the local Hugging Face cache)."""
    kind, _, where = text.strip().partition(":")
    if kind == "base" and not where:
        return RetrieverSpec("base")
    if kind == "adapter" and where:
        if not Path(where).is_file():
            raise UsageError(f"--retriever {text}: {where} is not a file")
        return RetrieverSpec("adapter", where)
    if kind == "model" and where:
        return RetrieverSpec("model", where)
    raise UsageError(f"--retriever: {text!r} is not base, adapter:PATH or model:NAME")


def retriever_embedder(spec: RetrieverSpec, base: Embedder, cache: Path | None) -> Embedder:
    """The embedder ``spec`` names; ``base`` is the run's base embedder (what adapters were
    trained on). Names match ``raftkit retrieval evaluate``'s, so both share one cache."""
    if spec.kind == "base":
        return base
    if spec.kind == "adapter":
        return AdaptedEmbedder(base, Adapter.load(spec.where))
    return SentenceTransformerEmbedder(
        spec.where, name=f"finetuned:{Path(spec.where).name}", cache_dir=cache
    )


class EmbeddingRetriever:
    """Exact top-k search over a run's chunks with one embedder: an evaluation
    :class:`~raftkit.evaluate.retrieved.Retriever`. Chunks are embedded once (and, with an
    on-disk cache, never again); queries go through the adapter side when there is one."""

    def __init__(self, embedder: Embedder, chunks: Sequence[Chunk], *, name: str) -> None:
        if not chunks:
            raise UsageError("the corpus has no chunks to retrieve from")
        self.embedder = embedder
        self.chunk_ids = [c.id for c in chunks]
        self._texts = [c.text for c in chunks]
        self._name = name
        self._corpus: npt.NDArray[np.float32] | None = None

    def __repr__(self) -> str:
        return f"EmbeddingRetriever({self._name!r}, {len(self.chunk_ids)} chunks)"

    @property
    def name(self) -> str:
        return self._name

    async def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        if not queries:
            return []
        if self._corpus is None:
            self._corpus = await embed_documents(self.embedder, self._texts)
        vectors = await embed_queries(self.embedder, list(queries))
        corpus = self._corpus
        indices, scores = await anyio.to_thread.run_sync(lambda: top_k(vectors, corpus, k))
        return [
            [(self.chunk_ids[int(j)], float(s)) for j, s in zip(row, row_scores, strict=True)]
            for row, row_scores in zip(indices, scores, strict=True)
        ]

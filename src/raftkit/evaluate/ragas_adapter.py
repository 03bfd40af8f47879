"""ragas' faithfulness, answer relevancy, semantic similarity and answer correctness, computed by
ragas' metric classes but driven by raftkit's :class:`~raftkit.llm.LLMClient`.

Needs the ``ragas`` extra (``pip install 'raftkit[ragas]'``), imported only when
:func:`ragas_metrics` is first called. ragas' usage telemetry is switched off
(``RAGAS_DO_NOT_TRACK=true`` unless the caller set it) before ragas is imported.

Every request a ragas metric makes goes through the client given here, so its rate limits,
retries, timeouts, budget and journal apply; ragas never builds an HTTP client of its own.
A metric that cannot score a sample returns ``nan``: counted as "not measured" in the report,
never averaged in.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from raftkit.errors import UsageError
from raftkit.llm import LLMClient, StructuredMode

if TYPE_CHECKING:
    from raftkit.evaluate import Metric

__all__ = [
    "RAGAS_INSTALL_HINT",
    "RAGAS_METRIC_NAMES",
    "ragas_metrics",
]

#: The ragas metrics raftkit wires up, in report order.
RAGAS_METRIC_NAMES: tuple[str, ...] = (
    "faithfulness",
    "answer_relevancy",
    "semantic_similarity",
    "answer_correctness",
)

RAGAS_INSTALL_HINT = "pip install 'raftkit[ragas]'"


def _load_bridge() -> ModuleType:
    # ragas reads this when it first tracks an event; it must be set before the import
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    try:
        importlib.import_module("ragas")
    except ImportError as exc:
        raise UsageError(
            f"the ragas metrics need the optional ragas dependency: {RAGAS_INSTALL_HINT}"
        ) from exc
    return importlib.import_module("raftkit.evaluate._ragas_bridge")


def ragas_metrics(
    client: LLMClient,
    *,
    model: str,
    embedding_model: str | None = None,
    names: Sequence[str] = RAGAS_METRIC_NAMES,
    embedding_client: LLMClient | None = None,
    temperature: float | None = 0.0,
    max_tokens: int | None = 1024,
    seed: int | None = None,
    mode: StructuredMode | None = None,
    dimensions: int | None = None,
    strictness: int = 3,
    full_response: bool = False,
) -> list[Metric]:
    """ragas metrics as raftkit :class:`~raftkit.evaluate.Metric`\\ s.

    ``model`` is the judge model ragas' prompts are sent to (through ``client.chat_structured``);
    ``embedding_model`` (through ``(embedding_client or client).embed``) is required by answer
    relevancy, semantic similarity and answer correctness. ``strictness`` is how many questions
    answer relevancy regenerates. By default the metrics see the final answer (after
    ``<ANSWER>:``); ``full_response=True`` gives them the whole chain-of-thought response.

    Raises :class:`~raftkit.errors.UsageError` naming the extra when ragas is not installed.
    """
    unknown = [n for n in names if n not in RAGAS_METRIC_NAMES]
    if unknown:
        raise UsageError(f"unknown ragas metrics {unknown}; known: {list(RAGAS_METRIC_NAMES)}")
    bridge = _load_bridge()
    metrics: list[Metric] = bridge.build_metrics(
        list(names),
        client,
        model=model,
        embedding_model=embedding_model,
        embedding_client=embedding_client,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        mode=mode,
        dimensions=dimensions,
        strictness=strictness,
        full_response=full_response,
    )
    return metrics

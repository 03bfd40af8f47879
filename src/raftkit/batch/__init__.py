"""Floor 3: chat calls through the Batch API — half the price, answers within 24 hours.

Batching sits beside the online clients, not inside fine-tuning: it wraps an
:class:`~raftkit.llm.LLMClient` and joins it through a declared seam, the
:class:`~raftkit.llm.DeferringStore` hook of the journal.

- :class:`BatchRunner` — chat requests as one batch, the answers merged into a
  :class:`~raftkit.llm.ResponseStore` (a run's journal) under the keys online calls use.
- :class:`DeferredCalls` — a client that replays what the store holds and keeps every other
  chat call for the next batch; :func:`run_in_rounds` runs any journaled workload that way
  until it has every answer (``raftkit generate --batch``).
"""

from raftkit.batch.requests import (
    BatchFailedError,
    BatchLineFailure,
    BatchRequest,
    BatchResult,
    BatchStatus,
)
from raftkit.batch.rounds import MAX_ROUNDS, DeferredCalls, run_in_rounds
from raftkit.batch.runner import BATCH_TERMINAL_STATUSES, BatchRunner

__all__ = [
    "BATCH_TERMINAL_STATUSES",
    "MAX_ROUNDS",
    "BatchFailedError",
    "BatchLineFailure",
    "BatchRequest",
    "BatchResult",
    "BatchRunner",
    "BatchStatus",
    "DeferredCalls",
    "run_in_rounds",
]

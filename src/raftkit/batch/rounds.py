"""Any journaled workload in Batch API rounds: run it, batch what it could not pay for, repeat.

:class:`DeferredCalls` wraps a client so that a chat call the store can answer is replayed and
any other is kept (the client raises :class:`~raftkit.llm.Deferred` to its caller) instead of
paid for online. :func:`run_in_rounds` runs a workload with such a client, sends what it kept
as one batch, merges the answers into the store under the keys online calls use, and runs the
workload again — which now gets further (questions first, then answers, then re-asks) — until
it makes no call the store cannot answer. Its last run pays for nothing and ends exactly as an
online run would have.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from raftkit.batch.requests import BatchFailedError, BatchRequest, BatchStatus
from raftkit.batch.runner import BatchRunner
from raftkit.llm import ChatRequest, Deferred, LLMClient, ResponseStore
from raftkit.llm.polling import PollPolicy

__all__ = ["MAX_ROUNDS", "DeferredCalls", "run_in_rounds"]

logger = logging.getLogger("raftkit.batch")

#: Questions, answers and each re-ask take a round; more means something keeps failing.
MAX_ROUNDS = 12


class DeferredCalls:
    """``client`` journaled through ``store``, except that a chat call the store cannot answer
    is kept in :attr:`pending` for a batch instead of sent.

    Implements :class:`~raftkit.llm.DeferringStore`; :attr:`client` is the wrapped client.
    """

    def __init__(self, client: LLMClient, store: ResponseStore) -> None:
        self.store = store
        self.pending: dict[str, BatchRequest] = {}
        self.client = client.with_store(self)

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.store.get(key)

    async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        await self.store.put(key, request, response)

    async def on_miss(self, key: str, request: ChatRequest, *, model: str, sample: int) -> None:
        self.pending.setdefault(
            key, BatchRequest(body={"model": model, **request.body}, sample=sample)
        )
        raise Deferred(key)


async def run_in_rounds(
    client: LLMClient,
    store: ResponseStore,
    work: Callable[[LLMClient, int], Awaitable[None]],
    *,
    run_dir: str | os.PathLike[str],
    poll: PollPolicy | None = None,
    name: str = "teacher",
    max_rounds: int = MAX_ROUNDS,
    on_status: Callable[[BatchStatus], object] | None = None,
) -> int:
    """Run ``work(deferring_client, batches_so_far)`` until it leaves no chat call unanswered;
    returns how many batches that took (0: the store answered everything).

    Between runs, the calls ``work`` could not make go out as one batch through
    :class:`BatchRunner` (its state file in ``run_dir``, so a restarted process resumes the
    batch in flight). ``work`` must let :class:`~raftkit.llm.Deferred` end the part of its
    job that needed the answer, and carry on with the rest. A batch that answers nothing, or
    ``max_rounds`` batches, raise :class:`BatchFailedError`. ``on_status`` is called with
    each poll of a batch (:class:`BatchStatus`: id, state, counts, round).
    """
    runner = BatchRunner(client, store, run_dir=run_dir, poll=poll, name=name, on_status=on_status)
    for done in range(max_rounds):
        runner.round = done + 1
        calls = DeferredCalls(client, store)
        await work(calls.client, done)
        if not calls.pending:
            return done
        logger.info("batch round %d: %d calls", done + 1, len(calls.pending))
        result = await runner.run(list(calls.pending.values()))
        if result.stored == 0:  # nothing answered: another round would loop forever
            raise BatchFailedError(
                result.batch_id or "?",
                result.status or "without answers",
                [f"{f.code or f.status_code}: {f.message}" for f in result.failures],
            )
    raise BatchFailedError("(several)", f"unfinished after {max_rounds} rounds", [])

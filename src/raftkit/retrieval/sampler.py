"""Batches in which no two items share a group (for retrieval: no two questions of one chunk).

With in-batch negatives, every other item's positive is a negative for this query; two
questions about the same chunk in one batch would push a question away from its own answer.
The order is shuffled every epoch with a generator seeded from ``(seed, epoch)``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from raftkit.errors import UsageError

__all__ = ["NoDuplicateBatchSampler"]


class NoDuplicateBatchSampler:
    """Index batches of at most ``batch_size`` with pairwise distinct ``groups[i]``.

    Items are taken in a shuffled order; an item whose group is already in the batch waits
    for the next batch, so every item appears exactly once per epoch. Near the end of an epoch
    a large group can leave batches short; batches smaller than ``min_batch`` (default 2, the
    least that has an in-batch negative) are dropped and their items counted in
    :attr:`dropped`.
    """

    def __init__(
        self,
        groups: Sequence[str],
        batch_size: int,
        *,
        seed: int = 0,
        min_batch: int = 2,
    ) -> None:
        if batch_size < 2:
            raise UsageError("batch_size must be >= 2 for in-batch negatives")
        self.batch_size = batch_size
        self.seed = seed
        self.min_batch = min_batch
        codes: dict[str, int] = {}
        self._groups = np.array([codes.setdefault(g, len(codes)) for g in groups], np.int64)
        self.dropped = 0

    def __len__(self) -> int:
        """Items per epoch (before dropping short batches)."""
        return int(self._groups.shape[0])

    def epoch(self, epoch: int) -> Iterator[npt.NDArray[np.int64]]:
        """The batches of one epoch, as index arrays."""
        rng = np.random.default_rng([self.seed, epoch])
        pending: deque[int] = deque(int(i) for i in rng.permutation(len(self)))
        groups = self._groups
        self.dropped = 0
        while pending:
            batch: list[int] = []
            seen: set[int] = set()
            skipped: list[int] = []
            while pending and len(batch) < self.batch_size:
                i = pending.popleft()
                g = int(groups[i])
                if g in seen:
                    skipped.append(i)
                else:
                    batch.append(i)
                    seen.add(g)
            pending.extendleft(reversed(skipped))
            if len(batch) < self.min_batch:
                self.dropped += len(batch)
                continue
            yield np.asarray(batch, dtype=np.int64)

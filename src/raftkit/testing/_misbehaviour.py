"""Ways the simulated teacher model gets its answer wrong, for testing the checks downstream."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Literal, get_args

__all__ = ["Misbehaviour", "MisbehaviourPlan"]

Misbehaviour = Literal["invalid_json", "missing_answer", "invented_quote", "runaway"]
"""- ``invalid_json``: structured output that does not parse;
- ``missing_answer``: a RAFT answer without its ``<ANSWER>:`` line;
- ``invented_quote``: a RAFT answer quoting a sentence that is not in the documents;
- ``runaway``: output that does not stop until ``max_tokens`` or the context window is full
  (``finish_reason: "length"``)."""

_MODES: tuple[str, ...] = get_args(Misbehaviour)


class MisbehaviourPlan:
    """Which misbehaviours the next chat completions show: for the next N, or by probability."""

    def __init__(self, probabilities: Mapping[str, float] | None = None, *, seed: int = 0):
        self._lock = threading.Lock()
        self._random = random.Random(seed ^ 0x5EED)
        self._counts: dict[str, int] = {}
        self._probabilities: dict[str, float] = {}
        for mode, probability in (probabilities or {}).items():
            self.set_probability(mode, probability)

    @staticmethod
    def _check(mode: str) -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown misbehaviour {mode!r}; expected one of {_MODES}")

    def set_probability(self, mode: str, probability: float) -> None:
        self._check(mode)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        with self._lock:
            self._probabilities[mode] = probability

    def next_n(self, mode: str, times: int) -> None:
        """Show ``mode`` on the next ``times`` completions it applies to."""
        self._check(mode)
        with self._lock:
            self._counts[mode] = self._counts.get(mode, 0) + times

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._probabilities.clear()

    def draw(self, mode: str) -> bool:
        """Whether this completion shows ``mode`` (consumes one of the scripted ones)."""
        with self._lock:
            if self._counts.get(mode, 0) > 0:
                self._counts[mode] -= 1
                return True
            probability = self._probabilities.get(mode, 0.0)
            return probability > 0.0 and self._random.random() < probability

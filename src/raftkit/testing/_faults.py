"""Faults the simulator injects on demand: by script (a queue) or by probability.

A scripted fault is used once per request it hits, in order; a random rule fires with its
probability, drawn from the simulator's seeded generator, so a sequential test sees the same
faults on every run.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Fault", "FaultKind", "FaultPlan", "FaultRule"]

FaultKind = Literal["error", "latency", "timeout", "drop", "lost_reply", "malformed_json"]


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One misbehaviour of the server. Build it with the class methods.

    ``path`` limits the fault to requests whose path contains it (e.g. ``"/embeddings"``).
    """

    kind: FaultKind
    status: int = 500
    type: str | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    path: str | None = None

    @classmethod
    def error(
        cls,
        status: int = 500,
        *,
        type: str | None = None,
        code: str | None = None,
        message: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        path: str | None = None,
    ) -> Fault:
        """Answer with ``status`` and an OpenAI-shaped error body (and any extra headers,
        e.g. ``retry-after``, ``retry-after-ms``, ``x-should-retry``)."""
        return cls(
            kind="error",
            status=status,
            type=type,
            code=code,
            message=message,
            param=param,
            headers=dict(headers or {}),
            path=path,
        )

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0, *, path: str | None = None) -> Fault:
        """A 429 like OpenAI's, telling the client to wait ``retry_after`` seconds."""
        millis = max(1, round(retry_after * 1000))
        return cls.error(
            429,
            type="requests",
            code="rate_limit_exceeded",
            message=f"Rate limit reached (injected). Please try again in {retry_after:g}s.",
            headers={"retry-after-ms": str(millis), "retry-after": str(-(-millis // 1000))},
            path=path,
        )

    @classmethod
    def latency(cls, seconds: float, *, path: str | None = None) -> Fault:
        """Wait ``seconds`` before answering normally."""
        return cls(kind="latency", seconds=seconds, path=path)

    @classmethod
    def timeout(cls, seconds: float = 600.0, *, path: str | None = None) -> Fault:
        """Hold the request (longer than the client will wait), then answer 504.

        The hold ends early when the client hangs up, so a stopped simulator never waits for it.
        """
        return cls(kind="timeout", status=504, seconds=seconds, path=path)

    @classmethod
    def drop(cls, *, path: str | None = None) -> Fault:
        """Close the connection without sending any response."""
        return cls(kind="drop", path=path)

    @classmethod
    def lost_reply(cls, seconds: float = 0.0, *, path: str | None = None) -> Fault:
        """Do the work (create the job, store the file), hold the reply ``seconds``, then close
        the connection without sending it: a reply lost in transit, or a client killed while
        waiting for it."""
        return cls(kind="lost_reply", seconds=seconds, path=path)

    @classmethod
    def malformed_json(cls, *, path: str | None = None) -> Fault:
        """Answer 200 with a JSON body cut in the middle."""
        return cls(kind="malformed_json", status=200, path=path)

    def matches(self, path: str) -> bool:
        return self.path is None or self.path in path


@dataclass(frozen=True)
class FaultRule:
    """Fire ``fault`` on each matching request with ``probability``."""

    fault: Fault
    probability: float


class FaultPlan:
    """The scripted queue and the random rules, safe to use from any thread."""

    def __init__(self, rules: tuple[FaultRule, ...] = (), *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self._rules: list[FaultRule] = list(rules)
        self._random = random.Random(seed)

    def add(self, fault: Fault, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` requests it matches."""
        with self._lock:
            self._queue.extend([fault] * times)

    def add_rule(self, fault: Fault, probability: float) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        with self._lock:
            self._rules.append(FaultRule(fault, probability))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rules.clear()

    @property
    def pending(self) -> int:
        """How many scripted faults have not fired yet."""
        with self._lock:
            return len(self._queue)

    def next_for(self, path: str) -> Fault | None:
        """The fault to apply to a request for ``path``, if any (consumes a scripted one)."""
        with self._lock:
            for index, fault in enumerate(self._queue):
                if fault.matches(path):
                    del self._queue[index]
                    return fault
            for rule in self._rules:
                if rule.fault.matches(path) and self._random.random() < rule.probability:
                    return rule.fault
        return None

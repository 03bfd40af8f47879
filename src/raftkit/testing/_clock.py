"""The simulated wall clock: the date the simulated service lives in.

It starts at ``SimulatorConfig.start_time`` (a fixed date by default, so the suite behaves the
same whatever day it runs) and then advances with the server's monotonic clock. Tests move it
with :meth:`Simulator.set_time` / :meth:`Simulator.advance_time` (or ``POST /_simulator/clock``)
to stand before or after a date; job, batch, file and deployment timestamps, model shutdown
dates, fine-tuning cut-offs and prompt-cache expiry all read it. Rate limits do not: they run on
the monotonic clock, so moving the date refills no bucket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

__all__ = ["DEFAULT_START_TIME", "SimulatedClock", "parse_time"]

DEFAULT_START_TIME = datetime(2026, 12, 1, tzinfo=UTC)
"""Where the simulated clock starts unless told otherwise."""


def parse_time(value: datetime | date | str | float | int) -> float:
    """A Unix timestamp from a datetime (naive means UTC), a date (midnight UTC), an ISO 8601
    string or a number."""
    if isinstance(value, bool):
        raise TypeError("a time cannot be a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or time: {value!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    raise TypeError(f"expected a datetime, date, ISO string or number, got {type(value).__name__}")


class SimulatedClock:
    """Simulated Unix time, advancing with ``monotonic`` from a settable point."""

    def __init__(self, monotonic: Callable[[], float], start: float | None) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._epoch = time.time() if start is None else start
        self._anchor = monotonic()

    def now(self) -> float:
        with self._lock:
            return self._epoch + (self._monotonic() - self._anchor)

    def set(self, when: float) -> None:
        with self._lock:
            self._epoch = when
            self._anchor = self._monotonic()

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)

    def today(self) -> date:
        return datetime.fromtimestamp(self.now(), UTC).date()

    def wall_offset(self) -> float:
        """Simulated minus real time: what a restarted simulator resumes from."""
        return self.now() - time.time()

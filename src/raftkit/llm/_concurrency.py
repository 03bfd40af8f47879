"""How many requests to keep in flight at a server that publishes no limits: pure logic, no I/O.

A local vLLM, llama.cpp or Ollama server sends no ``x-ratelimit-*`` headers and no 429s: it
serves a few requests at once (its *slots*) and queues the rest, so every request beyond the
slots only waits longer, until it times out. :class:`AdaptiveConcurrency` finds the number of
requests in flight that gets the most out of the server without queueing in it.

It measures in *epochs*. During one, the limit is constant; the mean number of requests in
flight ``N`` is integrated over time and the latency ``L`` taken over the requests admitted
during the epoch, per completion token where the server reports usage (so answers of
different lengths compare fairly; per request otherwise). Little's law gives the throughput
``X = N / L``. Raising ``N`` by a factor ``k`` raises ``X`` by ``k`` while the server has free
slots (the latency stays), and not at all once it is saturated (the latency grows by ``k``:
the extra requests only queue). So a change is judged by its *efficiency*
``e = (X'/X - 1) / (k - 1)``: near 1 while there is room, near 0 beyond the server's capacity,
whatever the absolute latency (a large model, a long prompt).

- **Startup**: from ``initial`` (2), the limit doubles every epoch while ``e >= 1/2`` (``1/4``
  for doublings from 16: a batching server such as vLLM slows each request as it fills, yet
  serves more in all). A doubling that does not pay is measured once more, then undone.
- **Steady**: every ``probe_every`` epochs the limit is probed, alternately down (x0.8, at
  least -1) and up (x1.25, at least +1). A downward probe is kept when it lost less than a
  quarter of what it would with free slots (the higher limit was only queueing); an upward
  one when ``e >= 1/2``, and then doubling resumes (the server has grown, or startup stopped
  on noise).
- **Congestion** (a 429 from such a server): the limit is multiplied by 0.7 at once.

**After a rise** (and at the start) measuring begins at the first reply to a request sent
under the new limit. Before it, the extra requests join a queue still being built: the first
of them wait less than every later one will, so the higher limit looked cheaper than it is
(a doubling past the slots was kept on noise). And the very first requests may have waited
for a server still getting ready (Ollama loads the model on the first request; a simulator
loads its tokenizer): taken as the first reference, that one-off wait made the first
doubling look like a gain however full the server was (a one-slot server went to 4).

An epoch in which the limit did not hold requests back (the caller sent fewer) says nothing
about higher limits: it grows nothing, though a doubling the caller half filled is still
judged by what it brought. After the limit falls, measuring waits until the
requests in flight have drained to the new limit. The clock is the caller's: every method
takes ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["AdaptiveConcurrency", "Measurement"]

#: Efficiency from which a larger limit is worth it ...
_GROW = 0.5
#: ... except for doublings from this many requests in flight, where a batching server (vLLM)
#: slows each request as it fills yet serves more in all: the bar is lower there. Below it a
#: server with room doubles its throughput, and a gain of less than half is what the time an
#: answer spends travelling back (an idle slot, hidden by a queued request) is worth.
_BATCHING_FROM = 16
_GROW_BATCHING = 0.25
#: ... and below which a probe downwards is kept. Lower: too low a limit costs throughput,
#: too high one only some latency, so noisy measurements must not walk the limit down.
_SHRINK = 0.25
#: Samples per epoch, per request of the limit (and at least ``min_samples``).
_SAMPLES_PER_SLOT = 2
#: Concurrency must change at least this much between two epochs to compare them.
_MIN_CHANGE = 1.15
#: An epoch counts as limit-bound when requests waited for the limit this much of its time.
_HELD = 0.5
_PROBE_UP = 1.25
_PROBE_DOWN = 0.8
_DECREASE = 0.7


@dataclass(frozen=True)
class Measurement:
    """One epoch: its limit, mean requests in flight, latency (seconds per unit of work:
    per request, or per completion token where known), and whether the limit held requests
    back for most of it."""

    limit: int
    in_flight: float
    latency: float
    held: bool

    @property
    def throughput(self) -> float:
        """Units of work (requests, or completion tokens) per second, by Little's law."""
        return self.in_flight / self.latency if self.latency > 0 else math.inf


def efficiency(before: Measurement, after: Measurement) -> float | None:
    """How much of the change in concurrency from ``before`` to ``after`` became throughput:
    about 1 while the server has room, about 0 once extra requests only queue. ``None`` when
    concurrency hardly changed. For a decrease it is the share of throughput lost."""
    low, high = (before, after) if after.in_flight >= before.in_flight else (after, before)
    if low.in_flight <= 0 or high.in_flight < low.in_flight * _MIN_CHANGE:
        return None
    k = high.in_flight / low.in_flight
    gain = high.throughput / low.throughput
    return (gain - 1.0) / (k - 1.0)


class AdaptiveConcurrency:
    """The concurrency limit for one server, learned from latency and throughput.

    Tell it every change of the requests in flight or waiting (:meth:`update`), every
    completed request (:meth:`sample`) and every 429 (:meth:`congested`); read :attr:`limit`.
    """

    def __init__(
        self,
        *,
        initial: int = 2,
        minimum: int = 1,
        maximum: int = 1024,
        min_samples: int = 8,
        probe_every: int = 8,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        if min_samples < 1 or probe_every < 1:
            raise ValueError("min_samples and probe_every must be at least 1")
        self.minimum = minimum
        self.maximum = maximum
        self.min_samples = min_samples
        self.probe_every = probe_every
        #: requests to keep in flight
        self.limit = initial
        self.phase: Literal["startup", "steady"] = "startup"
        #: the measurement the current epoch will be compared with
        self.reference: Measurement | None = None
        #: the last measurements, newest last (for logs and tests)
        self.history: list[Measurement] = []
        self._probe: Literal["up", "down"] | None = None
        self._next_probe: Literal["up", "down"] = "down"
        self._quiet_epochs = 0
        self._doubted = False
        #: the limit rose (or nothing was measured yet): measuring restarts at the first reply
        self._rising = True
        self._in_flight = 0
        self._waiting = 0
        # the epoch: its limit, when measuring began (None: draining to a lower limit),
        # the last change seen, in-flight x time, time held back by the limit, samples
        self._epoch_limit = initial
        self._settled_at: float | None = None
        self._last = 0.0
        self._area = 0.0
        self._held_time = 0.0
        self._samples = 0
        self._latency_sum = 0.0
        self._work_sum = 0.0

    # ------------------------------------------------------------------ inputs

    def update(self, now: float, in_flight: int, waiting: int) -> None:
        """The number of requests in flight or waiting for admission changed."""
        self._advance(now)
        self._in_flight = in_flight
        self._waiting = waiting
        if self._settled_at is None and in_flight <= self.limit:
            self._settled_at = now
            self._last = now

    def sample(
        self, now: float, latency: float, admitted_at: float, work: float | None = None
    ) -> None:
        """A request admitted at ``admitted_at`` completed after ``latency`` seconds, having
        generated ``work`` (completion tokens; ``None``: not known, counted as one request)."""
        self._advance(now)
        if self._settled_at is None or admitted_at < self._settled_at:
            return  # admitted under another limit, or before the drain: not this epoch's
        if self._rising:
            # the queue at the new limit is built (or the server's cold start is over):
            # from here on every request sent waits as long as the limit makes it
            self._rising = False
            self._begin(now)
            return
        self._samples += 1
        self._latency_sum += max(latency, 1e-6)
        self._work_sum += 1.0 if work is None else 1.0 + max(0.0, work)
        if self.phase == "startup":  # doubling gives a strong signal: one round trip will do
            enough = max(self.min_samples, self.limit)
        else:
            enough = max(self.min_samples, _SAMPLES_PER_SLOT * self.limit)
        if self._samples >= enough and now > self._settled_at:
            self._finish(now)

    def congested(self, now: float) -> None:
        """The server said it is overloaded (a 429): decrease at once."""
        self.phase = "steady"
        self._probe = None
        self.reference = None
        self._set(math.floor(self.limit * _DECREASE), now)

    # ------------------------------------------------------------------ epochs

    def _begin(self, now: float) -> None:
        self._epoch_limit = self.limit
        # measuring starts once what is in flight fits the limit (at once, going up)
        self._settled_at = now if self._in_flight <= self.limit else None
        self._last = now
        self._area = 0.0
        self._held_time = 0.0
        self._samples = 0
        self._latency_sum = 0.0
        self._work_sum = 0.0

    def _advance(self, now: float) -> None:
        if self._settled_at is None:
            return
        elapsed = max(0.0, now - self._last)
        self._area += self._in_flight * elapsed
        if self._waiting > 0 or self._in_flight >= self._epoch_limit:
            self._held_time += elapsed
        self._last = max(self._last, now)

    def _set(self, limit: int, now: float) -> None:
        self.limit = max(self.minimum, min(self.maximum, limit))
        self._rising = self.limit > self._epoch_limit
        self._begin(now)

    def _finish(self, now: float) -> None:
        assert self._settled_at is not None
        duration = now - self._settled_at
        measured = Measurement(
            limit=self._epoch_limit,
            in_flight=self._area / duration,
            latency=self._latency_sum / self._work_sum,
            held=self._held_time >= _HELD * duration,
        )
        self.history = [*self.history[-15:], measured]
        self._decide(measured, now)

    def _decide(self, measured: Measurement, now: float) -> None:
        reference, probe = self.reference, self._probe
        self._probe = None
        if self.phase == "startup":
            gain = None if reference is None else efficiency(reference, measured)
            bar = _GROW if reference is None or reference.limit < _BATCHING_FROM else _GROW_BATCHING
            if gain is None and not measured.held:
                self._set(self.limit, now)  # the caller sent fewer: nothing to learn yet
            elif reference is None or gain is None or gain >= bar:
                self._doubted = False
                self.reference = measured
                # doubling again is pointless while the caller does not fill this limit
                self._set(self.limit * 2 if measured.held else self.limit, now)
            elif not self._doubted:
                self._doubted = True  # one bad epoch may be noise: measure it once more
                self._set(self.limit, now)
            else:
                self._doubted = False
                self.phase = "steady"
                self.reference = None
                self._set(reference.limit, now)
            return
        if probe is not None and reference is not None:
            gain = efficiency(reference, measured) if measured.held else None
            if gain is None or not (gain >= _GROW if probe == "up" else gain < _SHRINK):
                self.reference = None
                self._set(reference.limit, now)
                return
            self.reference = measured
            if probe == "up":
                # room above after all (the server grew, or startup stopped on noise):
                # climb by doubling again until it stops paying
                self.phase = "startup"
                self._set(self.limit * 2, now)
            else:
                self._set(self.limit, now)
            return
        self.reference = measured if measured.held else None
        self._quiet_epochs += 1
        if measured.held and self._quiet_epochs >= self.probe_every:
            self._quiet_epochs = 0
            self._start_probe(now)
        else:
            self._set(self.limit, now)

    def _start_probe(self, now: float) -> None:
        direction = self._next_probe
        self._next_probe = "up" if direction == "down" else "down"
        if direction == "up":
            target = max(self.limit + 1, math.ceil(self.limit * _PROBE_UP))
        else:
            target = min(self.limit - 1, math.floor(self.limit * _PROBE_DOWN))
        target = max(self.minimum, min(self.maximum, target))
        if target == self.limit:
            self._set(self.limit, now)
            return
        self._probe = direction
        self._set(target, now)

"""One live status line on stderr for every long command, fed by the library's progress callbacks.

The line says how far the work is (done/total and the unit), how long it has run and how long
it may still take, what it has cost against the cap, and what the requests are doing: waiting
on a rate limit, paused after a 429, or waiting on a server that does not answer. On a terminal
it is redrawn in place a few times a second; when stderr is a file or a pipe it is written as a
plain line every ``every`` seconds (30, or ``RAFTKIT_STATUS_EVERY``) and once at the end, so
logs stay readable; ``--quiet`` silences it.

Callbacks may come from worker threads (training runs in one): :meth:`StatusLine.update` only
records under a lock, and the redraw happens in the event loop, where the client's
:meth:`~raftkit.llm.LLMClient.activity` is asked for its snapshot.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TextIO

import anyio

if TYPE_CHECKING:
    from raftkit.llm import RequestActivity
    from raftkit.llm.usage import UsageLedger

__all__ = ["StatusLine", "format_duration"]

#: A request older than this is called out ("waiting on 3 requests for 45s").
SLOW_REQUEST_S = 20.0
#: Seconds between plain lines when stderr is not a terminal (``RAFTKIT_STATUS_EVERY``
#: overrides it, e.g. for a CI log that should say more, or less).
PLAIN_EVERY_S = 30.0

_LIMITS = {"rpm": "requests/min", "tpm": "tokens/min", "concurrency": "concurrency"}


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class StatusLine:
    """The status line of one command. Use ``async with status.shown():`` around the work.

    ``ledger`` gives "$ so far (of the cap)"; ``activity`` (usually ``client.activity``) gives
    the state of the requests, and may return ``None`` (a client that does not know).
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        quiet: bool = False,
        ledger: UsageLedger | None = None,
        activity: Callable[[], RequestActivity | None] | None = None,
        live: bool | None = None,
        refresh: float = 0.25,
        every: float | None = None,
        slow_after: float = SLOW_REQUEST_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.ledger = ledger
        self.activity = activity
        self.live = live if live is not None else _is_terminal(self.stream)
        self.refresh = refresh
        self.every = every if every is not None else _plain_every()
        self.slow_after = slow_after
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._done: int | None = None
        self._total: int | None = None
        self._unit = ""
        self._phase = ""
        self._detail = ""
        self._first: tuple[float, int] | None = None  # when progress was first seen, and where
        self._requests: RequestActivity | None = None
        self._drawn = False  # a live line is on the screen (and must be cleared to print)
        self._draws = 0
        self._finished = False

    # ------------------------------------------------------------------ fed by callbacks

    def update(
        self,
        *,
        done: int | None = None,
        total: int | None = None,
        unit: str | None = None,
        phase: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Record progress (thread-safe; drawn by the ticker, not here)."""
        with self._lock:
            if phase is not None and phase != self._phase:
                self._phase = phase
                self._first = None  # a new phase has its own pace
            if unit is not None:
                self._unit = unit
            if total is not None:
                self._total = total
            if done is not None:
                self._done = done
                if self._first is None:
                    self._first = (self._clock(), done)
            if detail is not None:
                self._detail = detail

    def say(self, text: str, *, stream: TextIO | None = None) -> None:
        """Print ``text`` as a line of its own (to stdout by default) without tearing the
        status line: cleared first, redrawn by the next tick."""
        out = stream if stream is not None else sys.stdout
        with self._lock:
            self._clear()
            out.write(text + "\n")
            out.flush()

    # ------------------------------------------------------------------ drawing

    def render(self) -> str:
        """The status line as it stands (no control characters)."""
        with self._lock:
            now = self._clock()
            parts = [f"{self.label}{' ' + self._phase if self._phase else ''}"]
            if self._done is not None:
                if self._total:
                    share = min(100.0, 100.0 * self._done / self._total)
                    parts.append(f"{self._done:,}/{self._total:,} {self._unit} ({share:.0f}%)")
                else:
                    parts.append(f"{self._done:,} {self._unit}".rstrip())
            parts.append(format_duration(now - self._started))
            eta = self._eta(now)
            if eta is not None:
                parts.append(f"ETA {format_duration(eta)}")
            money = self._money()
            if money:
                parts.append(money)
            parts.extend(self._request_state())
            line = "  ".join(parts)
            return f"{line}  | {self._detail}" if self._detail else line

    def _eta(self, now: float) -> float | None:
        if self._first is None or self._done is None or not self._total:
            return None
        since, start = self._first
        advanced = self._done - start
        if advanced <= 0 or now <= since:
            return None
        return max(0.0, (self._total - self._done) * (now - since) / advanced)

    def _money(self) -> str:
        ledger = self.ledger
        if ledger is None:
            return ""
        spent = ledger.spent_usd
        if ledger.max_cost_usd is not None:
            return f"${spent:,.2f} of ${ledger.max_cost_usd:,.2f}"
        return f"${spent:,.2f}" if spent else ""

    def _request_state(self) -> list[str]:
        state = self._requests
        if state is None:
            return []
        out = []
        if state.waiting_on == "paused":
            left = f", {state.paused_for_s:.0f}s left" if state.paused_for_s else ""
            out.append(f"paused after a 429{left}")
        elif state.waiting_on is not None and state.waiting:
            out.append(f"{state.waiting} waiting on {_LIMITS[state.waiting_on]}")
        oldest = state.oldest_in_flight_s
        if state.in_flight and oldest is not None and oldest >= self.slow_after:
            out.append(f"waiting on {state.in_flight} requests for {format_duration(oldest)}")
        return out

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def draw(self) -> None:
        """Redraw in place (a terminal) or write a plain line (anything else)."""
        if self.quiet:
            return
        if self.activity is not None:
            with contextlib.suppress(Exception):  # a status line never stops the work
                self._requests = self.activity()
        text = self.render()
        with self._lock:
            self._draws += 1
            if self.live:
                width = shutil.get_terminal_size((120, 24)).columns - 1
                self.stream.write("\r\x1b[K" + text[: max(20, width)])
                self._drawn = True
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def finish(self) -> None:
        """Draw the last state and end the line; idempotent."""
        if self._finished or self.quiet:
            return
        self._finished = True
        if self._draws == 0 and self._done is None:
            return  # nothing happened worth a line (e.g. refused at the first request)
        with contextlib.suppress(OSError, ValueError):
            self.draw()
            if self.live:
                with self._lock:
                    self.stream.write("\n")
                    self.stream.flush()
                    self._drawn = False

    async def _tick(self) -> None:
        interval = self.refresh if self.live else self.every
        while True:
            await anyio.sleep(interval)
            with contextlib.suppress(OSError, ValueError):
                self.draw()

    @contextlib.asynccontextmanager
    async def shown(self) -> AsyncIterator[StatusLine]:
        """Show the line while the body runs; the body's own exception comes out as itself,
        not wrapped in the ticker's task group."""
        if self.quiet:
            yield self
            return
        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._tick)
                try:
                    yield self
                except BaseException as error:
                    failure = error
                    raise
                finally:
                    tg.cancel_scope.cancel()
                    self.finish()
        except BaseExceptionGroup as group:
            if failure is not None and group.exceptions == (failure,):
                raise failure from failure.__cause__
            raise


def _plain_every() -> float:
    text = os.environ.get("RAFTKIT_STATUS_EVERY", "")
    try:
        value = float(text)
    except ValueError:
        return PLAIN_EVERY_S
    return value if value > 0 else PLAIN_EVERY_S


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

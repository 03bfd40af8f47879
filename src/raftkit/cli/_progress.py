"""A one-line progress display on stderr (no dependency, quiet when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from raftkit.pipeline import Progress

__all__ = ["ProgressLine"]


class ProgressLine:
    """Redraws one status line, at most every ``interval`` seconds."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self._last = 0.0
        self._started = time.monotonic()
        self._live = self.stream.isatty()

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.chunks_done == p.chunks_total
        if not final and now - self._last < self.interval:
            return
        self._last = now
        width = 28
        filled = int(width * p.chunks_done / p.chunks_total) if p.chunks_total else width
        bar = "#" * filled + "-" * (width - filled)
        rate = 60.0 * p.examples / max(now - self._started, 1e-9)
        line = (
            f"[{bar}] chunks {p.chunks_done}/{p.chunks_total}  questions {p.questions}  "
            f"examples {p.examples}  rejected {p.rejected}  {rate:,.0f} ex/min"
        )
        if self._live:
            self.stream.write("\r" + line)
            if final:
                self.stream.write("\n")
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()

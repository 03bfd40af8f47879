"""Floor 4: ``RUN/report.html``, a page that shows a person what a generation run made.

:func:`scan_run` reads the run directory once, streaming: counters and histograms, a seeded
reservoir sample of examples and of rejections per reason — memory and page size stay flat
whether the run holds a hundred examples or a million. :func:`render_run_html` turns that into
one self-contained page (inline CSS and SVG, no external resource); :func:`write_run_viewer`
does both off the event loop and writes the file. This is ``raftkit show RUN``.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from raftkit.errors import UsageError
from raftkit.run_dir import RunDir
from raftkit.run_viewer._quotes import locate_quotes
from raftkit.run_viewer._render import render_run_html
from raftkit.run_viewer._scan import (
    DocumentCoverage,
    RunView,
    SampledExample,
    SampledRejection,
    scan_run,
)

__all__ = [
    "DEFAULT_SAMPLE",
    "DocumentCoverage",
    "RunView",
    "SampledExample",
    "SampledRejection",
    "locate_quotes",
    "render_run_html",
    "scan_run",
    "write_run_viewer",
]

#: Examples shown on the page unless asked otherwise.
DEFAULT_SAMPLE = 12


async def write_run_viewer(
    run_dir: str | Path, *, sample: int = DEFAULT_SAMPLE, seed: int = 0
) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    ``sample`` examples are drawn at random with ``seed``: the same run, sample and seed give
    the same page, byte for byte.
    """
    if sample < 0:
        raise UsageError(f"--sample must be 0 or more, not {sample}")

    def build() -> str:
        return render_run_html(scan_run(run_dir, sample=sample, seed=seed))

    html = await anyio.to_thread.run_sync(build)
    target = RunDir(run_dir).report_html
    tmp = target.with_suffix(".html.tmp")
    await anyio.Path(tmp).write_text(html, encoding="utf-8")
    await anyio.Path(tmp).replace(target)
    return target

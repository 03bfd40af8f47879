"""The simulator in a process of its own, for benchmarks: its request log and its work must
count neither in the benchmark's memory nor in its CPU time."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["simulator_process"]


@contextmanager
def simulator_process(*flags: str) -> Iterator[tuple[str, str]]:
    """``python -m raftkit.testing --port 0 FLAGS``; yields its ``(base_url, api_key)`` as its
    banner prints them, and stops it on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "raftkit.testing", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline() + process.stdout.readline()
        found = dict(re.findall(r"(base_url|api_key)=(\S+)", banner))
        yield found["base_url"], found["api_key"]
    finally:
        process.terminate()
        process.wait()

"""Reading source files off the event loop."""

from __future__ import annotations

from pathlib import Path

import anyio

from raftkit.errors import ExtractionError

__all__ = ["read_bytes", "read_head"]


async def read_bytes(path: Path) -> bytes:
    """The bytes of ``path``; I/O failures become :class:`ExtractionError` naming it."""
    try:
        return await anyio.Path(path).read_bytes()
    except OSError as e:
        raise ExtractionError(str(path), f"cannot read file: {e.strerror or e}") from e


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


async def read_head(path: Path, size: int = 1024) -> bytes:
    """The first ``size`` bytes of ``path`` (for magic-byte sniffing); empty if unreadable."""
    try:
        return await anyio.to_thread.run_sync(_head, path, size)
    except OSError:
        return b""

"""What owns resources (an HTTP client, files, a generator) and closes them (floor 1).

The clients, the fine-tuning providers and the folder walk are used as ``async with x: ...``,
which closes them however the block ends; :class:`AsyncResource` gives them that once.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

__all__ = ["AsyncResource"]


class AsyncResource(abc.ABC):
    """An async context manager whose exit awaits :meth:`aclose`."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release what this object opened (never what it was given)."""

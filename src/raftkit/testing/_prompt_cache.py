"""Prompt caching as OpenAI documents it: identical prefixes of 1,024 tokens or more.

Every served prompt writes its prefix blocks to a cache: the first 1,024 tokens, then each
further 128 tokens. A later prompt that starts with a cached prefix reports the longest one
as ``usage.prompt_tokens_details.cached_tokens`` (so always 0, or 1,024 + a multiple of 128).

A cache entry lives ``ttl`` seconds of the simulated clock after its last use (OpenAI: 5 to 10
minutes of inactivity, up to an hour; ``prompt_cache_retention: "24h"`` keeps it a day).
Requests are routed by their prefix together with ``prompt_cache_key``, as OpenAI routes
them, so the same prefix sent under another key misses. Entries are per model (or Azure
deployment) and per account (the simulator serves one account).
"""

from __future__ import annotations

import hashlib
import threading
from array import array
from collections.abc import Sequence

__all__ = ["MINIMUM_TOKENS", "STEP_TOKENS", "PromptCache"]

MINIMUM_TOKENS = 1024
STEP_TOKENS = 128
_EXTENDED_TTL = 24 * 3600.0
_MAX_ENTRIES = 200_000


class PromptCache:
    """Cached prompt prefixes with their expiry on the simulated clock; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[bytes, float] = {}
        self._writes = 0

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()

    def __len__(self) -> int:
        return len(self._expiry)

    def serve(
        self,
        scope: str,
        route_key: str | None,
        units: Sequence[int],
        *,
        now: float,
        ttl: float,
        retention: str | None = None,
    ) -> int:
        """Cached tokens for a prompt of ``units``, then record its prefixes as used at ``now``."""
        if len(units) < MINIMUM_TOKENS:
            return 0
        lifetime = _EXTENDED_TTL if retention == "24h" else ttl
        keys = _prefix_keys(scope, route_key, units)
        cached = 0
        with self._lock:
            for length, key in keys:
                expiry = self._expiry.get(key)
                if expiry is None or expiry <= now:
                    break
                cached = length
            for _, key in keys:
                self._expiry[key] = now + lifetime
            self._writes += 1
            if self._writes % 1024 == 0 or len(self._expiry) > _MAX_ENTRIES:
                self._prune(now)
        return cached

    def _prune(self, now: float) -> None:
        expired = [key for key, expiry in self._expiry.items() if expiry <= now]
        for key in expired:
            del self._expiry[key]
        if len(self._expiry) > _MAX_ENTRIES:  # still too many: drop the oldest ones
            for key, _ in sorted(self._expiry.items(), key=lambda kv: kv[1])[
                : len(self._expiry) - _MAX_ENTRIES
            ]:
                del self._expiry[key]


def _prefix_keys(
    scope: str, route_key: str | None, units: Sequence[int]
) -> list[tuple[int, bytes]]:
    """(prefix length, key) for the 1,024-token prefix and every 128 tokens after it."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{scope}\x00{route_key or ''}\x00".encode())
    data = array("q", units).tobytes()
    width = array("q").itemsize
    keys: list[tuple[int, bytes]] = []
    start = 0
    end = MINIMUM_TOKENS
    while end <= len(units):
        digest.update(data[start * width : end * width])
        keys.append((end, digest.copy().digest()))
        start, end = end, end + STEP_TOKENS
    return keys

"""The journal hook: where paid responses are looked up and appended before they are used.

A client made with ``client.with_store(store)`` asks ``store.get(key)`` before every chat and
embedding request and, on a miss, sends the request and awaits ``store.put(key, request,
response)`` **before** it returns the response to its caller. A run killed after ``put``
never pays for that response again.

A :class:`DeferringStore` also has ``async on_miss(key, request, *, model, sample)``: the client
awaits it before a chat request it is about to pay for, and the store may raise
:class:`Deferred` to keep the request for later instead (how :mod:`raftkit.batch` collects
requests for the Batch API).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from raftkit.llm._base import ChatRequest, EndpointIdentity

__all__ = ["Deferred", "DeferringStore", "ResponseStore", "canonical_json", "request_key"]


class Deferred(BaseException):
    """Raised by a store's ``on_miss``: the request was kept to be sent later (in a batch).

    Nothing failed, so it is not a :class:`~raftkit.errors.RaftkitError`; and like
    cancellation it derives from :class:`BaseException`, so a plug-in that catches
    ``Exception`` around a client call lets it through to the code that deferred it.
    """

    def __init__(self, key: str) -> None:
        super().__init__(f"request {key[:12]}… deferred to a batch")
        self.key = key


@runtime_checkable
class ResponseStore(Protocol):
    """Append-only storage of paid responses, keyed by :func:`request_key`."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The stored response body for ``key``, or ``None``."""
        ...

    async def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        """Persist ``response`` (the parsed JSON body) for ``key`` before it is used."""
        ...


@runtime_checkable
class DeferringStore(ResponseStore, Protocol):
    """A :class:`ResponseStore` that may keep a chat request for later instead of paying now."""

    async def on_miss(self, key: str, request: ChatRequest, *, model: str, sample: int) -> None:
        """Called before a chat request not in the store is sent; raise :class:`Deferred`
        to keep it (the call then raises ``Deferred`` to its caller), or return to send it."""
        ...


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON with non-ASCII text kept as is (CJK stays readable)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(
    method: str,
    path: str,
    body: Mapping[str, Any] | None,
    sample: int = 0,
    *,
    endpoint: EndpointIdentity | None = None,
) -> str:
    """sha256 of the canonical request (method, relative path, body; no credentials), sample
    and the identity of the endpoint it goes to.

    ``sample`` separates deliberate repeats of one request, such as re-asks after an invalid
    answer, which must not replay each other. ``endpoint`` separates the same request sent to
    two services (the simulator and a real teacher); a key without one is that of a client
    that cannot name its endpoint.
    """
    payload: dict[str, Any] = {
        "method": method.upper(),
        "path": path.strip("/"),
        "body": dict(body) if body is not None else None,
        "sample": sample,
    }
    if endpoint is not None:
        payload["endpoint"] = endpoint.model_dump()
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()

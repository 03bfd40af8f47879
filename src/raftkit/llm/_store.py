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

__all__ = [
    "TRUNCATION_RETRY_SAMPLE",
    "UNKEYED_FIELDS",
    "Deferred",
    "DeferringStore",
    "ResponseStore",
    "canonical_json",
    "request_key",
    "truncation_retry_sample",
]

#: Body fields left out of a request's journal key: how long a reply may be (the completion
#: cap, which a run learns as it goes and may set differently after a resume) and where a
#: provider routes the request for its prompt cache. Neither changes what a complete reply
#: says, so a resumed run with other caps still finds every journaled response.
UNKEYED_FIELDS = frozenset(
    {"max_tokens", "max_completion_tokens", "prompt_cache_key", "prompt_cache_retention"}
)

#: Added to a call's ``sample`` for the one re-ask of a reply cut by its cap (``finish_reason:
#: "length"``) with a larger cap: the same request keyed apart from the cut reply, the same
#: way on every run (and in a Batch API line, whose ``custom_id`` is the key).
TRUNCATION_RETRY_SAMPLE = 1 << 31


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


def truncation_retry_sample(sample: int) -> int:
    """The ``sample`` of the re-ask, with a larger cap, of a reply cut at its cap."""
    return sample + TRUNCATION_RETRY_SAMPLE


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
    that cannot name its endpoint. The body's :data:`UNKEYED_FIELDS` (the completion cap and
    prompt-cache routing) are left out: a re-ask of a reply cut by its cap is told apart by
    its sample (:func:`truncation_retry_sample`), not by its cap.
    """
    kept = None
    if body is not None:
        kept = {name: value for name, value in body.items() if name not in UNKEYED_FIELDS}
    payload: dict[str, Any] = {
        "method": method.upper(),
        "path": path.strip("/"),
        "body": kept,
        "sample": sample,
    }
    if endpoint is not None:
        payload["endpoint"] = endpoint.model_dump()
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()

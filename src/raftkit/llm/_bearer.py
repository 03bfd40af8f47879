"""Bearer tokens from a caller's token provider (Microsoft Entra ID), shared by the Azure clients.

The inference client and the management client both take a ``token_provider`` — typically
``azure.identity.get_bearer_token_provider(credential, scope)`` — and ask it before every
attempt, so a token that expires during a long run is refreshed.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable

import anyio.to_thread

from raftkit.errors import UsageError

__all__ = ["BearerTokens", "TokenProvider"]

#: Returns a Microsoft Entra ID access token, e.g. ``azure.identity.get_bearer_token_provider
#: (credential, "https://cognitiveservices.azure.com/.default")``; may be sync or async.
TokenProvider = Callable[[], str | Awaitable[str]]

# tokens kept for redaction: a refreshed token may still appear in a late error message
_REMEMBERED_TOKENS = 4


class BearerTokens:
    """The ``Authorization`` header from ``provider``, and the tokens to redact from errors."""

    def __init__(self, provider: TokenProvider) -> None:
        if not callable(provider):
            raise UsageError("token_provider must be a callable returning a bearer token")
        self._provider = provider
        self._seen: deque[str] = deque(maxlen=_REMEMBERED_TOKENS)

    async def header(self) -> dict[str, str]:
        token = await _call(self._provider)
        if not isinstance(token, str) or not token:
            raise UsageError("the token_provider returned no token")
        if token not in self._seen:
            self._seen.append(token)
        return {"Authorization": f"Bearer {token}"}

    def secrets(self) -> tuple[str, ...]:
        return tuple(self._seen)


async def _call(provider: TokenProvider) -> str:
    # azure-identity's sync providers may refresh over the network: keep them off the loop.
    # An object with an async __call__ counts as async too.
    if inspect.iscoroutinefunction(provider) or inspect.iscoroutinefunction(
        getattr(provider, "__call__", None)  # noqa: B004 - an async __call__ on an object
    ):
        result = provider()
    else:
        result = await anyio.to_thread.run_sync(provider)
    if inspect.isawaitable(result):
        return await result
    return result

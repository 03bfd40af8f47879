"""The client for Azure OpenAI: deployment URLs with ``api-version``, or the ``/openai/v1`` API."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from raftkit.errors import UsageError
from raftkit.llm._base import EndpointIdentity, StructuredMode
from raftkit.llm._bearer import BearerTokens, TokenProvider
from raftkit.llm._openai_shaped import (
    DEFAULT_STRUCTURED_ATTEMPTS,
    EmbeddingFormat,
    MaxTokensField,
    OpenAIShapedClient,
    credential_fingerprint,
    resolve_retry,
)
from raftkit.llm._retry import RetryPolicy
from raftkit.llm._secrets import Secret, redact_url, url_secrets
from raftkit.llm._transport import Transport
from raftkit.llm.limiter import LimiterRegistry
from raftkit.llm.usage import UsageLedger

__all__ = ["AzureOpenAIClient", "TokenProvider"]


class AzureOpenAIClient(OpenAIShapedClient):
    """Azure OpenAI. ``model`` is the deployment name.

    Each setting is taken from its argument, else from the environment:

    - ``endpoint`` / ``AZURE_OPENAI_ENDPOINT``: ``https://<resource>.openai.azure.com``.
    - ``api_key`` / ``AZURE_OPENAI_API_KEY``, sent as the ``api-key`` header; or instead
      ``token_provider`` for Microsoft Entra ID, called before every attempt (so tokens
      refresh) and sent as ``Authorization: Bearer``. A sync provider runs in a worker
      thread because azure-identity may do network I/O to refresh.
    - ``api_version`` / ``OPENAI_API_VERSION``: required for deployment URLs
      (``/openai/deployments/{model}/chat/completions?api-version=...``).

    With ``v1=True`` the client uses the ``/openai/v1/`` API instead: the OpenAI paths with
    the deployment name as ``model`` in the body and no ``api-version``.
    The other arguments are those of :class:`~raftkit.llm.OpenAIClient`.

    ``prompt_cache_key`` is not sent (Azure's published specs do not list it; Azure caches
    by prefix alone); set ``send_prompt_cache_key = True`` on a client to send it anyway.
    """

    send_prompt_cache_key = False

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        api_key: str | Secret | None = None,
        token_provider: TokenProvider | None = None,
        api_version: str | None = None,
        v1: bool = False,
        http_client: httpx.AsyncClient | None = None,
        limiters: LimiterRegistry | None = None,
        ledger: UsageLedger | None = None,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        timeout: float | httpx.Timeout | None = None,
        limits: httpx.Limits | None = None,
        structured_mode: StructuredMode | None = None,
        max_structured_attempts: int = DEFAULT_STRUCTURED_ATTEMPTS,
        default_max_tokens: int = 1024,
        max_tokens_field: MaxTokensField = "max_completion_tokens",
        embedding_format: EmbeddingFormat = "float",
        embedding_concurrency: int = 4,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        endpoint = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT") or None
        if endpoint is None:
            raise UsageError(
                "no Azure OpenAI endpoint: pass endpoint=... or set AZURE_OPENAI_ENDPOINT "
                "(https://<resource>.openai.azure.com)"
            )
        if api_key is not None and token_provider is not None:
            raise UsageError("pass either api_key or token_provider, not both")
        if api_key is None and token_provider is None:
            api_key = os.environ.get("AZURE_OPENAI_API_KEY") or None
            if api_key is None:
                raise UsageError(
                    "no Azure OpenAI credentials: pass api_key=... or set "
                    "AZURE_OPENAI_API_KEY, or pass token_provider=... for Microsoft Entra ID"
                )
        self._api_key = Secret(api_key) if api_key is not None else None
        self._bearer = BearerTokens(token_provider) if token_provider is not None else None
        self.v1 = v1
        self.api_version = api_version or os.environ.get("OPENAI_API_VERSION") or None
        if not v1 and self.api_version is None:
            raise UsageError(
                "no Azure OpenAI API version: pass api_version=... or set OPENAI_API_VERSION "
                "(e.g. 2024-10-21), or use v1=True for the /openai/v1/ API"
            )
        self._url_secrets = tuple(Secret(v) for v in url_secrets(endpoint))
        self.endpoint = endpoint.rstrip("/")
        root = self.endpoint
        for suffix in ("/openai/v1", "/openai"):
            if root.endswith(suffix):
                root = root[: -len(suffix)]
        base_url = f"{root}/openai/v1/" if v1 else f"{root}/openai/"
        params = {} if v1 or self.api_version is None else {"api-version": self.api_version}
        key_value = self._api_key.get_secret_value() if self._api_key is not None else None
        fingerprint = credential_fingerprint(key_value) if key_value else "entra-id"
        transport = Transport(
            base_url=base_url,
            auth=self._auth_headers,
            scope=f"{redact_url(root)}#{fingerprint}",
            http_client=http_client,
            timeout=timeout,
            limits=limits,
            retry=resolve_retry(retry, max_retries),
            limiters=limiters if limiters is not None else LimiterRegistry(),
            ledger=ledger if ledger is not None else UsageLedger(),
            default_headers=default_headers,
            default_params=params,
            secrets=self._known_secrets,
        )
        super().__init__(
            transport=transport,
            structured_mode=structured_mode,
            default_max_tokens=default_max_tokens,
            max_structured_attempts=max_structured_attempts,
            max_tokens_field=max_tokens_field,
            embedding_format=embedding_format,
            embedding_concurrency=embedding_concurrency,
            endpoint_identity=EndpointIdentity.from_url(
                "azure", base_url, api_version=None if v1 else self.api_version
            ),
        )

    def _chat_route(self, model: str) -> tuple[str, bool]:
        if self.v1:
            return "chat/completions", True
        return f"deployments/{quote(model, safe='')}/chat/completions", False

    def _embeddings_route(self, model: str) -> tuple[str, bool]:
        if self.v1:
            return "embeddings", True
        return f"deployments/{quote(model, safe='')}/embeddings", False

    async def _auth_headers(self) -> Mapping[str, str]:
        if self._api_key is not None:
            return {"api-key": self._api_key.get_secret_value()}
        assert self._bearer is not None
        return await self._bearer.header()

    def _known_secrets(self) -> tuple[str, ...]:
        if self._api_key is not None:
            return (self._api_key.get_secret_value(), *self._in_url())
        assert self._bearer is not None
        return (*self._bearer.secrets(), *self._in_url())

    def _in_url(self) -> tuple[str, ...]:
        return tuple(v.get_secret_value() for v in self._url_secrets)

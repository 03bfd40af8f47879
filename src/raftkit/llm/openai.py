"""The client for OpenAI's REST API and OpenAI-compatible servers (vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from raftkit.errors import UsageError
from raftkit.llm._base import EndpointIdentity, StructuredMode
from raftkit.llm._openai_shaped import (
    DEFAULT_STRUCTURED_ATTEMPTS,
    EmbeddingFormat,
    MaxTokensField,
    OpenAIShapedClient,
    credential_fingerprint,
    resolve_retry,
)
from raftkit.llm._retry import RetryPolicy
from raftkit.llm._secrets import Secret, redact_url, split_query, url_secrets
from raftkit.llm._transport import Transport
from raftkit.llm.limiter import LimiterRegistry
from raftkit.llm.usage import UsageLedger

__all__ = ["DEFAULT_BASE_URL", "OpenAIClient"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIClient(OpenAIShapedClient):
    """OpenAI, or any server that speaks the OpenAI REST API.

    Each setting is taken from its argument, else from the environment:

    - ``api_key`` / ``OPENAI_API_KEY``, sent as ``Authorization: Bearer``. Required for
      OpenAI itself; a server at another ``base_url`` (a local vLLM, Ollama or llama.cpp)
      may be used without one.
    - ``base_url`` / ``OPENAI_BASE_URL``, default ``https://api.openai.com/v1``.
    - ``organization`` / ``OPENAI_ORG_ID`` and ``project`` / ``OPENAI_PROJECT_ID``: the
      optional ``OpenAI-Organization`` and ``OpenAI-Project`` headers.

    A base URL may carry credentials a gateway wants (``https://user:KEY@host/v1``, sent as
    HTTP Basic auth by httpx, or ``https://host/v1?api-key=KEY``, whose query is sent with
    every request); they are redacted from logs, errors and reprs like the API key.

    ``http_client`` is used as given and never closed by this client. ``limiters`` and
    ``ledger`` are shared with other clients to pool rate limits and spending; by default
    the client gets its own (limits learned from the response headers, no cost limit).
    ``retry`` (or just ``max_retries``, the retries after the first call), ``timeout`` and
    ``limits`` (connection pool limits of the ``httpx.AsyncClient`` the client creates)
    shape the request path. ``timeout`` is seconds per attempt (or an ``httpx.Timeout``);
    by default a chat attempt that sets ``max_tokens`` may take 60 s plus 5 s per 25
    tokens asked for (at most 600 s), other calls 600 s, counted from sending, never from
    queueing in the rate limiter.

    ``structured_mode`` is how ``chat_structured`` asks for JSON. Left ``None``, it starts
    with ``json_schema`` and, when the server refuses that (most local servers do), falls
    back to ``json_object`` (JSON mode plus the schema in the prompt), then ``prompt``,
    remembering per model what works. Set, it is used as given and a refusal raises
    :class:`~raftkit.errors.UsageError`. ``max_tokens_field`` is the body field
    ``max_tokens`` is sent as: ``max_completion_tokens`` for OpenAI, ``max_tokens`` for
    other servers unless set. ``default_max_tokens`` is the completion size assumed for
    rate-limit and budget reservations when a call does not set ``max_tokens``.

    ``endpoint_identity`` names the service in journal keys and run settings; by default it
    is ``openai`` with the base URL's host and path. Give one to keep that name when the
    address changes but the service does not (the built-in simulator, on a new port each time).
    """

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
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
        max_tokens_field: MaxTokensField | None = None,
        embedding_format: EmbeddingFormat = "float",
        embedding_concurrency: int = 4,
        default_headers: Mapping[str, str] | None = None,
        endpoint_identity: EndpointIdentity | None = None,
    ) -> None:
        url, query = split_query(base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        official = url.rstrip("/") == DEFAULT_BASE_URL
        # held as Secrets: vars(client) must not show them
        self._url_secrets = tuple(
            Secret(v) for v in url_secrets(base_url or os.environ.get("OPENAI_BASE_URL") or "")
        )
        if api_key is None:
            env_key = os.environ.get("OPENAI_API_KEY")
            api_key = env_key or None
        if api_key is None and official:
            raise UsageError(
                "no OpenAI API key: pass api_key=... or set OPENAI_API_KEY "
                "(a server at another base_url / OPENAI_BASE_URL may be used without a key)"
            )
        self._api_key = Secret(api_key) if api_key is not None else None
        self.organization = organization or os.environ.get("OPENAI_ORG_ID") or None
        self.project = project or os.environ.get("OPENAI_PROJECT_ID") or None
        headers = dict(default_headers or {})
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        if self.project:
            headers["OpenAI-Project"] = self.project
        key_value = self._api_key.get_secret_value() if self._api_key is not None else None
        in_url = [v.get_secret_value() for v in self._url_secrets]
        credentials = "|".join(filter(None, (key_value, *in_url)))
        scope_parts = [redact_url(url.rstrip("/")), credential_fingerprint(credentials)]
        if self.organization or self.project:
            scope_parts.append(f"{self.organization or ''}/{self.project or ''}")
        transport = Transport(
            base_url=url,
            auth=self._auth_headers,
            scope="#".join(scope_parts),
            http_client=http_client,
            timeout=timeout,
            limits=limits,
            retry=resolve_retry(retry, max_retries),
            limiters=limiters if limiters is not None else LimiterRegistry(),
            ledger=ledger if ledger is not None else UsageLedger(),
            default_headers=headers,
            default_params=query,
            secrets=self._known_secrets,
        )
        super().__init__(
            transport=transport,
            structured_mode=structured_mode,
            default_max_tokens=default_max_tokens,
            max_structured_attempts=max_structured_attempts,
            max_tokens_field=max_tokens_field
            or ("max_completion_tokens" if official else "max_tokens"),
            embedding_format=embedding_format,
            embedding_concurrency=embedding_concurrency,
            endpoint_identity=endpoint_identity or EndpointIdentity.from_url("openai", url),
        )

    async def _auth_headers(self) -> Mapping[str, str]:
        if self._api_key is None:
            return {}
        return {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}

    def _known_secrets(self) -> tuple[str, ...]:
        key = () if self._api_key is None else (self._api_key.get_secret_value(),)
        return (*key, *(v.get_secret_value() for v in self._url_secrets))

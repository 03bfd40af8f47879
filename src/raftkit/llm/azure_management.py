"""Azure's management plane (ARM): the second endpoint a fine-tuned Azure model needs.

A fine-tuned model is served only once it is *deployed* on the Azure OpenAI resource, which is
an ARM operation at ``https://management.azure.com`` with an Entra ID bearer token for
``https://management.azure.com/.default`` — a different host and credential from the inference
client's. :class:`AzureManagementClient` is that second client: it sends through raftkit's one
request path (retries, error translation, secret redaction), without rate limiting or cost, and
asks its token provider the way :class:`~raftkit.llm.AzureOpenAIClient` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from raftkit.llm._bearer import BearerTokens, TokenProvider
from raftkit.llm._retry import RetryPolicy
from raftkit.llm._transport import Call, Transport
from raftkit.resources import AsyncResource

__all__ = [
    "ARM_API_VERSION",
    "MANAGEMENT_SCOPE",
    "MANAGEMENT_URL",
    "AzureAccount",
    "AzureManagementClient",
]

MANAGEMENT_URL = "https://management.azure.com"
#: The scope to ask a credential for, e.g. ``azure.identity.get_bearer_token_provider(
#: DefaultAzureCredential(), MANAGEMENT_SCOPE)``.
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
ARM_API_VERSION = "2023-05-01"


class AzureAccount(BaseModel):
    """Where an Azure OpenAI resource lives in ARM."""

    model_config = ConfigDict(frozen=True)

    subscription_id: str = Field(min_length=1)
    resource_group: str = Field(min_length=1)
    account_name: str = Field(min_length=1, description="the Azure OpenAI resource's name")

    def deployment_path(self, name: str) -> str:
        return (
            f"subscriptions/{quote(self.subscription_id, safe='')}"
            f"/resourceGroups/{quote(self.resource_group, safe='')}"
            f"/providers/Microsoft.CognitiveServices/accounts/{quote(self.account_name, safe='')}"
            f"/deployments/{quote(name, safe='')}"
        )


class AzureManagementClient(AsyncResource):
    """A bearer-token client for ARM (or any base URL). An async context manager.

    ``token_provider`` is called before every attempt (sync ones in a worker thread) so tokens
    refresh; it is never logged. ``http_client`` is used as given and not closed.
    """

    def __init__(
        self,
        *,
        token_provider: TokenProvider,
        base_url: str = MANAGEMENT_URL,
        api_version: str = ARM_API_VERSION,
        http_client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> None:
        self._bearer = BearerTokens(token_provider)
        self.api_version = api_version
        self._transport = Transport(
            base_url=base_url,
            auth=self._bearer.header,
            scope=f"{base_url.rstrip('/')}#arm",
            http_client=http_client,
            timeout=timeout,
            retry=retry,
            default_params={"api-version": api_version},
            secrets=self._bearer.secrets,
        )

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def __repr__(self) -> str:
        return f"AzureManagementClient(base_url={self.base_url!r}, credentials=***)"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``path`` is relative to the base URL; a non-2xx status raises a raftkit error."""
        reply = await self._transport.send(Call(method, path.lstrip("/"), json=json, params=params))
        return reply.response

    async def aclose(self) -> None:
        await self._transport.aclose()

"""What the service says about a model: ``GET models/{id}`` and ``GET models`` (floor 2).

OpenAI's ``Model`` carries ``shutdown_date`` (``null`` when none is announced); Azure's
versioned authoring surface (``/openai/models?api-version=...``) answers its own ``Model`` with
``capabilities``, ``lifecycle_status`` and ``deprecation.fine_tune`` / ``deprecation.inference``
(Unix seconds), the two phases of a retirement. :class:`ModelInfo` reads both.

Each answer also carries the server's ``Date`` header: it is the service's "today", which the
lifecycle checks prefer to the local clock (the simulator's ``Date`` is its simulated clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import NotFoundError, PermissionDeniedError
from raftkit.llm._api_errors import json_of

if TYPE_CHECKING:
    import httpx

    from raftkit.llm._base import LLMClient

__all__ = [
    "ModelInfo",
    "ModelListing",
    "ModelLookup",
    "list_models",
    "retrieve_model",
    "server_time",
]


class ModelInfo(BaseModel):
    """One model as the service lists it (OpenAI's or Azure's ``Model``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    created: int | None = None
    owned_by: str | None = None
    shutdown_date: date | None = Field(None, description="OpenAI: the announced shutdown")
    base_model: str | None = Field(None, description="Azure: the base of a fine-tuned model")
    lifecycle_status: str | None = Field(None, description="Azure: generally-available, ...")
    fine_tune_until: date | None = Field(None, description="Azure: deprecation.fine_tune")
    inference_until: date | None = Field(None, description="Azure: deprecation.inference")
    fine_tunable: bool | None = Field(None, description="Azure: capabilities.fine_tune")
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def shutdown(self) -> date | None:
        """The day it stops serving: OpenAI's ``shutdown_date`` or Azure's inference end."""
        return self.shutdown_date or self.inference_until

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> ModelInfo:
        capabilities = body.get("capabilities")
        deprecation = body.get("deprecation")
        ends: Mapping[str, Any] = deprecation if isinstance(deprecation, Mapping) else {}
        fine_tunable = capabilities.get("fine_tune") if isinstance(capabilities, Mapping) else None
        created = body.get("created", body.get("created_at"))
        return cls(
            id=str(body.get("id") or ""),
            created=created if isinstance(created, int) else None,
            owned_by=body.get("owned_by") if isinstance(body.get("owned_by"), str) else None,
            shutdown_date=_day(body.get("shutdown_date")),
            base_model=body.get("model") if isinstance(body.get("model"), str) else None,
            lifecycle_status=(
                body["lifecycle_status"] if isinstance(body.get("lifecycle_status"), str) else None
            ),
            fine_tune_until=_day(ends.get("fine_tune")),
            inference_until=_day(ends.get("inference")),
            fine_tunable=fine_tunable if isinstance(fine_tunable, bool) else None,
            raw=dict(body),
        )


class ModelLookup(BaseModel):
    """The answer to ``GET models/{id}``: the model, or ``None`` when the service says it does
    not exist (``not_found`` then holds the service's message) or would not say (``withheld``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    model: ModelInfo | None
    not_found: str | None = None
    withheld: str | None = Field(None, description="the service refused to say (403)")
    server_time: datetime | None = Field(None, description="the response's Date header")


class ModelListing(BaseModel):
    """The answer to ``GET models``."""

    model_config = ConfigDict(frozen=True)

    models: list[ModelInfo]
    server_time: datetime | None = None

    def get(self, name: str) -> ModelInfo | None:
        return next((m for m in self.models if m.id == name), None)


def _day(value: Any) -> date | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).date()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def server_time(response: httpx.Response) -> datetime | None:
    """The ``Date`` header of a response as an aware datetime, if it has a valid one."""
    header = response.headers.get("date")
    if not header:
        return None
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


async def list_models(client: LLMClient) -> ModelListing:
    """Every model the service lists for this account (a free call)."""
    response = await client.request("GET", "models")
    body = json_of(response)
    data = body.get("data")
    models = [ModelInfo.from_api(m) for m in data or [] if isinstance(m, Mapping) and "id" in m]
    return ModelListing(models=models, server_time=server_time(response))


async def retrieve_model(client: LLMClient, name: str) -> ModelLookup:
    """What the service says of ``name`` (a free call); a 404 is an answer, not an error.

    On a 404 the listing is read too: for the service's date (a 404 body carries none), and
    because some OpenAI-compatible servers list models without serving ``GET models/{id}``.
    A key not allowed to read models (403) gets ``withheld``: the service did not say.
    """
    try:
        response = await client.request("GET", f"models/{quote(name, safe='')}")
    except PermissionDeniedError as e:
        return ModelLookup(name=name, model=None, withheld=e.message)
    except NotFoundError as e:
        try:
            listing = await list_models(client)
        except (NotFoundError, PermissionDeniedError):
            return ModelLookup(name=name, model=None, not_found=e.message)
        return ModelLookup(
            name=name,
            model=listing.get(name),
            not_found=None if listing.get(name) else e.message,
            server_time=listing.server_time,
        )
    return ModelLookup(
        name=name, model=ModelInfo.from_api(json_of(response)), server_time=server_time(response)
    )

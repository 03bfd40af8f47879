"""Azure management (ARM) deployments of Cognitive Services accounts.

``PUT /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/
{account}/deployments/{name}?api-version=2023-05-01`` creates (or updates) a deployment whose
``properties.provisioningState`` reads ``Creating`` (``Updating``) until the configured delay
has passed on the simulated clock and ``Succeeded`` after; from then on the deployment name is
routed by the core's Azure ``/openai/deployments/{name}/...`` routes to the deployed model.
``GET`` shows one deployment (or lists them), ``DELETE`` removes one.

Deployment types are ARM ``sku.name`` values (compared without case): ``Standard``,
``GlobalStandard``, ``DataZoneStandard``, ``ProvisionedManaged``,
``GlobalProvisionedManaged``, ``DataZoneProvisionedManaged``, ``GlobalBatch``,
``DataZoneBatch`` and ``DeveloperTier``. A fine-tuned model may be deployed only with the types
its base model's card lists (``DeveloperTier`` for the gpt-4.1 family), and a
``DeveloperTier`` deployment is removed ``developer_lifetime_seconds`` (24 hours, as Azure
documents) after it was created.

The routes live at the server root, so the management endpoint is the simulator's
``azure_endpoint``. They want ``Authorization: Bearer <token>`` like ARM; the simulator cannot
verify an Entra ID token, so any token is accepted unless ``DeploymentSettings.token`` is set.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from raftkit.testing._errors import SimulatorHTTPError
from raftkit.testing._files import extension
from raftkit.testing._finetune import fine_tuned_models
from raftkit.testing._ratelimit import RateLimit
from raftkit.testing._state import SimulatorState

_SKUS = (
    "Standard",
    "GlobalStandard",
    "DataZoneStandard",
    "ProvisionedManaged",
    "GlobalProvisionedManaged",
    "DataZoneProvisionedManaged",
    "GlobalBatch",
    "DataZoneBatch",
    "DeveloperTier",
)
_SKU_BY_LOWER = {sku.lower(): sku for sku in _SKUS}

__all__ = ["DeploymentSettings", "configure_deployments", "refresh", "routes"]

_ACCOUNT_PATH = (
    "/subscriptions/{subscription}/resourceGroups/{group}"
    "/providers/Microsoft.CognitiveServices/accounts/{account}"
)
_TYPE = "Microsoft.CognitiveServices/accounts/deployments"
# Azure's quota unit: one capacity unit of a Standard deployment is 1,000 tokens and 6
# requests per minute.
_TOKENS_PER_UNIT = 1000
_REQUESTS_PER_UNIT = 6


@dataclass(frozen=True, kw_only=True)
class DeploymentSettings:
    """Behaviour of the management API. Durations are seconds of the simulated clock."""

    provisioning_seconds: float = 0.1
    developer_lifetime_seconds: float = 24 * 3600.0
    """A ``DeveloperTier`` deployment is removed this long after it was created."""
    token: str | None = None
    """The only bearer token accepted; ``None`` accepts any non-empty token."""
    enforce_capacity: bool = False
    """Give each succeeded deployment the rate limits its ``sku.capacity`` buys
    (capacity × 1,000 TPM and × 6 RPM)."""


@dataclass
class _Deployment:
    resource_id: str
    name: str
    sku: dict[str, Any]
    model: dict[str, Any]
    created_at: str
    modified_at: str
    modified_time: float
    created_time: float
    state: str
    """``Creating`` or ``Updating`` until provisioned, then ``Succeeded``."""
    etag: str
    registered: bool = False


class _Deployments:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.settings = DeploymentSettings()
        self.items: dict[str, _Deployment] = {}

    def dump(self) -> list[dict[str, Any]]:
        with self.state.lock:
            items = list(self.items.values())
        return [
            {
                name: getattr(d, name)
                for name in _Deployment.__dataclass_fields__
                if name != "registered"
            }
            for d in items
        ]

    def load(self, data: Any) -> None:
        for item in data:
            deployment = _Deployment(**item)
            self.items[deployment.resource_id.lower()] = deployment

    def expired(self, deployment: _Deployment) -> bool:
        """A developer deployment past its lifetime: removed (and no longer routed)."""
        if str(deployment.sku.get("name", "")).lower() != "developertier":
            return False
        age = self.state.now() - deployment.created_time
        if age < self.settings.developer_lifetime_seconds:
            return False
        with self.state.lock:
            key = deployment.resource_id.lower()
            if self.items.get(key) is deployment:
                del self.items[key]
                self.state.unregister_deployment(deployment.name)
        return True

    def advance(self, deployment: _Deployment) -> None:
        """Finish provisioning when it is due, and route the deployment to its model."""
        if self.expired(deployment):
            return
        with self.state.lock:
            if deployment.registered:
                return
            elapsed = self.state.now() - deployment.modified_time
            if elapsed < self.settings.provisioning_seconds:
                return
            deployment.state = "Succeeded"
            deployment.registered = True
            model = str(deployment.model["name"])
            self.state.register_model(model)
            self.state.register_deployment(deployment.name, model)
            if self.settings.enforce_capacity:
                capacity = int(deployment.sku.get("capacity") or 1)
                self.state.limiter.set_limit(
                    deployment.name,
                    RateLimit(capacity * _REQUESTS_PER_UNIT, capacity * _TOKENS_PER_UNIT),
                )


def _deployments(state: SimulatorState) -> _Deployments:
    def make() -> _Deployments:
        store = _Deployments(state)
        state.add_refresher(lambda: refresh(state))
        state.add_persistence("deployments", store.dump, store.load)
        return store

    return extension(state, "raftkit.testing._deployments", make)


def configure_deployments(state: SimulatorState, settings: DeploymentSettings) -> None:
    _deployments(state).settings = settings


def refresh(state: SimulatorState) -> None:
    """Bring every deployment up to the clock (routing those that just succeeded)."""
    store = _deployments(state)
    with state.lock:
        items = list(store.items.values())
    for deployment in items:
        store.advance(deployment)


def _arm_error(status: int, code: str, message: str) -> SimulatorHTTPError:
    return SimulatorHTTPError(status, message, type=code, code=code)


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _render(deployment: _Deployment) -> dict[str, Any]:
    capacity = int(deployment.sku.get("capacity") or 1)
    return {
        "id": deployment.resource_id,
        "type": _TYPE,
        "name": deployment.name,
        "sku": dict(deployment.sku),
        "properties": {
            "model": dict(deployment.model),
            "provisioningState": deployment.state,
            "versionUpgradeOption": "NoAutoUpgrade",
            "capabilities": {"chatCompletion": "true"},
            "rateLimits": [
                {"key": "request", "renewalPeriod": 60, "count": capacity * _REQUESTS_PER_UNIT},
                {"key": "token", "renewalPeriod": 60, "count": capacity * _TOKENS_PER_UNIT},
            ],
        },
        "systemData": {
            "createdBy": "raftkit-simulator",
            "createdByType": "User",
            "createdAt": deployment.created_at,
            "lastModifiedBy": "raftkit-simulator",
            "lastModifiedByType": "User",
            "lastModifiedAt": deployment.modified_at,
        },
        "etag": deployment.etag,
    }


def _parse_body(state: SimulatorState, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The deployment's ``sku`` and ``properties.model`` from a PUT body, checked."""
    if not isinstance(body, dict):
        raise _arm_error(400, "InvalidRequestContent", "The request content was invalid.")
    sku = body.get("sku")
    if not isinstance(sku, dict) or not isinstance(sku.get("name"), str):
        raise _arm_error(400, "InvalidResourceProperties", "The 'sku.name' is required.")
    sku_name = _SKU_BY_LOWER.get(sku["name"].lower())
    if sku_name is None:
        raise _arm_error(
            400,
            "InvalidResourceProperties",
            f"The specified SKU '{sku['name']}' is not supported. Supported: {', '.join(_SKUS)}.",
        )
    capacity = sku.get("capacity", 1)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise _arm_error(
            400, "InvalidResourceProperties", "The 'sku.capacity' must be a positive integer."
        )
    properties = body.get("properties")
    model = properties.get("model") if isinstance(properties, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise _arm_error(
            400, "InvalidResourceProperties", "The 'properties.model.name' is required."
        )
    if model.get("format", "OpenAI") != "OpenAI":
        raise _arm_error(
            400, "InvalidResourceProperties", f"Model format {model.get('format')!r} is unknown."
        )
    name = str(model["name"])
    looks_fine_tuned = name.startswith("ft:") or ".ft-" in name
    if looks_fine_tuned and name not in fine_tuned_models(state):
        raise _arm_error(
            400,
            "DeploymentModelNotFound",
            f"The model '{name}' is not a succeeded fine-tuned model of this resource.",
        )
    card = state.model(name).card if looks_fine_tuned else None
    if card is not None and card.azure_deployment_types:
        allowed = {t.lower() for t in card.azure_deployment_types}
        if sku_name.lower() not in allowed:
            raise _arm_error(
                400,
                "InvalidResourceProperties",
                f"The specified SKU '{sku_name}' is not supported for fine-tuned model '{name}'. "
                f"Supported: {', '.join(sorted(card.azure_deployment_types))}.",
            )
    clean_model = {"format": "OpenAI", "name": name}
    if isinstance(model.get("version"), str):
        clean_model["version"] = model["version"]
    return {"name": sku_name, "capacity": capacity}, clean_model


def routes(state: SimulatorState) -> list[BaseRoute]:
    """The ARM deployment routes, at the server root."""
    store = _deployments(state)

    def check(request: Request) -> None:
        bearer = request.headers.get("authorization", "")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else ""
        if not token:
            raise _arm_error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        expected = store.settings.token
        if expected is not None and not hmac.compare_digest(token, expected):
            raise _arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if not request.query_params.get("api-version"):
            raise _arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )

    def found(request: Request) -> _Deployment:
        deployment = store.items.get(request.url.path.rstrip("/").lower())
        if deployment is not None and store.expired(deployment):
            deployment = None
        if deployment is None:
            name = request.path_params["name"]
            raise _arm_error(
                404,
                "DeploymentNotFound",
                f"Deployment '{name}' could not be found.",
            )
        store.advance(deployment)
        return deployment

    async def put(request: Request) -> Response:
        check(request)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        sku, model = _parse_body(state, body)
        key = request.url.path.rstrip("/").lower()
        when = state.now()
        with state.lock:
            existing = store.items.get(key)
            if existing is not None and store.expired(existing):
                existing = None
            deployment = _Deployment(
                resource_id=request.url.path.rstrip("/"),
                name=request.path_params["name"],
                sku=sku,
                model=model,
                created_at=existing.created_at if existing else _iso(when),
                modified_at=_iso(when),
                modified_time=when,
                created_time=existing.created_time if existing else when,
                state="Updating" if existing else "Creating",
                etag=f'"{state.new_id("etag").removeprefix("etag-")}"',
            )
            store.items[key] = deployment
        state.mark_dirty()
        store.advance(deployment)
        return JSONResponse(_render(deployment), status_code=200 if existing else 201)

    async def get(request: Request) -> Response:
        check(request)
        return JSONResponse(_render(found(request)))

    async def delete(request: Request) -> Response:
        check(request)
        key = request.url.path.rstrip("/").lower()
        with state.lock:
            removed = store.items.pop(key, None)
        if removed is not None:
            state.unregister_deployment(removed.name)
            state.mark_dirty()
        return Response(status_code=200 if removed is not None else 204)

    async def list_all(request: Request) -> Response:
        check(request)
        prefix = request.url.path.rstrip("/").lower() + "/"
        refresh(state)
        with state.lock:
            chosen = [d for key, d in store.items.items() if key.startswith(prefix)]
        return JSONResponse({"value": [_render(d) for d in chosen]})

    one = _ACCOUNT_PATH + "/deployments/{name}"
    return [
        Route(one, put, methods=["PUT"]),
        Route(one, get, methods=["GET"]),
        Route(one, delete, methods=["DELETE"]),
        Route(_ACCOUNT_PATH + "/deployments", list_all, methods=["GET"]),
    ]

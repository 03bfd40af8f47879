"""``GET /v1/models`` and ``GET /v1/models/{model}`` (also under Azure's ``/openai/v1``), and
Azure's versioned ``GET /openai/models[/{model-id}]?api-version=...``.

OpenAI's listing is the catalog and the registered (fine-tuned) models with their
``shutdown_date`` (``null`` when none is announced); a model past its shutdown date is no
longer listed and answers 404. A local dialect lists its served models as that server does.
Azure's versioned listing follows the authoring spec's ``Model``: ``capabilities``,
``lifecycle_status`` and ``deprecation`` dates (the shutdown date where one is announced,
otherwise three years after the model's creation — simulated values).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from raftkit.testing._errors import SimulatorHTTPError
from raftkit.testing._state import ModelInfo, SimulatorState

__all__ = ["routes"]

_AZURE_SUPPORT_YEARS = 3
_DEPRECATING_DAYS = 90


def _model(state: SimulatorState, info: ModelInfo) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": info.id,
        "object": "model",
        "created": info.created,
        "owned_by": info.owned_by,
    }
    dialect = state.dialect
    if dialect.name == "openai":
        body["shutdown_date"] = info.shutdown_date.isoformat() if info.shutdown_date else None
    elif dialect.name == "vllm":
        window = state.config.context_window or dialect.context_window
        body.update({"root": info.id, "parent": None, "max_model_len": window})
    return body


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _azure_model(state: SimulatorState, info: ModelInfo) -> dict[str, Any]:
    resolved = state.model(info.id)
    card = resolved.card
    created = datetime.fromtimestamp(info.created, UTC).date()
    inference_end = info.shutdown_date or created + timedelta(days=365 * _AZURE_SUPPORT_YEARS)
    fine_tunable = bool(card is not None and card.fine_tuning and not resolved.fine_tuned)
    today = state.today()
    if today >= inference_end:
        lifecycle = "deprecated"
    elif (inference_end - today).days <= _DEPRECATING_DAYS:
        lifecycle = "deprecating"
    else:
        lifecycle = "generally-available"
    kind = card.kind if card is not None else "chat"
    deprecation: dict[str, int] = {"inference": _unix(inference_end)}
    if fine_tunable:
        deprecation["fine_tune"] = _unix(inference_end)
    body: dict[str, Any] = {
        "id": info.id,
        "object": "model",
        "created_at": info.created,
        "status": "succeeded",
        "capabilities": {
            "chat_completion": kind == "chat",
            "completion": False,
            "embeddings": kind == "embedding",
            "fine_tune": fine_tunable,
            "inference": True,
        },
        "lifecycle_status": lifecycle,
        "deprecation": deprecation,
    }
    if resolved.fine_tuned and resolved.fine_tune_base is not None:
        body["model"] = resolved.fine_tune_base
    return body


def _not_found(name: str) -> SimulatorHTTPError:
    return SimulatorHTTPError(
        404,
        f"The model '{name}' does not exist",
        type="invalid_request_error",
        code="model_not_found",
        param="model",
    )


def routes(state: SimulatorState) -> list[BaseRoute]:
    def find(name: str) -> ModelInfo:
        for info in state.models():
            if info.id == name:
                return info
        raise _not_found(name)

    async def list_models(request: Request) -> JSONResponse:
        data = [_model(state, m) for m in state.models()]
        return JSONResponse({"object": "list", "data": data})

    async def retrieve_model(request: Request) -> JSONResponse:
        return JSONResponse(_model(state, find(str(request.path_params["model"]))))

    async def list_azure(request: Request) -> JSONResponse:
        data = [_azure_model(state, m) for m in state.models()]
        return JSONResponse({"object": "list", "data": data})

    async def retrieve_azure(request: Request) -> JSONResponse:
        return JSONResponse(_azure_model(state, find(str(request.path_params["model"]))))

    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/openai/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
        Route("/openai/v1/models/{model:path}", retrieve_model, methods=["GET"]),
        Route("/openai/models", list_azure, methods=["GET"]),
        Route("/openai/models/{model:path}", retrieve_azure, methods=["GET"]),
    ]

"""``GET /v1/models`` and ``GET /v1/models/{model}`` (also under Azure's ``/openai/v1``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from raftkit.testing._errors import SimulatorHTTPError
from raftkit.testing._state import ModelInfo, SimulatorState

__all__ = ["routes"]


def _model(info: ModelInfo) -> dict[str, Any]:
    return {"id": info.id, "object": "model", "created": info.created, "owned_by": info.owned_by}


def routes(state: SimulatorState) -> list[BaseRoute]:
    async def list_models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [_model(m) for m in state.models()]})

    async def retrieve_model(request: Request) -> JSONResponse:
        name = str(request.path_params["model"])
        for info in state.models():
            if info.id == name:
                return JSONResponse(_model(info))
        raise SimulatorHTTPError(
            404,
            f"The model '{name}' does not exist",
            type="invalid_request_error",
            code="model_not_found",
            param="model",
        )

    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/openai/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
        Route("/openai/v1/models/{model:path}", retrieve_model, methods=["GET"]),
    ]

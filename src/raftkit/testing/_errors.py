"""OpenAI-shaped error bodies (``{"error": {"message", "type", "param", "code"}}``)."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from starlette.responses import JSONResponse

__all__ = [
    "AZURE_STYLE",
    "SimulatorHTTPError",
    "default_error_type",
    "error_body",
    "error_response",
]

AZURE_STYLE: ContextVar[bool] = ContextVar("raftkit_simulator_azure_style", default=False)
"""Set by the gateway for Azure paths: Azure's error schema has no null ``param``/``code``."""

# The type OpenAI reports for each status when the caller did not ask for a specific one.
_DEFAULT_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied_error",
    404: "invalid_request_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "requests",
    500: "server_error",
    502: "server_error",
    503: "service_unavailable",
    504: "timeout",
}


def default_error_type(status: int) -> str:
    """The error ``type`` OpenAI reports for ``status``."""
    if status in _DEFAULT_TYPES:
        return _DEFAULT_TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def error_body(
    message: str,
    *,
    type: str,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """The JSON body of an error response, valid under the spec's ``ErrorResponse`` (and, on
    Azure paths, under Azure's ``errorResponse``, which leaves out absent fields)."""
    error = {"message": message, "type": type, "param": param, "code": code}
    if AZURE_STYLE.get():
        error = {key: value for key, value in error.items() if value is not None}
    return {"error": error}


def error_response(
    status: int,
    message: str,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A complete error response; ``type`` defaults to what OpenAI sends for ``status``."""
    body = error_body(message, type=type or default_error_type(status), code=code, param=param)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


class SimulatorHTTPError(Exception):
    """Raised inside a handler to answer with an OpenAI-shaped error.

    The app turns it into :func:`error_response`, so handlers (also the fine-tuning ones) can
    stop at any depth with ``raise SimulatorHTTPError(400, "...", param="model")``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def response(self) -> JSONResponse:
        return error_response(
            self.status,
            self.message,
            type=self.type,
            code=self.code,
            param=self.param,
            headers=self.headers,
        )

"""Turning HTTP outcomes into :mod:`raftkit.errors` exceptions, with secrets redacted.

This is the boundary: nothing of httpx escapes the request path except as the ``__cause__``
of a raftkit exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from raftkit.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    status_error_class,
)
from raftkit.llm._secrets import redact, redact_json, redact_url

__all__ = [
    "ErrorDetails",
    "connection_error",
    "error_details",
    "json_of",
    "request_id_of",
    "status_error",
]

_MAX_TEXT = 500


def json_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx response (an :class:`APIError` if it is not one)."""
    try:
        body = response.json()
    except ValueError as e:
        raise APIError("the server answered with a body that is not JSON") from e
    if not isinstance(body, dict):
        raise APIError("the server answered with JSON that is not an object")
    return body


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """OpenAI's ``x-request-id``, else Azure API Management's ``apim-request-id``."""
    return headers.get("x-request-id") or headers.get("apim-request-id") or None


@dataclass(frozen=True)
class ErrorDetails:
    """What an error body says, in OpenAI's ``{"error": {...}}`` shape or Azure's variants."""

    message: str
    error_type: str | None
    code: str | None
    param: str | None
    body: Any


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def error_details(response: httpx.Response) -> ErrorDetails:
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = response.text.strip()
        message = text[:_MAX_TEXT] if text else (response.reason_phrase or "error")
        return ErrorDetails(message, None, None, None, text[:_MAX_TEXT] or None)
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        message = _as_text(error.get("message")) or response.reason_phrase or "error"
        return ErrorDetails(
            message,
            _as_text(error.get("type")),
            _as_text(error.get("code")),
            _as_text(error.get("param")),
            body,
        )
    if isinstance(error, str):  # some compatible servers: {"error": "message"}
        return ErrorDetails(error, None, None, None, body)
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):  # Azure APIM
        return ErrorDetails(body["message"], None, _as_text(body.get("code")), None, body)
    return ErrorDetails(response.reason_phrase or "error", None, None, None, body)


def status_error(
    response: httpx.Response,
    details: ErrorDetails,
    *,
    retry_after: float | None,
    secrets: Iterable[str],
    note: str | None = None,
) -> APIStatusError:
    """The :class:`~raftkit.errors.APIStatusError` subclass for an error response."""
    known = tuple(secrets)
    cls = status_error_class(response.status_code, details.code or details.error_type)
    message = redact(details.message, known)
    if note:
        message = f"{message} [{note}]"

    def clean(value: str | None) -> str | None:
        return None if value is None else redact(value, known)

    return cls(
        message,
        status_code=response.status_code,
        error_type=clean(details.error_type),
        code=clean(details.code),
        param=clean(details.param),
        request_id=request_id_of(response.headers),
        retry_after=retry_after,
        method=response.request.method,
        url=redact_url(str(response.request.url)),
        body=redact_json(details.body, known),
    )


def connection_error(
    exc: BaseException,
    *,
    method: str,
    url: str,
    secrets: Iterable[str],
    attempts: int | None = None,
) -> APIConnectionError:
    """:class:`~raftkit.errors.APITimeoutError` or :class:`~raftkit.errors.APIConnectionError`."""
    safe_url = redact_url(url)
    reason = redact(str(exc) or type(exc).__name__, tuple(secrets))
    tried = f" after {attempts} attempts" if attempts and attempts > 1 else ""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return APITimeoutError(
            f"request timed out{tried}: {method} {safe_url}: {reason}", method=method, url=safe_url
        )
    return APIConnectionError(
        f"connection failed{tried}: {method} {safe_url}: {reason}", method=method, url=safe_url
    )

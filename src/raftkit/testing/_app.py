"""The ASGI application: a gateway (ids, auth, faults, request log, the simulated ``Date``, saving
the state directory) in front of the routes."""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raftkit.testing import (
    _batches,
    _chat,
    _control,
    _deployments,
    _embeddings,
    _files,
    _finetune,
    _models,
)
from raftkit.testing._errors import AZURE_STYLE, SimulatorHTTPError, error_response
from raftkit.testing._faults import Fault
from raftkit.testing._gate import hold
from raftkit.testing._state import RecordedRequest, SimulatorState

__all__ = ["SIMULATOR_HEADER", "SimulatorGateway", "build_app"]

_SECRET_HEADERS = frozenset({"authorization", "api-key"})
_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_WRONG_KEY = (
    "Incorrect API key provided. You can find your API key at "
    "https://platform.openai.com/account/api-keys."
)
_AZURE_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
#: On every response, so a client can tell (and a report say) that nothing real answered.
SIMULATOR_HEADER = "x-raftkit-simulator"
_BROKEN_JSON = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0'


def _is_api(path: str) -> bool:
    return path.startswith(("/v1/", "/openai/"))


def _is_azure(path: str) -> bool:
    return path.startswith("/openai/")


class SimulatorGateway:
    """Gives each request an id, checks the key, injects faults and logs the exchange."""

    def __init__(self, app: ASGIApp, state: SimulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        arrived = state.clock()
        path: str = scope["path"]
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        request_id = state.new_id("req").replace("-", "_", 1)
        body = await _read_body(receive)
        status = 0
        recorded = False
        added = [(b"x-request-id", request_id.encode()), (SIMULATOR_HEADER.encode(), b"1")]
        if _is_azure(path):
            added.append((b"apim-request-id", request_id.removeprefix("req_").encode()))

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            state.record(
                RecordedRequest(
                    method=scope["method"],
                    path=path,
                    query=query,
                    headers={k: v for k, v in headers.items() if k not in _SECRET_HEADERS},
                    json=_parse(body),
                    status=status,
                    timestamp=arrived,
                    request_id=request_id,
                )
            )

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # the simulated date, so a client can tell what day the service thinks it is
                dated = [(b"date", formatdate(state.now(), usegmt=True).encode())]
                message = {**message, "headers": [*message.get("headers", []), *added, *dated]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # logged before the last byte leaves, so a client that got its answer
                # always finds its request in the log
                record()
            await send(message)

        replayed = False

        async def replay(message_receive: Receive = receive) -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await message_receive()

        style = AZURE_STYLE.set(_is_azure(path))
        try:
            refusal = self._authenticate(path, headers, query)
            if refusal is not None:
                await refusal(scope, replay, send_with_ids)
                return
            fault = state.faults.next_for(path) if _is_api(path) else None
            if fault is not None and fault.kind == "lost_reply":

                async def swallow(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = int(message["status"])

                await self.app(scope, replay, swallow)
                record()  # with the status the server meant to send
                await hold(state, receive, fault.seconds)
                await _drop(state, receive, send)
                return
            if fault is not None and fault.kind == "drop":
                record()  # with status 0: no response will ever be sent
            if fault is not None and await self._inject(fault, scope, receive, send, send_with_ids):
                return
            await self.app(scope, replay, send_with_ids)
        finally:
            AZURE_STYLE.reset(style)
            record()
            state.save_if_dirty()

    def _authenticate(
        self, path: str, headers: dict[str, str], query: dict[str, str]
    ) -> Response | None:
        expected = self.state.config.api_key
        bearer = headers.get("authorization", "")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
        if path.startswith("/v1/") and not self.state.dialect.checks_key:
            return None  # a local server started without --api-key
        if path.startswith("/v1/"):
            if not bearer:
                return error_response(401, _MISSING_KEY, type="invalid_request_error")
            if token is None or not _same(token, expected):
                return error_response(
                    401, _WRONG_KEY, type="invalid_request_error", code="invalid_api_key"
                )
        elif _is_azure(path):
            given = headers.get("api-key") or token or ""
            if not _same(given, expected):
                return error_response(401, _AZURE_DENIED, type="invalid_request_error", code="401")
            if not path.startswith("/openai/v1/") and not query.get("api-version"):
                return error_response(
                    400,
                    "Missing required query parameter 'api-version'.",
                    type="invalid_request_error",
                    code="missing_api_version",
                    param="api-version",
                )
        return None

    async def _inject(
        self, fault: Fault, scope: Scope, receive: Receive, raw_send: Send, send: Send
    ) -> bool:
        """Apply ``fault``; whether the request is finished (else it proceeds normally)."""
        if fault.kind == "latency":
            return await hold(self.state, receive, fault.seconds)
        if fault.kind == "timeout":
            if not await hold(self.state, receive, fault.seconds):
                response = error_response(
                    504, "The server timed out waiting for the model.", type="timeout"
                )
                await response(scope, receive, send)
            return True
        if fault.kind == "drop":
            await _drop(self.state, receive, raw_send)
            return True
        if fault.kind == "malformed_json":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": _BROKEN_JSON})
            return True
        response = error_response(
            fault.status,
            fault.message or f"Injected fault: HTTP {fault.status}.",
            type=fault.type,
            code=fault.code,
            param=fault.param,
            headers=fault.headers,
        )
        await response(scope, receive, send)
        return True


def _same(given: str, expected: str) -> bool:
    # bytes, because compare_digest refuses str with non-ASCII characters
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _parse(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


async def _drop(state: SimulatorState, receive: Receive, raw_send: Send) -> None:
    # uvicorn's protocol objects keep the socket transport on the cycle whose bound method
    # ``send`` is; aborting it resets the connection before a single response byte is sent.
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        await hold(state, receive, 5.0)
        return
    # Any other server: start a response and never finish it, so the client sees a broken one.
    await raw_send({"type": "http.response.start", "status": 200, "headers": []})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, type="invalid_request_error")


async def _simulator_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimulatorHTTPError)
    return exc.response()


def build_app(state: SimulatorState, extra_routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    """The simulator's ASGI app: every API's routes, then ``extra_routes``."""
    routes: list[BaseRoute] = [
        *_models.routes(state),
        *_chat.routes(state),
        *_embeddings.routes(state),
        *_files.routes(state),
        *_finetune.routes(state),
        *_batches.routes(state),
        *_deployments.routes(state),
        *_control.routes(state),
        *extra_routes,
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: _http_error,
            SimulatorHTTPError: _simulator_error,
        },
    )
    app.state.simulator = state
    return SimulatorGateway(app, state)

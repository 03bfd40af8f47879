"""The simulator's own control endpoints (not part of any service's API).

- ``GET /_simulator/clock`` → ``{"now": "2026-12-01T00:00:00Z", "unix": 1796083200.0}``;
- ``POST /_simulator/clock`` with ``{"now": "2027-01-07"}`` (an ISO 8601 date or time, or Unix
  seconds) or ``{"advance_seconds": 3600}`` moves the simulated clock and answers the same;
- ``GET /_simulator/status`` → the dialect, requests in flight and waiting for a slot, the
  peak in flight, and how many requests were answered.

They want the simulator's key (``Authorization: Bearer`` or ``api-key``) like the API does,
so a background simulator's clock can be moved from another process (a test of a CLI command).
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from raftkit.testing._errors import SimulatorHTTPError
from raftkit.testing._state import SimulatorState

__all__ = ["CLOCK_PATH", "STATUS_PATH", "routes"]

CLOCK_PATH = "/_simulator/clock"
STATUS_PATH = "/_simulator/status"


def _authorised(state: SimulatorState, request: Request) -> None:
    bearer = request.headers.get("authorization", "")
    token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else ""
    given = request.headers.get("api-key") or token
    expected = state.config.api_key
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise SimulatorHTTPError(
            401, "The simulator's control endpoints need its API key.", type="invalid_request_error"
        )


def _clock(state: SimulatorState) -> dict[str, Any]:
    now = state.now()
    iso = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return {"now": iso, "unix": now}


def routes(state: SimulatorState) -> list[BaseRoute]:
    async def get_clock(request: Request) -> JSONResponse:
        _authorised(state, request)
        return JSONResponse(_clock(state))

    async def set_clock(request: Request) -> JSONResponse:
        _authorised(state, request)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or ("now" in body) == ("advance_seconds" in body):
            raise SimulatorHTTPError(
                400,
                'Send {"now": <ISO 8601 date or time, or Unix seconds>} or '
                '{"advance_seconds": <number>}.',
                type="invalid_request_error",
            )
        try:
            if "now" in body:
                state.set_time(body["now"])
            else:
                seconds = body["advance_seconds"]
                if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                    raise TypeError("advance_seconds must be a number")
                state.set_time(state.now() + float(seconds))
        except (TypeError, ValueError) as e:
            raise SimulatorHTTPError(400, str(e), type="invalid_request_error") from e
        return JSONResponse(_clock(state))

    async def status(request: Request) -> JSONResponse:
        _authorised(state, request)
        with state.lock:
            answered = len(state.requests)
        return JSONResponse(
            {
                "dialect": state.dialect.name,
                "slots": state.slot_limit(),
                "in_flight": state.in_flight,
                "queued": state.queued,
                "peak_in_flight": state.peak_in_flight,
                "logged_requests": answered,
                "state_dir": str(state.directory.path) if state.directory is not None else None,
                **_clock(state),
            }
        )

    return [
        Route(CLOCK_PATH, get_clock, methods=["GET"]),
        Route(CLOCK_PATH, set_clock, methods=["POST"]),
        Route(STATUS_PATH, status, methods=["GET"]),
    ]

"""Batches: ``/v1/batches`` and the Azure twins, answered by the core's chat and embeddings.

The input file is checked and every request in it answered when the batch is created (in a
worker thread, by the same functions that serve ``/chat/completions`` and ``/embeddings``);
the clock then reveals the batch's life: ``validating`` → ``in_progress`` (request counts grow)
→ ``finalizing`` → ``completed`` with an output file (one line per successful request) and an
error file (one line per failed one). A malformed input file fails the batch with ``errors``
naming the line; cancelling keeps the results of the requests already processed.

The module is long because the input-file checks, the answers, the clock's view of a batch,
its rendering in two API dialects and its persistence share the private ``_Batch`` record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from raftkit.testing._chat import check_chat_model, complete_chat, validate_chat_request
from raftkit.testing._embeddings import check_embedding_model, create_embeddings
from raftkit.testing._errors import SimulatorHTTPError, default_error_type
from raftkit.testing._files import (
    API_PREFIXES,
    Dialect,
    api_error,
    dialect_of,
    extension,
    file_store,
    page,
    query_limit,
    read_object,
)
from raftkit.testing._state import SimulatorState

__all__ = ["BatchSettings", "configure_batches", "routes"]

_CHAT = "/chat/completions"
_EMBEDDINGS = "/embeddings"
_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/embeddings"})
_AZURE_ENDPOINTS = frozenset({_CHAT, _EMBEDDINGS})
_COMPLETION_WINDOW_SECONDS = 24 * 3600
_TERMINAL = frozenset({"failed", "completed", "expired", "cancelled"})


@dataclass(frozen=True, kw_only=True)
class BatchSettings:
    """Timing and limits of simulated batches. Durations are seconds of the simulated clock."""

    validating_seconds: float = 0.05
    in_progress_seconds: float = 0.1
    finalizing_seconds: float = 0.05
    cancelling_seconds: float = 0.05
    max_requests: int = 50_000


@dataclass(frozen=True)
class _Outcome:
    custom_id: str
    status_code: int
    body: dict[str, Any]


@dataclass
class _Batch:
    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    model: str | None
    created_at: int
    created_time: float
    timing: BatchSettings
    errors: list[dict[str, Any]]
    """Problems with the input file; any fails the batch at the end of validation."""
    outcomes: list[_Outcome]
    cancel_time: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    files_written: bool = False

    # -------------------------------------------------------------- the clock's view

    def stages(self) -> tuple[float, float, float]:
        started = self.timing.validating_seconds
        finalizing = started + self.timing.in_progress_seconds
        return started, finalizing, finalizing + self.timing.finalizing_seconds

    def status(self, elapsed: float) -> str:
        started, finalizing, completed = self.stages()
        if self.cancel_time is not None:
            cancelled = self.cancel_time - self.created_time + self.timing.cancelling_seconds
            return "cancelled" if elapsed >= cancelled else "cancelling"
        if elapsed < started:
            return "validating"
        if self.errors:
            return "failed"
        if elapsed < finalizing:
            return "in_progress"
        return "finalizing" if elapsed < completed else "completed"

    def processed(self, elapsed: float) -> int:
        """How many requests are done by ``elapsed`` (frozen when the batch was cancelled)."""
        if self.cancel_time is not None:
            elapsed = min(elapsed, self.cancel_time - self.created_time)
        started, finalizing, _ = self.stages()
        if elapsed < started or self.errors:
            return 0
        share = min(1.0, (elapsed - started) / max(1e-9, finalizing - started))
        return math.floor(len(self.outcomes) * share)

    def stamp(self, offset: float) -> int:
        return self.created_at + math.ceil(offset)


_BATCH_FIELDS = [
    "id",
    "endpoint",
    "input_file_id",
    "completion_window",
    "metadata",
    "model",
    "created_at",
    "created_time",
    "errors",
    "cancel_time",
    "output_file_id",
    "error_file_id",
    "files_written",
]


class _Batches:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.settings = BatchSettings()
        self.batches: dict[str, _Batch] = {}

    def elapsed(self, batch: _Batch) -> float:
        return self.state.now() - batch.created_time

    def settle(self, batch: _Batch) -> None:
        """Write the output and error files once the batch has reached them."""
        with self.state.lock:
            elapsed = self.elapsed(batch)
            status = batch.status(elapsed)
            due = status in ("completed", "cancelled") or (
                status == "finalizing" and batch.cancel_time is None
            )
            if batch.files_written or not due:
                return
            batch.files_written = True
            done = batch.outcomes[: batch.processed(elapsed)]
            store = file_store(self.state)
            good = [o for o in done if o.status_code == 200]
            bad = [o for o in done if o.status_code != 200]
            if good:
                batch.output_file_id = store.add(
                    f"{batch.id}_output.jsonl", "batch_output", self._jsonl(good)
                ).id
            if bad:
                batch.error_file_id = store.add(
                    f"{batch.id}_error.jsonl", "batch_output", self._jsonl(bad)
                ).id

    def _jsonl(self, outcomes: list[_Outcome]) -> bytes:
        lines = []
        for outcome in outcomes:
            request_id = self.state.new_id("req").replace("-", "_", 1)
            line = {
                "id": self.state.new_id("batch_req").replace("-", "_", 1),
                "custom_id": outcome.custom_id,
                "response": {
                    "status_code": outcome.status_code,
                    "request_id": request_id,
                    "body": outcome.body,
                },
                "error": None,
            }
            lines.append(json.dumps(line, ensure_ascii=False))
        return ("\n".join(lines) + "\n").encode("utf-8")

    def dump(self) -> list[dict[str, Any]]:
        with self.state.lock:
            batches = list(self.batches.values())
        return [
            {
                **{name: getattr(b, name) for name in _BATCH_FIELDS},
                "timing": dict(vars(b.timing)),
                "outcomes": [[o.custom_id, o.status_code, o.body] for o in b.outcomes],
            }
            for b in batches
        ]

    def load(self, data: Any) -> None:
        for item in data:
            item = dict(item)
            timing = BatchSettings(**item.pop("timing"))
            outcomes = [_Outcome(*o) for o in item.pop("outcomes")]
            batch = _Batch(**item, timing=timing, outcomes=outcomes)
            self.batches[batch.id] = batch

    def get(self, batch_id: str) -> _Batch | None:
        with self.state.lock:
            batch = self.batches.get(batch_id)
        if batch is not None:
            self.settle(batch)
        return batch

    def all(self) -> list[_Batch]:
        with self.state.lock:
            batches = list(self.batches.values())
        for batch in batches:
            self.settle(batch)
        return batches


def _batches(state: SimulatorState) -> _Batches:
    def make() -> _Batches:
        batches = _Batches(state)
        state.add_persistence("batches", batches.dump, batches.load)
        return batches

    return extension(state, "raftkit.testing._batches", make)


def configure_batches(state: SimulatorState, settings: BatchSettings) -> None:
    """Use ``settings`` for batches created from now on."""
    _batches(state).settings = settings


# ---------------------------------------------------------------- the input file


@dataclass
class _Request:
    line: int
    custom_id: str
    body: dict[str, Any]


def _error(code: str, message: str, line: int | None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _parse_input(
    content: bytes, endpoint: str, limit: int
) -> tuple[list[_Request], list[dict[str, Any]]]:
    """The requests of a batch input file, and what is wrong with it (by line)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return [], [_error("invalid_file_format", "The input file is not UTF-8 text.", None)]
    requests: list[_Request] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()
    accepted_urls = {endpoint, endpoint.removeprefix("/v1"), "/v1" + endpoint}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            errors.append(
                _error("invalid_json_line", "This line is not parseable as valid JSON.", number)
            )
            continue
        if not isinstance(record, dict):
            errors.append(_error("invalid_json_line", "This line is not a JSON object.", number))
            continue
        custom_id = record.get("custom_id")
        body = record.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(
                _error("missing_required_parameter", "Missing 'custom_id'.", number, "custom_id")
            )
            continue
        if record.get("method") != "POST":
            errors.append(_error("invalid_method", "'method' must be 'POST'.", number, "method"))
            continue
        if record.get("url") not in accepted_urls:
            errors.append(
                _error(
                    "invalid_url",
                    f"The url {record.get('url')!r} does not match the batch endpoint {endpoint}.",
                    number,
                    "url",
                )
            )
            continue
        if not isinstance(body, dict):
            errors.append(_error("missing_required_parameter", "Missing 'body'.", number, "body"))
            continue
        if custom_id in seen:
            errors.append(
                _error(
                    "duplicate_custom_id",
                    f"The custom_id {custom_id!r} is used more than once.",
                    number,
                    "custom_id",
                )
            )
            continue
        seen.add(custom_id)
        if isinstance(body.get("model"), str):
            models.add(body["model"])
        requests.append(_Request(number, custom_id, body))
    if len(models) > 1:
        errors.append(
            _error(
                "mismatched_model",
                f"A batch may use one model, this file uses {sorted(models)}.",
                None,
                "body.model",
            )
        )
    if not requests and not errors:
        errors.append(_error("empty_file", "The input file has no requests.", None))
    if len(requests) > limit:
        errors.append(_error("too_many_requests", f"A batch holds at most {limit} requests.", None))
    return requests, errors


def _answer(
    state: SimulatorState, dialect: Dialect, endpoint: str, body: dict[str, Any]
) -> _Outcome:
    """One request answered as the live endpoint would (``custom_id`` is filled in later)."""
    try:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise SimulatorHTTPError(400, "you must provide a model parameter", param="model")
        model = state.deployment_model(name) if dialect.azure else name
        deployment = name if dialect.azure else None
        if endpoint.endswith(_EMBEDDINGS):
            check_embedding_model(state, model, deployment=deployment)
            return _Outcome("", 200, create_embeddings(state, body, model=model))
        validate_chat_request(body)
        if body.get("stream"):
            raise SimulatorHTTPError(400, "Streaming is not supported in batches.", param="stream")
        check_chat_model(state, model, deployment=deployment)
        return _Outcome("", 200, complete_chat(state, body, model=model))
    except SimulatorHTTPError as e:
        error = {
            "message": e.message,
            "type": e.type or default_error_type(e.status),
            "param": e.param,
            "code": e.code,
        }
        return _Outcome("", e.status, {"error": error})


def _answer_all(
    state: SimulatorState, dialect: Dialect, endpoint: str, requests: list[_Request]
) -> list[_Outcome]:
    outcomes = []
    for request in requests:
        outcome = _answer(state, dialect, endpoint, request.body)
        outcomes.append(_Outcome(request.custom_id, outcome.status_code, outcome.body))
    return outcomes


# ---------------------------------------------------------------- rendering


def _usage(outcomes: list[_Outcome]) -> dict[str, Any]:
    prompt = completion = cached = 0
    for outcome in outcomes:
        if outcome.status_code != 200:
            continue
        usage = outcome.body.get("usage") or {}
        prompt += int(usage.get("prompt_tokens", 0))
        completion += int(usage.get("completion_tokens", 0))
        cached += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _render(batch: _Batch, dialect: Dialect, elapsed: float) -> dict[str, Any]:
    status = batch.status(elapsed)
    started, finalizing, completed = batch.stages()
    processed = batch.processed(elapsed)
    done = batch.outcomes[:processed]
    failed = sum(1 for o in done if o.status_code != 200)
    reached = {
        "in_progress_at": started if status not in ("validating", "failed") else None,
        "failed_at": started if status == "failed" else None,
        "finalizing_at": finalizing
        if status in ("finalizing", "completed") and batch.cancel_time is None
        else None,
        "completed_at": completed if status == "completed" else None,
    }
    if batch.cancel_time is not None:
        cancel_offset = batch.cancel_time - batch.created_time
        reached["in_progress_at"] = started if cancel_offset >= started else None
        reached["cancelling_at"] = cancel_offset
        if status == "cancelled":
            reached["cancelled_at"] = cancel_offset + batch.timing.cancelling_seconds
    body: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "model": batch.model,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": batch.created_at,
        "expires_at": batch.created_at + _COMPLETION_WINDOW_SECONDS,
        "request_counts": {
            "total": len(batch.outcomes) if status != "validating" else 0,
            "completed": processed - failed,
            "failed": failed,
        },
        "metadata": batch.metadata,
    }
    for name, offset in reached.items():
        body[name] = batch.stamp(offset) if offset is not None else None
    if status == "failed":
        body["request_counts"]["total"] = 0
        body["errors"] = _render_errors(batch.errors, dialect)
    if status in ("completed", "cancelled"):
        body["usage"] = _usage(done)
    return {key: value for key, value in body.items() if value is not None}


def _render_errors(errors: list[dict[str, Any]], dialect: Dialect) -> dict[str, Any]:
    if not dialect.versioned:
        return {"object": "list", "data": [_without_none(e) for e in errors]}
    # the authoring spec has one error object here, its line a string
    first = dict(errors[0])
    if first.get("line") is not None:
        first["line"] = str(first["line"])
    return {"object": "list", "data": _without_none(first)}


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


# ---------------------------------------------------------------- routes


def routes(state: SimulatorState) -> list[BaseRoute]:
    """``/batches`` and its sub-resources under every prefix in ``API_PREFIXES``."""
    batches = _batches(state)

    def render(batch: _Batch, dialect: Dialect) -> dict[str, Any]:
        return _render(batch, dialect, batches.elapsed(batch))

    def found(request: Request, dialect: Dialect) -> _Batch:
        batch_id = request.path_params["batch_id"]
        batch = batches.get(batch_id)
        if batch is None:
            raise api_error(dialect, 404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return batch

    async def create(request: Request) -> Response:
        dialect = dialect_of(request)
        body = await read_object(request, dialect)
        endpoint = body.get("endpoint")
        allowed = _ENDPOINTS | (_AZURE_ENDPOINTS if dialect.azure else frozenset())
        if endpoint not in allowed:
            raise api_error(
                dialect,
                400,
                f"Invalid value for 'endpoint': {endpoint!r}. Supported: {sorted(allowed)}.",
                param="endpoint",
            )
        if body.get("completion_window") != "24h":
            raise api_error(
                dialect, 400, "'completion_window' must be '24h'.", param="completion_window"
            )
        file_id = body.get("input_file_id")
        record = file_store(state).get(file_id) if isinstance(file_id, str) else None
        if record is None:
            raise api_error(
                dialect, 400, f"Invalid 'input_file_id': {file_id!r}.", param="input_file_id"
            )
        if record.purpose != "batch":
            raise api_error(
                dialect,
                400,
                f"File {record.id} has purpose '{record.purpose}'; batches need purpose 'batch'.",
                param="input_file_id",
            )
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise api_error(dialect, 400, "'metadata' must be an object.", param="metadata")
        settings = batches.settings
        requests, errors = _parse_input(record.content, str(endpoint), settings.max_requests)
        outcomes: list[_Outcome] = []
        if not errors:
            outcomes = await anyio.to_thread.run_sync(
                _answer_all, state, dialect, str(endpoint), requests
            )
        first_model = next(
            (r.body["model"] for r in requests if isinstance(r.body.get("model"), str)), None
        )
        batch = _Batch(
            id=state.new_id("batch").replace("-", "_", 1),
            endpoint=str(endpoint),
            input_file_id=record.id,
            completion_window="24h",
            metadata=metadata,
            model=first_model,
            created_at=state.unix_time(),
            created_time=state.now(),
            timing=settings,
            errors=errors,
            outcomes=outcomes,
        )
        with state.lock:
            batches.batches[batch.id] = batch
        state.mark_dirty()
        return JSONResponse(render(batch, dialect), status_code=201 if dialect.versioned else 200)

    async def list_batches(request: Request) -> Response:
        dialect = dialect_of(request)
        limit = query_limit(request, dialect, 20, 100)
        newest_first = list(reversed(batches.all()))
        chosen, more = page(
            newest_first, lambda b: b.id, after=request.query_params.get("after"), limit=limit
        )
        data = [render(b, dialect) for b in chosen]
        body: dict[str, Any] = {"object": "list", "data": data, "has_more": more}
        if data:
            body["first_id"] = data[0]["id"]
            body["last_id"] = data[-1]["id"]
        return JSONResponse(body)

    async def retrieve(request: Request) -> Response:
        dialect = dialect_of(request)
        return JSONResponse(render(found(request, dialect), dialect))

    async def cancel(request: Request) -> Response:
        dialect = dialect_of(request)
        batch = found(request, dialect)
        with state.lock:
            status = batch.status(batches.elapsed(batch))
            if status not in ("validating", "in_progress"):
                raise api_error(
                    dialect,
                    400,
                    f"Cannot cancel a batch with status '{status}'.",
                    azure_code="unexpectedEntityState",
                )
            batch.cancel_time = state.now()
        state.mark_dirty()
        return JSONResponse(render(batch, dialect))

    table: list[tuple[str, Callable[[Request], Any], str]] = [
        ("/batches", create, "POST"),
        ("/batches", list_batches, "GET"),
        ("/batches/{batch_id}", retrieve, "GET"),
        ("/batches/{batch_id}/cancel", cancel, "POST"),
    ]
    return [
        Route(prefix + path, endpoint, methods=[method])
        for prefix in API_PREFIXES
        for path, endpoint, method in table
    ]

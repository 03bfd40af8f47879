"""The OpenAI-compatible HTTP surface of :class:`~raftkit.serve.LocalChatModel`.

``GET /v1/models`` and non-streaming ``POST /v1/chat/completions`` (``max_tokens`` or
``max_completion_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``; ``n`` must be 1).
Responses and errors have OpenAI's shapes, so raftkit's own client, the ``openai`` package and
``raftkit eval`` talk to it like to any OpenAI-compatible server. Generation is CPU/GPU-bound:
it runs in a worker thread, one request at a time, and the event loop keeps answering.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from raftkit.serve.model import ChatRequest, LocalChatModel, RequestError

__all__ = ["create_app", "parse_chat_request"]


def _error(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise RequestError(
                    400, "only text content parts are supported", param=f"messages[{index}].content"
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise RequestError(
        400, "content must be a string or a list of text parts", param=f"messages[{index}].content"
    )


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RequestError(400, f"{name} must be a number from {low} to {high}", param=name)
    return float(value)


def parse_chat_request(body: Any) -> ChatRequest:
    """A chat completion body as a :class:`ChatRequest`; :class:`RequestError` when invalid
    or asking for something this server does not do (streaming, tools, n > 1)."""
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "model is required", param="model")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RequestError(400, "messages must be a non-empty list", param="messages")
    messages = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(400, "each message needs a role", param=f"messages[{index}]")
        role = "system" if message["role"] == "developer" else message["role"]
        messages.append({"role": role, "content": _text(message.get("content"), index)})
    if body.get("stream"):
        raise RequestError(400, "streaming is not supported by raftkit serve", param="stream")
    if body.get("tools") or body.get("functions"):
        raise RequestError(400, "tools are not supported by raftkit serve", param="tools")
    if body.get("n", 1) != 1:
        raise RequestError(400, "n must be 1", param="n")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise RequestError(
            400, "response_format other than text is not supported", param="response_format"
        )
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise RequestError(400, "max_tokens must be a positive integer", param="max_tokens")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) for s in stops):
        raise RequestError(400, "stop must be a string or a list of up to 4 strings", param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(400, "seed must be an integer", param="seed")
    return ChatRequest(
        messages=messages,
        model=model,
        max_tokens=limit,
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0),
        stop=[s for s in stops if s],
        seed=seed,
    )


def create_app(model: LocalChatModel) -> Starlette:
    """The Starlette app serving ``model``."""
    created = int(time.time())
    limiter = anyio.CapacityLimiter(1)

    async def models(request: Request) -> JSONResponse:
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "raftkit",
                "root": model.base.path if name == model.base_name else name,
                "parent": None if name == model.base_name else model.base_name,
            }
            for name in model.names
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not valid JSON")
        try:
            parsed = parse_chat_request(body)
            result = await anyio.to_thread.run_sync(model.complete, parsed, limiter=limiter)
        except RequestError as e:
            return _error(e.status, str(e), code=e.code, param=e.param)
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": parsed.model,
                "system_fingerprint": f"raftkit-{model.base.fingerprint[:12]}",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": result.text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": result.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "total_tokens": result.prompt_tokens + result.completion_tokens,
                },
            }
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )

"""``POST /v1/chat/completions`` (and the Azure routes to it): validate, admit, answer."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from raftkit.testing._errors import SimulatorHTTPError
from raftkit.testing._gate import admit, hold, read_json, simulated_latency
from raftkit.testing._state import SimulatorState
from raftkit.testing._teacher import (
    Teaching,
    message_text,
    raft_answer,
    structured_answer,
    vision_answer,
)
from raftkit.testing._text import estimate_tokens, stable_hash, truncate_to_tokens

__all__ = ["complete_chat", "count_prompt_tokens", "routes", "validate_chat_request"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_IMAGE_TOKENS = 85
_CACHE_BLOCK = 128
_CACHE_MINIMUM = 1024


def _bad(message: str, param: str | None) -> SimulatorHTTPError:
    return SimulatorHTTPError(400, message, type="invalid_request_error", param=param)


def _check_int(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"Invalid type for '{name}': expected an integer.", name)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _bad(f"Invalid '{name}': {value}. Expected a value {bound}.", name)


def validate_chat_request(body: dict[str, Any], *, model_required: bool = True) -> None:
    """Check the parts of ``CreateChatCompletionRequest`` the simulator relies on."""
    model = body.get("model")
    if model_required and model is None:
        raise _bad("you must provide a model parameter", "model")
    if model is not None and not isinstance(model, str):
        raise _bad("Invalid type for 'model': expected a string.", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("Invalid 'messages': expected a non-empty array of messages.", "messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _bad(f"Invalid type for '{where}': expected an object.", where)
        if message.get("role") not in _ROLES:
            role = message.get("role")
            raise _bad(f"Invalid value for '{where}.role': {role!r}.", where + ".role")
        content = message.get("content")
        if content is None and message.get("role") in ("assistant", "function"):
            continue
        if isinstance(content, list):
            for part_index, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    param = f"{where}.content[{part_index}]"
                    raise _bad(f"Invalid content part '{param}'.", param)
        elif not isinstance(content, str):
            raise _bad(
                f"Invalid type for '{where}.content': expected a string or an array of parts.",
                where + ".content",
            )
    _check_int(body, "max_tokens", 1)
    _check_int(body, "max_completion_tokens", 1)
    _check_int(body, "n", 1, 128)
    if "seed" in body and body["seed"] is not None:
        _check_int(body, "seed", -(2**63))
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        raise _bad("Invalid 'temperature': expected a number between 0 and 2.", "temperature")
    stop = body.get("stop")
    if not (stop is None or isinstance(stop, str)) and (
        not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop)
    ):
        raise _bad("Invalid 'stop': expected a string or up to 4 strings.", "stop")
    _validate_response_format(body)


def _validate_response_format(body: dict[str, Any]) -> None:
    response_format = body.get("response_format")
    if response_format is None:
        return
    if not isinstance(response_format, dict):
        raise _bad("Invalid type for 'response_format': expected an object.", "response_format")
    kind = response_format.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise _bad(f"Invalid value for 'response_format.type': {kind!r}.", "response_format.type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _bad(
                "Missing required parameter: 'response_format.json_schema.name'.",
                "response_format.json_schema.name",
            )
        if "schema" in spec and not isinstance(spec["schema"], dict):
            raise _bad(
                "Invalid type for 'response_format.json_schema.schema': expected an object.",
                "response_format.json_schema.schema",
            )
    if kind == "json_object":
        texts = " ".join(message_text(m) for m in body["messages"])
        if "json" not in texts.lower():
            raise _bad(
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                "messages",
            )


def _message_tokens(message: dict[str, Any]) -> int:
    content = message.get("content")
    images = 0
    if isinstance(content, list):
        images = sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return 4 + estimate_tokens(message_text(message)) + images * _IMAGE_TOKENS


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens as the simulator bills them: text estimate plus per-message overhead."""
    return 3 + sum(_message_tokens(m) for m in messages)


def _cached_tokens(state: SimulatorState, model: str, messages: list[dict[str, Any]]) -> int:
    # Like OpenAI's prompt caching: a repeated prefix (all but the last message) of at least
    # 1024 tokens is served from cache, in blocks of 128 tokens.
    prefix = messages[:-1]
    prefix_tokens = 3 + sum(_message_tokens(m) for m in prefix)
    if not prefix or prefix_tokens < _CACHE_MINIMUM:
        return 0
    key = stable_hash(model, json.dumps(prefix, sort_keys=True, ensure_ascii=False))
    with state.lock:
        cache: set[int] = state.extensions.setdefault("chat.prompt_cache", set())
        hit = key in cache
        cache.add(key)
    return prefix_tokens // _CACHE_BLOCK * _CACHE_BLOCK if hit else 0


def _teaching(state: SimulatorState, structured: bool) -> Teaching:
    if structured:
        return Teaching(invalid_json=state.misbehaviour.draw("invalid_json"))
    return Teaching(
        missing_answer=state.misbehaviour.draw("missing_answer"),
        invented_quote=state.misbehaviour.draw("invented_quote"),
    )


def _cut(content: str, body: dict[str, Any]) -> tuple[str, str]:
    finish = "stop"
    stop = body.get("stop")
    for sequence in [stop] if isinstance(stop, str) else stop or []:
        if sequence and sequence in content:
            content = content[: content.index(sequence)]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None and estimate_tokens(content) > limit:
        content = truncate_to_tokens(content, int(limit))
        finish = "length"
    return content, finish


def _answer(
    state: SimulatorState, body: dict[str, Any], messages: list[dict[str, Any]], index: int
) -> str:
    canonical = json.dumps(
        {"messages": messages, "rf": body.get("response_format")},
        sort_keys=True,
        ensure_ascii=False,
    )
    seed, temperature = body.get("seed"), body.get("temperature")
    variation = stable_hash(canonical, seed, temperature, index)
    vision = vision_answer(messages, variation=variation)
    if vision is not None:
        return vision
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    if kind in ("json_schema", "json_object"):
        schema = None
        if kind == "json_schema":
            schema = response_format["json_schema"].get("schema") or {"type": "object"}
        return structured_answer(
            messages, schema, variation=variation, teaching=_teaching(state, structured=True)
        )
    explore = index > 0 or seed is not None or bool(temperature)
    return raft_answer(
        messages, variation=variation, explore=explore, teaching=_teaching(state, False)
    )


def complete_chat(state: SimulatorState, body: dict[str, Any], *, model: str) -> dict[str, Any]:
    """The ``CreateChatCompletionResponse`` body for a validated request ``body``."""
    messages: list[dict[str, Any]] = body["messages"]
    choices: list[dict[str, Any]] = []
    completion_tokens = 0
    for index in range(int(body.get("n") or 1)):
        content, finish = _cut(_answer(state, body, messages, index), body)
        completion_tokens += estimate_tokens(content)
        choices.append(
            {
                "index": index,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish,
            }
        )
    prompt_tokens = count_prompt_tokens(messages)
    return {
        "id": state.new_id("chatcmpl"),
        "object": "chat.completion",
        "created": state.unix_time(),
        "model": model,
        "system_fingerprint": "fp_raftkit_sim",
        "service_tier": "default",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": _cached_tokens(state, model, messages),
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def _stream(result: dict[str, Any], include_usage: bool) -> StreamingResponse:
    base = {k: result[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"

    async def events() -> AsyncIterator[bytes]:
        for choice in result["choices"]:
            delta = {"role": "assistant", "content": choice["message"]["content"]}
            first = {"index": choice["index"], "delta": delta, "finish_reason": None}
            chunk = {**base, "choices": [first]}
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
            done = {"index": choice["index"], "delta": {}, "finish_reason": choice["finish_reason"]}
            yield f"data: {json.dumps({**base, 'choices': [done]})}\n\n".encode()
        if include_usage:
            last = {**base, "choices": [], "usage": result["usage"]}
            yield f"data: {json.dumps(last)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _handler(
    state: SimulatorState, model_of: Callable[[Request, dict[str, Any]], str | None]
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        body = await read_json(request)
        model = model_of(request, body)
        validate_chat_request(body, model_required=model is None)
        model = model or str(body["model"])
        if not state.chat_model_allowed(model):
            raise SimulatorHTTPError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                type="invalid_request_error",
                code="model_not_found",
                param="model",
            )
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        cost = count_prompt_tokens(body["messages"]) + int(
            limit or state.config.default_max_tokens
        ) * int(body.get("n") or 1)
        rate_headers = admit(state, request.path_params.get("deployment") or model, model, cost)
        result = complete_chat(state, body, model=model)
        completion_tokens = result["usage"]["completion_tokens"]
        await hold(state, request.receive, simulated_latency(state, completion_tokens))
        if body.get("stream"):
            options = body.get("stream_options") or {}
            response: Response = _stream(result, bool(options.get("include_usage")))
        else:
            response = JSONResponse(result)
        response.headers.update(rate_headers)
        response.headers["openai-processing-ms"] = str(math.ceil(1 + completion_tokens / 10))
        return response

    return endpoint


def routes(state: SimulatorState) -> list[BaseRoute]:
    def from_body(request: Request, body: dict[str, Any]) -> str | None:
        return None

    def from_deployment(request: Request, body: dict[str, Any]) -> str | None:
        return state.deployment_model(str(request.path_params["deployment"]))

    return [
        Route("/v1/chat/completions", _handler(state, from_body), methods=["POST"]),
        Route("/openai/v1/chat/completions", _handler(state, from_body), methods=["POST"]),
        Route(
            "/openai/deployments/{deployment}/chat/completions",
            _handler(state, from_deployment),
            methods=["POST"],
        ),
    ]

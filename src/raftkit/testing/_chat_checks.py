"""What a chat completion request must pass before it is answered: the body's shape, the
model (unknown or retired), ``max_tokens`` against the model's output limit and the prompt
against the context window."""

from __future__ import annotations

from typing import Any

from raftkit.testing._dialects import context_error, unknown_model_error
from raftkit.testing._errors import SimulatorHTTPError
from raftkit.testing._state import SimulatorState
from raftkit.testing._teacher import message_text

__all__ = [
    "check_chat_limits",
    "check_chat_model",
    "completion_limit",
    "context_window",
    "validate_chat_request",
]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_RETENTIONS = frozenset({"in_memory", "24h"})
_DEPRECATIONS_URL = "https://platform.openai.com/docs/deprecations"


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


def validate_chat_request(
    body: dict[str, Any], *, model_required: bool = True, json_word_required: bool = True
) -> None:
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
    key = body.get("prompt_cache_key")
    if key is not None and not isinstance(key, str):
        raise _bad("Invalid type for 'prompt_cache_key': expected a string.", "prompt_cache_key")
    retention = body.get("prompt_cache_retention")
    if retention is not None and retention not in _RETENTIONS:
        raise _bad(
            f"Invalid value for 'prompt_cache_retention': {retention!r}. Supported values are: "
            "'in_memory' and '24h'.",
            "prompt_cache_retention",
        )
    _validate_response_format(body, json_word_required=json_word_required)


def _validate_response_format(body: dict[str, Any], *, json_word_required: bool) -> None:
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
    if kind == "json_object" and json_word_required:
        texts = " ".join(message_text(m) for m in body["messages"])
        if "json" not in texts.lower():
            raise _bad(
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                "messages",
            )


def completion_limit(body: dict[str, Any]) -> int | None:
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(limit) if limit is not None else None


def context_window(state: SimulatorState, model: str) -> int | None:
    window = state.config.context_window or state.dialect.context_window
    if window is None and state.dialect.name == "openai":
        card = state.model(model).card
        window = card.context_window if card is not None else None
    return window


def check_chat_model(state: SimulatorState, model: str, *, deployment: str | None) -> None:
    """Refuse a model the service does not answer (an unknown Azure deployment is answered,
    as before: by a model of its name)."""
    if deployment is not None and not state.has_deployment(deployment):
        if state.config.chat_models is not None and not state.chat_model_allowed(model):
            raise unknown_model_error(state.dialect, model)
        if state.model(model).card is None:
            return
    refusal = state.model_refusal(model, "chat")
    if refusal == "retired":
        raise SimulatorHTTPError(
            404,
            f"The model `{model}` has been deprecated, learn more here: {_DEPRECATIONS_URL}",
            type="invalid_request_error",
            code="model_not_found",
            param="model",
        )
    if refusal is not None:
        raise unknown_model_error(state.dialect, model)


def check_chat_limits(
    state: SimulatorState, body: dict[str, Any], model: str, prompt_tokens: int
) -> None:
    limit = completion_limit(body)
    if state.dialect.name == "openai" and limit is not None:
        card = state.model(model).card
        most = card.max_output_tokens if card is not None else None
        if most is not None and limit > most:
            name = "max_completion_tokens" if body.get("max_completion_tokens") else "max_tokens"
            raise SimulatorHTTPError(
                400,
                f"{name} is too large: {limit}. This model supports at most {most} completion "
                f"tokens, whereas you provided {limit}.",
                type="invalid_request_error",
                code="invalid_value",
                param=name,
            )
    window = context_window(state, model)
    if window is not None and (prompt_tokens >= window or prompt_tokens + (limit or 0) > window):
        raise context_error(state.dialect, window, prompt_tokens, limit)

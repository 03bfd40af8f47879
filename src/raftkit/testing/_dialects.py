"""Server dialects: the simulator as OpenAI, as a llama.cpp server, or as a vLLM server.

``SimulatorConfig.dialect`` picks one. The differences are the ones a client meets at a real
server's default flags:

- ``openai`` (the default): rate limits with ``x-ratelimit-*`` headers, ``json_schema``
  structured output, the model catalog, prompt caching reported in ``usage``. Extra-body
  parameters of other servers (``guided_json``...) are refused as OpenAI refuses them.
- ``llama.cpp`` (the llama-cpp-python server): ``response_format`` ``json_schema`` is refused
  with HTTP 500 and the body llama-cpp-python sends (its request model accepts only ``text``
  or ``json_object``); ``json_object`` (optionally with a ``schema``) is honoured; no
  rate-limit headers; one request slot by default, the others wait their turn; a context
  window of 4,096 tokens; any model name is answered by the one loaded model; any API key (or
  none) is accepted; and 5 % of requests (decided per request) run away until ``max_tokens``
  or the context is full.
- ``vllm``: ``json_schema`` and vLLM's extra-body ``guided_json`` / ``guided_choice`` /
  ``structured_outputs`` are honoured; no rate-limit headers; 64 slots; a context window of
  8,192 tokens; any API key (or none) is accepted; only the served model names are answered,
  others get vLLM's own 404 body (``{"error": {..., "type": "NotFoundError", "code": 404}}``,
  an integer code).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.responses import JSONResponse

from raftkit.testing._errors import SimulatorHTTPError

__all__ = [
    "DIALECTS",
    "DialectName",
    "DialectProfile",
    "context_error",
    "extra_body_schema",
    "refuse_unsupported",
    "unknown_model_error",
]

DialectName = Literal["openai", "llama.cpp", "vllm"]

_GUIDED_KEYS = ("guided_json", "guided_choice", "guided_regex", "guided_grammar")


@dataclass(frozen=True)
class DialectProfile:
    name: DialectName
    rate_limit_headers: bool
    json_schema: bool
    """Whether ``response_format`` ``json_schema`` is supported."""
    guided_decoding: bool
    """Whether vLLM's extra-body ``guided_*`` / ``structured_outputs`` are supported."""
    json_word_required: bool
    """``json_object`` needs the word "json" in the messages (OpenAI's rule)."""
    slots: int | None
    """Requests served at once by default (``None``: no limit)."""
    context_window: int | None
    """Default context window for every model (``None``: the model card's)."""
    any_model: bool
    """Any model name is answered (a server with one model loaded ignores the name)."""
    runaway_share: float
    """Default share of requests whose output does not stop."""
    served_models: tuple[str, ...]
    """What ``GET /v1/models`` lists by default (local servers)."""
    owned_by: str
    usage_details: bool
    """``usage.prompt_tokens_details`` / ``completion_tokens_details`` are reported."""
    processing_header: bool
    """``openai-processing-ms`` is sent."""
    checks_key: bool
    """``/v1`` requests need the API key (a local server started without ``--api-key`` takes
    any key, or none)."""


DIALECTS: Mapping[DialectName, DialectProfile] = {
    "openai": DialectProfile(
        name="openai",
        rate_limit_headers=True,
        json_schema=True,
        guided_decoding=False,
        json_word_required=True,
        slots=None,
        context_window=None,
        any_model=False,
        runaway_share=0.0,
        served_models=(),
        owned_by="system",
        usage_details=True,
        processing_header=True,
        checks_key=True,
    ),
    "llama.cpp": DialectProfile(
        name="llama.cpp",
        rate_limit_headers=False,
        json_schema=False,
        guided_decoding=False,
        json_word_required=False,
        slots=1,
        context_window=4096,
        any_model=True,
        runaway_share=0.05,
        served_models=("SmolLM2-135M-Instruct",),
        owned_by="llamacpp",
        usage_details=False,
        processing_header=True,
        checks_key=False,
    ),
    "vllm": DialectProfile(
        name="vllm",
        rate_limit_headers=False,
        json_schema=True,
        guided_decoding=True,
        json_word_required=False,
        slots=64,
        context_window=8192,
        any_model=False,
        runaway_share=0.0,
        served_models=("HuggingFaceTB/SmolLM2-135M-Instruct",),
        owned_by="vllm",
        usage_details=False,
        processing_header=False,
        checks_key=False,
    ),
}

# pydantic's validation error for llama-cpp-python's ``response_format.type`` literal,
# as its server turns every unexpected exception into a 500
_LLAMA_CPP_FORMAT_ERROR = (
    "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
    "'ctx': {'expected': \"'text' or 'json_object'\"}}]"
)


class VllmError(SimulatorHTTPError):
    """An error in vLLM's own body shape (an integer ``code``: the HTTP status)."""

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.type, "param": self.param}
        return JSONResponse(
            {"error": {**error, "code": self.status}},
            status_code=self.status,
            headers=self.headers,
        )


def refuse_unsupported(profile: DialectProfile, body: Mapping[str, Any]) -> None:
    """Raise what the dialect answers to a request shape it does not support."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema" and not profile.json_schema:
        raise SimulatorHTTPError(
            500, _LLAMA_CPP_FORMAT_ERROR, type="internal_server_error", code=None, param=None
        )
    guided = [key for key in (*_GUIDED_KEYS, "structured_outputs") if key in body]
    if guided and not profile.guided_decoding:
        raise SimulatorHTTPError(
            400,
            f"Unrecognized request argument supplied: {guided[0]}",
            type="invalid_request_error",
        )


def extra_body_schema(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON schema vLLM's guided decoding asks for, if any (``guided_choice`` becomes an
    ``enum``); raises vLLM's 400 for one it cannot read."""
    choice = body.get("guided_choice")
    if choice is not None:
        if (
            not isinstance(choice, list)
            or not choice
            or not all(isinstance(c, str) for c in choice)
        ):
            raise VllmError(400, "guided_choice must be a list of strings.", type="BadRequestError")
        return {"enum": list(choice)}
    schema: Any = body.get("guided_json")
    structured = body.get("structured_outputs")
    if schema is None and isinstance(structured, dict):
        schema = structured.get("json")
    if schema is None:
        return None
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            raise VllmError(400, "guided_json is not valid JSON.", type="BadRequestError") from None
    if not isinstance(schema, dict):
        raise VllmError(400, "guided_json must be a JSON schema object.", type="BadRequestError")
    return schema


def unknown_model_error(profile: DialectProfile, model: str) -> SimulatorHTTPError:
    """The 404 for a model the server does not serve."""
    if profile.name == "vllm":
        return VllmError(
            404, f"The model `{model}` does not exist.", type="NotFoundError", param="model"
        )
    return SimulatorHTTPError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        type="invalid_request_error",
        code="model_not_found",
        param="model",
    )


def context_error(
    profile: DialectProfile, window: int, prompt_tokens: int, completion_tokens: int | None
) -> SimulatorHTTPError:
    """The 400 for a prompt plus ``max_tokens`` larger than the context window."""
    requested = prompt_tokens + (completion_tokens or 0)
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{requested} tokens ({prompt_tokens} in the messages, {completion_tokens or 0} in the "
        "completion). Please reduce the length of the messages or completion."
    )
    if profile.name == "vllm":
        return VllmError(400, message, type="BadRequestError")
    return SimulatorHTTPError(
        400,
        message,
        type="invalid_request_error",
        code="context_length_exceeded",
        param="messages",
    )

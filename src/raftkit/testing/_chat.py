"""``POST /v1/chat/completions`` (and the Azure routes to it): validate, admit, answer.

The order of a request: parse and check the body; refuse what the dialect cannot do; refuse
an unknown or retired model; check ``max_tokens`` against the model's output limit and the
prompt against its context window; charge the rate limits (OpenAI dialect); wait for a request
slot (local dialects); answer, serve the prompt cache, and hold the simulated latency.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from raftkit.testing._behaviour import decide
from raftkit.testing._chat_checks import (
    check_chat_limits,
    check_chat_model,
    completion_limit,
    context_window,
    validate_chat_request,
)
from raftkit.testing._dialects import extra_body_schema, refuse_unsupported
from raftkit.testing._gate import admit, hold, read_json, request_slot, simulated_latency
from raftkit.testing._prompt_cache import MINIMUM_TOKENS
from raftkit.testing._schema_fill import QuestionFlaws
from raftkit.testing._state import SimulatorState
from raftkit.testing._student import model_answer, model_answers, render_answers
from raftkit.testing._teacher import (
    Teaching,
    find_schema,
    message_text,
    structured_answer,
    vision_answer,
)
from raftkit.testing._text import stable_hash
from raftkit.testing._tokens import PromptTokens, TokenCounter

__all__ = [
    "check_chat_model",
    "complete_chat",
    "count_prompt_tokens",
    "routes",
    "validate_chat_request",
]

_UNBOUNDED_OUTPUT = 16_384


def count_prompt_tokens(messages: list[dict[str, Any]], model: str = "gpt-4o") -> int:
    """Prompt tokens as the simulator bills them (see :mod:`raftkit.testing._tokens`)."""
    from raftkit.testing._tokens import token_counter

    return token_counter(model).prompt(messages).count


def _teaching(state: SimulatorState, structured: bool) -> Teaching:
    if structured:
        return Teaching(invalid_json=state.misbehaviour.draw("invalid_json"))
    return Teaching(
        missing_answer=state.misbehaviour.draw("missing_answer"),
        invented_quote=state.misbehaviour.draw("invented_quote"),
    )


def _cut(content: str, body: dict[str, Any], counter: TokenCounter) -> tuple[str, str]:
    finish = "stop"
    stop = body.get("stop")
    for sequence in [stop] if isinstance(stop, str) else stop or []:
        if sequence and sequence in content:
            content = content[: content.index(sequence)]
    limit = completion_limit(body)
    if limit is not None and counter.count(content) > limit:
        content = counter.truncate(content, limit)
        finish = "length"
    return content, finish


def _runaway(content: str, budget: int, counter: TokenCounter) -> str:
    """Output that does not stop: the answer's first half, then the same text over and over,
    exactly ``budget`` tokens long."""
    start = content[: max(1, len(content) // 2)]
    filler = (content[len(start) :].strip() or content or "...") + "\n"
    pieces = [start]
    used = counter.count(start)
    step = max(1, counter.count(filler))
    while used < budget:
        pieces.append(filler)
        used += step
    return counter.truncate("".join(pieces), budget)


def _variation(body: dict[str, Any], index: int) -> int:
    canonical = json.dumps(
        {"messages": body["messages"], "rf": body.get("response_format")},
        sort_keys=True,
        ensure_ascii=False,
    )
    return stable_hash(canonical, body.get("seed"), body.get("temperature"), index)


def _answer(
    state: SimulatorState, body: dict[str, Any], model: str, index: int, variation: int
) -> str:
    messages: list[dict[str, Any]] = body["messages"]
    vision = vision_answer(messages, variation=variation)
    if vision is not None:
        return vision
    behaviour = state.behaviour(model)
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    guided = extra_body_schema(body) if state.dialect.guided_decoding else None
    if guided is not None or kind in ("json_schema", "json_object"):
        schema = guided
        if schema is None and kind == "json_schema":
            schema = response_format["json_schema"].get("schema") or {"type": "object"}
        if schema is None and isinstance(response_format.get("schema"), dict):
            schema = response_format["schema"]  # llama-cpp-python's json_object with a schema
        batched = model_answers(
            messages,
            schema if schema is not None else _schema_in(messages),
            model=model,
            behaviour=behaviour,
            variation=variation,
            explore=index > 0 or body.get("seed") is not None or bool(body.get("temperature")),
        )
        if batched is not None:
            rendered = render_answers(batched)
            if _teaching(state, structured=True).invalid_json:
                return rendered[: max(1, len(rendered) // 2)]
            return rendered
        flaws = None
        if behaviour.bad_questions > 0:
            flaws = QuestionFlaws(behaviour.bad_questions, behaviour.bad_question_kinds, model)
        return structured_answer(
            messages,
            schema,
            variation=variation,
            teaching=_teaching(state, structured=True),
            flaws=flaws,
        )
    explore = index > 0 or body.get("seed") is not None or bool(body.get("temperature"))
    return model_answer(
        messages,
        model=model,
        behaviour=behaviour,
        variation=variation,
        explore=explore,
        teaching=_teaching(state, False),
    )


def _schema_in(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The JSON schema a prompt writes out (JSON mode), if any."""
    found = find_schema("\n".join(message_text(m) for m in messages))
    return found[0] if found is not None else None


def _runs_away(state: SimulatorState, variation: int) -> bool:
    if state.misbehaviour.draw("runaway"):
        return True
    share = state.config.runaway_share
    if share is None:
        share = state.dialect.runaway_share
    return decide(share, "runaway", variation, state.config.seed)


def complete_chat(
    state: SimulatorState,
    body: dict[str, Any],
    *,
    model: str,
    prompt: PromptTokens | None = None,
    cached_tokens: int = 0,
) -> dict[str, Any]:
    """The ``CreateChatCompletionResponse`` body for a validated request ``body``."""
    messages: list[dict[str, Any]] = body["messages"]
    counter = state.tokens(model)
    if prompt is None:
        prompt = counter.prompt(messages)
    choices: list[dict[str, Any]] = []
    completion_tokens = 0
    for index in range(int(body.get("n") or 1)):
        variation = _variation(body, index)
        content = _answer(state, body, model, index, variation)
        if _runs_away(state, variation):
            window = context_window(state, model)
            budget = max(
                1,
                completion_limit(body)
                or (window - prompt.count if window is not None else _UNBOUNDED_OUTPUT),
            )
            content, finish = _runaway(content, budget, counter), "length"
            # a model stopped by its budget generated exactly that many tokens (the text it
            # decodes to may re-encode to one or two fewer)
            completion_tokens += budget
        else:
            content, finish = _cut(content, body, counter)
            limit = completion_limit(body)
            cut_short = finish == "length" and limit is not None
            completion_tokens += limit if cut_short and limit else counter.count(content)
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
    usage: dict[str, Any] = {
        "prompt_tokens": prompt.count,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt.count + completion_tokens,
    }
    result: dict[str, Any] = {
        "id": state.new_id("chatcmpl"),
        "object": "chat.completion",
        "created": state.unix_time(),
        "model": model,
        "choices": choices,
        "usage": usage,
    }
    if state.dialect.usage_details:
        result["system_fingerprint"] = "fp_raftkit_sim"
        result["service_tier"] = "default"
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return result


def _stream(result: dict[str, Any], include_usage: bool) -> StreamingResponse:
    fields = ("id", "created", "model", "system_fingerprint")
    base: dict[str, Any] = {k: result[k] for k in fields if k in result}
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


def _handler(state: SimulatorState, surface: Surface) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        body = await read_json(request)
        dialect = state.dialect
        in_path = request.path_params.get("deployment")
        validate_chat_request(
            body, model_required=in_path is None, json_word_required=dialect.json_word_required
        )
        model, deployment = _model_and_deployment(state, surface, body, in_path)
        refuse_unsupported(dialect, body)
        check_chat_model(state, model, deployment=deployment)
        counter = state.tokens(model)
        prompt = counter.prompt(body["messages"])
        check_chat_limits(state, body, model, prompt.count)
        rate_headers: dict[str, str] = {}
        if dialect.rate_limit_headers:
            limit = completion_limit(body)
            charged = limit if limit is not None else state.config.default_max_tokens
            cost = prompt.count + charged * int(body.get("n") or 1)
            rate_headers = admit(state, deployment or model, model, cost)
        async with request_slot(state, request.receive) as present:
            if not present:
                return Response(status_code=499)
            cached = _serve_prompt_cache(state, body, model, deployment, prompt, counter)
            result = complete_chat(state, body, model=model, prompt=prompt, cached_tokens=cached)
            completion_tokens = result["usage"]["completion_tokens"]
            await hold(state, request.receive, simulated_latency(state, completion_tokens))
        if body.get("stream"):
            options = body.get("stream_options") or {}
            response: Response = _stream(result, bool(options.get("include_usage")))
        else:
            response = JSONResponse(result)
        response.headers.update(rate_headers)
        if dialect.processing_header:
            response.headers["openai-processing-ms"] = str(math.ceil(1 + completion_tokens / 10))
        return response

    return endpoint


def _serve_prompt_cache(
    state: SimulatorState,
    body: dict[str, Any],
    model: str,
    deployment: str | None,
    prompt: PromptTokens,
    counter: TokenCounter,
) -> int:
    """Cached tokens for this prompt (OpenAI dialect, prompts of 1,024 tokens or more)."""
    if (
        not state.config.prompt_caching
        or not state.dialect.usage_details
        or prompt.count < MINIMUM_TOKENS
    ):
        return 0
    card = state.model(model).card
    ttl = card.prompt_cache_ttl if card is not None and card.prompt_cache_ttl else None
    units = counter.prompt(body["messages"], units=True).units
    return state.prompt_cache.serve(
        deployment or model,
        body.get("prompt_cache_key") if deployment is None else None,
        units,
        now=state.now(),
        ttl=ttl if ttl is not None else state.config.prompt_cache_ttl,
        retention=body.get("prompt_cache_retention"),
    )


Surface = Literal["openai", "azure_v1", "azure_deployment"]


def _model_and_deployment(
    state: SimulatorState, surface: Surface, body: dict[str, Any], in_path: str | None
) -> tuple[str, str | None]:
    """The model that answers and the Azure deployment it is reached through, if any: on
    Azure's ``/openai/v1`` surface the body's ``model`` names a deployment."""
    if surface == "azure_deployment":
        assert in_path is not None
        return state.deployment_model(in_path), in_path
    name = str(body["model"])
    if surface == "azure_v1":
        return state.deployment_model(name), name
    return name, None


def routes(state: SimulatorState) -> list[BaseRoute]:
    return [
        Route("/v1/chat/completions", _handler(state, "openai"), methods=["POST"]),
        Route("/openai/v1/chat/completions", _handler(state, "azure_v1"), methods=["POST"]),
        Route(
            "/openai/deployments/{deployment}/chat/completions",
            _handler(state, "azure_deployment"),
            methods=["POST"],
        ),
    ]

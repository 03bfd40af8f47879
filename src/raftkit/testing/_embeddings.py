"""``POST /v1/embeddings``: deterministic vectors in which texts sharing words are close.

Each text becomes a bag of features — normalised words, character trigrams of words, CJK
characters and CJK bigrams — hashed with a sign into ``dimensions`` buckets and L2-normalised
(the "hashing trick"). Two texts' cosine similarity therefore grows with the features they
share, which is what retrieval tests need, at no model cost.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import anyio.to_thread
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from raftkit.testing._dialects import unknown_model_error
from raftkit.testing._errors import SimulatorHTTPError
from raftkit.testing._gate import admit, hold, read_json, simulated_latency
from raftkit.testing._state import SimulatorState
from raftkit.testing._text import is_cjk, normalise

__all__ = ["create_embeddings", "embed_text", "routes", "validate_embedding_request"]

_MAX_INPUT_TOKENS = 8192
_WORD_WEIGHT = 1.0
_TRIGRAM_WEIGHT = 0.35
_CJK_CHAR_WEIGHT = 0.5
_CJK_BIGRAM_WEIGHT = 1.0


def _latin_features(token: str) -> list[tuple[str, float]]:
    padded = f"#{token}#"
    trigrams = [("g:" + padded[i : i + 3], _TRIGRAM_WEIGHT) for i in range(len(padded) - 2)]
    return [("w:" + token, _WORD_WEIGHT), *trigrams]


def _features(text: str) -> list[tuple[str, float]]:
    features: list[tuple[str, float]] = []
    for word in normalise(text).split():
        previous_cjk = ""
        latin: list[str] = []
        for char in word:
            if char.isalnum() and not is_cjk(char):
                latin.append(char)
                previous_cjk = ""
                continue
            if latin:
                features.extend(_latin_features("".join(latin)))
                latin = []
            if is_cjk(char):
                features.append(("c:" + char, _CJK_CHAR_WEIGHT))
                if previous_cjk:
                    features.append(("b:" + previous_cjk + char, _CJK_BIGRAM_WEIGHT))
                previous_cjk = char
            else:
                previous_cjk = ""
        if latin:
            features.extend(_latin_features("".join(latin)))
    return features


@lru_cache(maxsize=65536)
def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    return value % dimensions, 1.0 if value >> 63 else -1.0


def _vector(features: list[tuple[str, float]], dimensions: int) -> np.ndarray[Any, Any]:
    vector = np.zeros(dimensions, dtype=np.float64)
    if not features:
        return vector
    slots = [_slot(name, dimensions) for name, _ in features]
    index = np.fromiter((i for i, _ in slots), dtype=np.int64, count=len(slots))
    weight = np.fromiter(
        (sign * w for (_, sign), (_, w) in zip(slots, features, strict=True)),
        dtype=np.float64,
        count=len(slots),
    )
    np.add.at(vector, index, weight)
    norm = float(np.linalg.norm(vector))
    if norm > 0:
        vector /= norm
    return vector


def embed_text(text: str, dimensions: int = 1536) -> list[float]:
    """The simulator's embedding of ``text`` (unit length, or all zeros without features)."""
    return [float(x) for x in _vector(_features(text), dimensions)]


def _inputs(body: dict[str, Any], limit: int) -> list[str | list[int]]:
    raw = body.get("input")
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        items = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        raise SimulatorHTTPError(
            400, "'input' must be a string or an array of strings or tokens.", param="input"
        )
    if not items:
        raise SimulatorHTTPError(400, "'input' must not be empty.", param="input")
    if len(items) > limit:
        raise SimulatorHTTPError(
            400,
            f"'input' : maximum {limit} items allowed per request, got {len(items)}.",
            param="input",
        )
    for index, item in enumerate(items):
        ok = (isinstance(item, str) and item != "") or (
            isinstance(item, list) and item and all(type(t) is int for t in item)
        )
        if not ok:
            raise SimulatorHTTPError(
                400,
                f"'$.input[{index}]' is invalid: expected a non-empty string or token array.",
                param="input",
            )
    return items


def _item_tokens(state: SimulatorState, model: str, item: str | list[int]) -> int:
    return len(item) if isinstance(item, list) else state.tokens(model).count(item)


def check_embedding_model(state: SimulatorState, model: str, *, deployment: str | None) -> None:
    """Refuse a model the service does not embed with (404 ``model_not_found``); an Azure
    deployment that was never created is answered by a model of its name, as before."""
    unknown_deployment = deployment is not None and not state.has_deployment(deployment)
    if unknown_deployment and state.model(model).card is None:
        return
    if state.model_refusal(model, "embedding") is not None:
        raise unknown_model_error(state.dialect, model)


def validate_embedding_request(
    state: SimulatorState, body: dict[str, Any], *, model: str
) -> tuple[list[str | list[int]], int]:
    """The inputs and the output dimensions of a valid ``CreateEmbeddingRequest``."""
    items = _inputs(body, state.config.max_embedding_inputs)
    native = state.embedding_dimensions(model)
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if "text-embedding-3" not in model:
            raise SimulatorHTTPError(
                400, "This model does not support specifying dimensions.", param="dimensions"
            )
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            raise SimulatorHTTPError(400, "'dimensions' must be an integer.", param="dimensions")
        if not 1 <= dimensions <= native:
            raise SimulatorHTTPError(
                400,
                f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and {native}.",
                param="dimensions",
            )
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise SimulatorHTTPError(
            400,
            f"Invalid value for 'encoding_format': {encoding!r}. Expected 'float' or 'base64'.",
            param="encoding_format",
        )
    total = 0
    for item in items:
        tokens = _item_tokens(state, model, item)
        if tokens > _MAX_INPUT_TOKENS:
            raise SimulatorHTTPError(
                400,
                f"This model's maximum context length is {_MAX_INPUT_TOKENS} tokens, however "
                f"you requested {tokens} tokens in your input. Please reduce your input.",
                param="input",
            )
        total += tokens
    if total > state.config.max_embedding_tokens:
        raise SimulatorHTTPError(
            400,
            f"Requested {total} tokens, max {state.config.max_embedding_tokens} tokens per request",
            param="input",
        )
    return items, int(dimensions or native)


def create_embeddings(state: SimulatorState, body: dict[str, Any], *, model: str) -> dict[str, Any]:
    """The ``CreateEmbeddingResponse`` body for an embeddings request ``body``."""
    items, dimensions = validate_embedding_request(state, body, model=model)
    base64_output = body.get("encoding_format") == "base64"
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, item in enumerate(items):
        tokens += _item_tokens(state, model, item)
        if isinstance(item, list):
            features = [(f"t:{token}", _WORD_WEIGHT) for token in item]
        else:
            features = _features(item)
        vector = _vector(features, dimensions)
        if base64_output:
            encoded: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        else:
            encoded = [float(x) for x in vector]
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _handler(state: SimulatorState, azure_v1: bool) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        body = await read_json(request)
        deployment = request.path_params.get("deployment")
        if deployment is None:
            if not isinstance(body.get("model"), str):
                raise SimulatorHTTPError(400, "you must provide a model parameter", param="model")
            # on Azure's /openai/v1 surface the body's model names a deployment
            deployment = str(body["model"]) if azure_v1 else None
        model = state.deployment_model(deployment) if deployment else str(body["model"])
        check_embedding_model(state, model, deployment=deployment)
        items, _ = validate_embedding_request(state, body, model=model)
        headers: dict[str, str] = {}
        if state.dialect.rate_limit_headers:
            cost = sum(_item_tokens(state, model, item) for item in items)
            headers = admit(state, deployment or model, model, cost)
        result = await _in_thread(state, body, model)
        await hold(state, request.receive, simulated_latency(state, 0))
        return JSONResponse(result, headers=headers)

    return endpoint


async def _in_thread(state: SimulatorState, body: dict[str, Any], model: str) -> dict[str, Any]:
    # thousands of vectors of 3072 floats are real work; keep the server loop responsive
    return await anyio.to_thread.run_sync(lambda: create_embeddings(state, body, model=model))


def routes(state: SimulatorState) -> list[BaseRoute]:
    return [
        Route("/v1/embeddings", _handler(state, azure_v1=False), methods=["POST"]),
        Route("/openai/v1/embeddings", _handler(state, azure_v1=True), methods=["POST"]),
        Route(
            "/openai/deployments/{deployment}/embeddings",
            _handler(state, azure_v1=False),
            methods=["POST"],
        ),
    ]

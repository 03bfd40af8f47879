"""What OpenAI and Azure OpenAI clients share: chat, structured output, embeddings, requests.

The subclasses only say where things are (URLs, headers, credentials); every request goes
through one :class:`~raftkit.llm._transport.Transport`.

Structured output falls back when a server refuses it (``json_schema`` → ``json_object`` →
``prompt``, :class:`~raftkit.llm._structured.StructuredModes`), remembered by the client and
every client sharing its connection, unless the caller chose the mode.

About 600 lines: the surface both clients share (chat with its one re-ask of a reply cut by
its cap and its trimming to a context window, structured output, embeddings, any other
request) stays in one class, with the logic it uses in the modules beside it (``_context``,
``_structured``, ``_store``, ``caps``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Self, Unpack, cast

import anyio
import httpx

from raftkit.errors import APIError, APIStatusError, BadRequestError, UsageError
from raftkit.llm._api_errors import request_id_of
from raftkit.llm._base import (
    ChatMessage,
    ChatParams,
    ChatRequest,
    ChatResponse,
    EndpointIdentity,
    LLMClient,
    OutputT,
    RequestActivity,
    RequestOptions,
    StructuredMode,
    StructuredParams,
    StructuredResponse,
)
from raftkit.llm._context import context_overflow, fit_cap, too_long
from raftkit.llm._retry import RetryPolicy
from raftkit.llm._secrets import redact_url
from raftkit.llm._store import (
    DeferringStore,
    ResponseStore,
    request_key,
    truncation_retry_sample,
)
from raftkit.llm._structured import (
    DEFAULT_STRUCTURED_ATTEMPTS,
    OutputSpec,
    StructuredModes,
    ask_until_valid,
    instruction,
)
from raftkit.llm._transport import Call, Reply, Transport, usage_from_body
from raftkit.llm.tokens import count_message_tokens, estimate_tokens
from raftkit.types import Usage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from raftkit.llm.limiter import LimiterRegistry
    from raftkit.llm.usage import UsageLedger

__all__ = [
    "DEFAULT_STRUCTURED_ATTEMPTS",
    "EMBEDDING_MAX_INPUTS",
    "EMBEDDING_MAX_TOKENS",
    "OpenAIShapedClient",
    "credential_fingerprint",
    "plan_batches",
    "resolve_retry",
]

#: The embeddings endpoint takes at most 2048 inputs per request ...
EMBEDDING_MAX_INPUTS = 2048
#: ... and at most 300k tokens summed over the inputs.
EMBEDDING_MAX_TOKENS = 300_000

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]
EmbeddingFormat = Literal["float", "base64"]


def credential_fingerprint(secret: str | None) -> str:
    """A short, one-way tag telling credentials apart in limiter scopes (never the key)."""
    if not secret:
        return "anonymous"
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


def resolve_retry(retry: RetryPolicy | None, max_retries: int | None) -> RetryPolicy:
    """``retry`` with ``max_retries`` applied (retries after the first call, as openai-python)."""
    policy = retry or RetryPolicy()
    if max_retries is None:
        return policy
    if max_retries < 0:
        raise UsageError(f"max_retries must be 0 or more, got {max_retries}")
    return RetryPolicy(
        max_attempts=max_retries + 1,
        initial_delay=policy.initial_delay,
        max_delay=policy.max_delay,
        jitter=policy.jitter,
        max_retry_after=policy.max_retry_after,
        deadline=policy.deadline,
    )


def plan_batches(
    texts: Sequence[str],
    *,
    max_inputs: int = EMBEDDING_MAX_INPUTS,
    max_tokens: int = EMBEDDING_MAX_TOKENS,
) -> list[tuple[int, int, int]]:
    """Consecutive ``(start, end, tokens)`` slices of ``texts`` within both request limits."""
    batches: list[tuple[int, int, int]] = []
    start, tokens = 0, 0
    for i, text in enumerate(texts):
        cost = estimate_tokens(text)
        if i > start and (i - start >= max_inputs or tokens + cost > max_tokens):
            batches.append((start, i, tokens))
            start, tokens = i, 0
        tokens += cost
    if start < len(texts):
        batches.append((start, len(texts), tokens))
    return batches


class OpenAIShapedClient(LLMClient):
    """Base of :class:`OpenAIClient` and :class:`AzureOpenAIClient`; not used directly.

    ``send_prompt_cache_key``: whether a call's ``prompt_cache_key`` is sent (it is in
    OpenAI's API; Azure OpenAI's published specs do not list it, so the Azure client leaves
    it out). ``context_windows`` maps a model to its context window in tokens: given, or
    learned from a server's context-length refusal; a request's cap is trimmed to fit it.
    """

    send_prompt_cache_key: bool = True

    def __init__(
        self,
        *,
        transport: Transport,
        structured_mode: StructuredMode | None = None,
        default_max_tokens: int = 1024,
        max_structured_attempts: int = DEFAULT_STRUCTURED_ATTEMPTS,
        max_tokens_field: MaxTokensField = "max_completion_tokens",
        embedding_format: EmbeddingFormat = "float",
        embedding_concurrency: int = 4,
        endpoint_identity: EndpointIdentity | None = None,
    ) -> None:
        if max_structured_attempts < 1:
            raise UsageError("max_structured_attempts must be at least 1")
        if embedding_concurrency < 1:
            raise UsageError("embedding_concurrency must be at least 1")
        self._transport = transport
        self._owns_transport = True
        self._store: ResponseStore | None = None
        #: None: the client chooses, falling back when the server refuses; else as given
        self.structured_mode: StructuredMode | None = structured_mode
        # per model, the structured mode that works; shared with clones (with_store)
        self._modes = StructuredModes()
        self.default_max_tokens = default_max_tokens
        self.max_structured_attempts = max_structured_attempts
        self.max_tokens_field: MaxTokensField = max_tokens_field
        self.embedding_format: EmbeddingFormat = embedding_format
        self.embedding_concurrency = embedding_concurrency
        self._endpoint_identity = endpoint_identity or EndpointIdentity.from_url(
            "openai", transport.base_url
        )
        self.context_windows: dict[str, int] = {}

    # ------------------------------------------------------------------ where things are

    def _chat_route(self, model: str) -> tuple[str, bool]:
        """Path of chat completions for ``model`` and whether the body names the model."""
        return "chat/completions", True

    def _embeddings_route(self, model: str) -> tuple[str, bool]:
        return "embeddings", True

    # ------------------------------------------------------------------ plumbing

    @property
    def base_url(self) -> str:
        """The API root, with any credentials in it shown as ``***``."""
        return redact_url(self._transport.base_url)

    @property
    def endpoint_identity(self) -> EndpointIdentity:
        """The service this client talks to: provider, host and path (and api-version)."""
        return self._endpoint_identity

    @property
    def retry(self) -> RetryPolicy:
        return self._transport.retry

    @property
    def limiters(self) -> LimiterRegistry | None:
        """The registry this client admits requests through."""
        return cast("LimiterRegistry | None", self._transport.limiters)

    @property
    def ledger(self) -> UsageLedger | None:
        """The ledger this client records usage and cost in."""
        return cast("UsageLedger | None", self._transport.ledger)

    @property
    def store(self) -> ResponseStore | None:
        return self._store

    def activity(self) -> RequestActivity:
        """What this client's requests (and its clones') are doing now: sent and unanswered,
        waiting for rate-limit admission, and why."""
        return self._transport.activity()

    def structured_modes(self) -> dict[str, StructuredMode]:
        """The structured-output mode each model was asked in, after any fallback."""
        return self._modes.known()

    def with_store(self, store: ResponseStore) -> Self:
        """A client that shares this one's connection, limiters and ledger and journals through
        ``store``: chat and embedding responses are looked up first (a hit is neither paid
        nor rate-limited, and comes back with ``from_journal=True``) and, on a miss, written
        with ``store.put`` before they are returned. Closing the copy leaves the connection
        open; close the original.
        """
        clone = copy.copy(self)
        clone._store = store
        clone._owns_transport = False
        return clone

    async def aclose(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, credentials=***)"

    # ------------------------------------------------------------------ chat

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        sample: int = 0,
        **params: Unpack[ChatParams],
    ) -> ChatResponse:
        response, _ = await self._chat(messages, model=model, sample=sample, params=params)
        return response

    def chat_request(
        self, messages: Sequence[ChatMessage], *, model: str, **params: Unpack[ChatParams]
    ) -> ChatRequest:
        """The relative path and JSON body :meth:`chat` sends for these arguments."""
        if not messages:
            raise UsageError("chat needs at least one message")
        path, names_model = self._chat_route(model)
        body: dict[str, Any] = {}
        if names_model:
            body["model"] = model
        body["messages"] = [dict(m) for m in messages]
        temperature, max_tokens = params.get("temperature"), params.get("max_tokens")
        seed, stop = params.get("seed"), params.get("stop")
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body[self.max_tokens_field] = max_tokens
        if seed is not None:
            body["seed"] = seed
        if stop is not None:
            body["stop"] = stop if isinstance(stop, str) else list(stop)
        cache_key = params.get("prompt_cache_key")
        if cache_key and self.send_prompt_cache_key:
            body["prompt_cache_key"] = cache_key
        extra_body = params.get("extra_body")
        if extra_body:
            body.update(extra_body)
        return ChatRequest(path, body, self._endpoint_identity)

    async def _chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        sample: int,
        params: ChatParams,
    ) -> tuple[ChatResponse, str | None]:
        response, refusal = await self._chat_once(
            messages, model=model, sample=sample, params=params
        )
        retry_cap = params.get("retry_max_tokens")
        if retry_cap and params.get("max_tokens") and response.finish_reason == "length":
            # cut by its cap: once more with the larger cap, keyed apart from the cut reply
            larger = ChatParams(**{**params, "max_tokens": retry_cap})
            retry_sample = truncation_retry_sample(sample)
            again, refusal = await self._chat_once(
                messages, model=model, sample=retry_sample, params=larger
            )
            response = again.model_copy(update={"truncated_usage": response.usage})
        return response, refusal

    async def _chat_once(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        sample: int,
        params: ChatParams,
    ) -> tuple[ChatResponse, str | None]:
        prompt_tokens = count_message_tokens(messages, model)
        window = self.context_windows.get(model)
        if window is not None and params.get("max_tokens") is not None:
            params = self._fitted(params, model, window, prompt_tokens)
        request = self.chat_request(messages, model=model, **params)
        key = request.key(sample) if self._store is not None else None
        if self._store is not None and key is not None:
            stored = await self._store.get(key)
            if stored is not None:
                return _parse_chat(stored, model, None, from_journal=True)
            if isinstance(self._store, DeferringStore):
                await self._store.on_miss(key, request, model=model, sample=sample)
        try:
            reply = await self._transport.send(self._chat_call(request, model, prompt_tokens))
        except BadRequestError as error:
            overflow = context_overflow(error)
            if overflow is None:
                raise
            # the server named its window: remember it, trim the cap and send once more
            self.context_windows[model] = overflow.window
            counted = overflow.prompt_tokens or prompt_tokens
            fitted = self._fitted(params, model, overflow.window, counted)
            sent = request.body.get(self.max_tokens_field)
            if isinstance(sent, int) and fitted.get("max_tokens") == sent:
                raise  # it already fit, as far as can be told: a resend would fail alike
            params = fitted
            request = self.chat_request(messages, model=model, **params)
            reply = await self._transport.send(self._chat_call(request, model, prompt_tokens))
        payload = _json_body(reply)
        if self._store is not None and key is not None:
            await self._store.put(key, request.body, payload)
        return _parse_chat(payload, model, request_id_of(reply.response.headers))

    def _fitted(self, params: ChatParams, model: str, window: int, prompt: int) -> ChatParams:
        """``params`` with a cap that fits ``window``; raises when no useful cap does."""
        cap = params.get("max_tokens")
        fitted = fit_cap(window, prompt, cap)
        if fitted is None:
            raise too_long(model, window, prompt)
        if fitted == cap:
            return params
        return ChatParams(**{**params, "max_tokens": fitted})

    def _chat_call(self, request: ChatRequest, model: str, prompt_tokens: int) -> Call:
        # the limiter and the budget reserve exactly what is sent: the prompt and the cap
        max_tokens = request.body.get(self.max_tokens_field)
        return Call(
            "POST",
            request.path,
            json=request.body,
            model=model,
            kind="chat",
            prompt_tokens=prompt_tokens,
            max_completion_tokens=max_tokens
            if isinstance(max_tokens, int)
            else self.default_max_tokens,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        )

    # ------------------------------------------------------------------ structured output

    async def chat_structured(
        self,
        messages: Sequence[ChatMessage],
        output: type[OutputT] | Mapping[str, Any],
        *,
        model: str,
        sample: int = 0,
        **params: Unpack[StructuredParams],
    ) -> StructuredResponse[Any]:
        spec = OutputSpec.of(output)
        chosen = params.get("mode") or self.structured_mode
        attempts = params.get("max_attempts") or self.max_structured_attempts
        if attempts < 1:
            raise UsageError("max_attempts must be at least 1")
        mode = self._modes.first(model, chosen)
        while True:
            try:
                result = await self._structured(
                    messages,
                    spec,
                    mode,
                    model=model,
                    sample=sample,
                    params=params,
                    attempts=attempts,
                )
            except APIStatusError as refused:
                mode = self._modes.after_refusal(
                    model, mode, refused, chosen=chosen, endpoint=self.base_url
                )
                continue
            self._modes.worked(model, mode, chosen=chosen)
            return result

    async def _structured(
        self,
        messages: Sequence[ChatMessage],
        spec: OutputSpec,
        mode: StructuredMode,
        *,
        model: str,
        sample: int,
        params: StructuredParams,
        attempts: int,
    ) -> StructuredResponse[Any]:
        conversation = [dict(m) for m in messages]
        extra: dict[str, Any] = {}
        if mode == "json_schema":
            extra["response_format"] = spec.response_format()
        else:
            conversation.insert(0, {"role": "system", "content": instruction(spec.strict)})
            if mode == "json_object":
                extra["response_format"] = {"type": "json_object"}

        chat = ChatParams(
            temperature=params.get("temperature"),
            max_tokens=params.get("max_tokens"),
            seed=params.get("seed"),
            extra_body=extra,
            prompt_cache_key=params.get("prompt_cache_key"),
            retry_max_tokens=params.get("retry_max_tokens"),
        )

        async def ask(so_far: list[dict[str, Any]], index: int) -> tuple[ChatResponse, str | None]:
            return await self._chat(so_far, model=model, sample=index, params=chat)

        return await ask_until_valid(
            ask, conversation, spec, attempts=attempts, sample=sample, mode=mode
        )

    # ------------------------------------------------------------------ embeddings

    async def embed(
        self,
        texts: Sequence[str],
        *,
        model: str,
        dimensions: int | None = None,
    ) -> npt.NDArray[np.float32]:
        import numpy as np

        if isinstance(texts, str):
            raise UsageError("embed takes a sequence of texts, not one string")
        items = list(texts)
        if not items:
            return np.zeros((0, dimensions or 0), dtype=np.float32)
        batches = plan_batches(items)
        results: list[npt.NDArray[np.float32] | None] = [None] * len(batches)
        limiter = anyio.CapacityLimiter(self.embedding_concurrency)

        failures: list[Exception] = []

        async def run(index: int, start: int, end: int, tokens: int) -> None:
            try:
                async with limiter:
                    results[index] = await self._embed_batch(
                        items[start:end], model=model, dimensions=dimensions, tokens=tokens
                    )
            except Exception as exc:
                # the first failure is the caller's error, not an ExceptionGroup; the other
                # batches are cancelled because the call as a whole has failed
                failures.append(exc)
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for index, (start, end, tokens) in enumerate(batches):
                tg.start_soon(run, index, start, end, tokens)
        if failures:
            raise failures[0]
        parts = [r for r in results if r is not None]
        widths = {p.shape[1] for p in parts}
        if len(widths) != 1:
            raise APIError(f"embeddings of different widths in one call: {sorted(widths)}")
        if len(parts) == 1:
            return parts[0]
        return await anyio.to_thread.run_sync(np.concatenate, parts)

    async def _embed_batch(
        self, batch: list[str], *, model: str, dimensions: int | None, tokens: int
    ) -> npt.NDArray[np.float32]:
        path, names_model = self._embeddings_route(model)
        body: dict[str, Any] = {}
        if names_model:
            body["model"] = model
        body["input"] = batch
        body["encoding_format"] = self.embedding_format
        if dimensions is not None:
            body["dimensions"] = dimensions
        key = (
            request_key("POST", path, body, 0, endpoint=self._endpoint_identity)
            if self._store is not None
            else None
        )
        payload: Any = None
        if self._store is not None and key is not None:
            payload = await self._store.get(key)
        if payload is None:
            call = Call(
                "POST",
                path,
                json=body,
                model=model,
                kind="embedding",
                prompt_tokens=tokens,
                max_completion_tokens=0,
            )
            reply = await self._transport.send(call)
            payload = _json_body(reply)
            if self._store is not None and key is not None:
                await self._store.put(key, body, payload)
        return await anyio.to_thread.run_sync(_embedding_matrix, payload, len(batch))

    # ------------------------------------------------------------------ any other endpoint

    async def request(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        if path.startswith(("http://", "https://")):
            raise UsageError("request() takes a path relative to the API root, not a URL")
        reply = await self._transport.send(Call(method, path.lstrip("/"), **options))
        return reply.response


def _json_body(reply: Reply) -> dict[str, Any]:
    body = reply.body
    if not isinstance(body, dict):
        raise APIError(
            "the server answered 2xx with a body that is not a JSON object",
            request_id=request_id_of(reply.response.headers),
            method=reply.response.request.method,
        )
    return body


def _parse_chat(
    payload: Mapping[str, Any], model: str, request_id: str | None, *, from_journal: bool = False
) -> tuple[ChatResponse, str | None]:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise APIError("chat completion without choices", request_id=request_id)
    choice = choices[0]
    raw_message = choice.get("message")
    message: Mapping[str, Any] = raw_message if isinstance(raw_message, Mapping) else {}
    content = message.get("content")
    refusal = message.get("refusal")
    text = content if isinstance(content, str) else ""
    response = ChatResponse(
        text=text,
        model=str(payload.get("model") or model),
        finish_reason=choice.get("finish_reason"),
        usage=usage_from_body(payload) or Usage(),
        request_id=request_id,
        from_journal=from_journal,
    )
    return response, refusal if isinstance(refusal, str) and refusal else None


def _embedding_matrix(payload: Mapping[str, Any], expected: int) -> npt.NDArray[np.float32]:
    import numpy as np

    data = payload.get("data")
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else "no"
        raise APIError(f"expected {expected} embeddings, the server sent {got}")
    rows = sorted(data, key=lambda item: int(item.get("index", 0)))
    vectors: list[npt.NDArray[np.float32]] = []
    for item in rows:
        value = item.get("embedding")
        if isinstance(value, str):
            vectors.append(np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32))
        elif isinstance(value, list):
            vectors.append(np.asarray(value, dtype=np.float32))
        else:
            raise APIError("an embedding is neither a list of floats nor base64")
    widths = {v.shape[0] for v in vectors}
    if len(widths) != 1:
        raise APIError(f"embeddings of different widths in one response: {sorted(widths)}")
    return np.stack(vectors).astype(np.float32, copy=False)

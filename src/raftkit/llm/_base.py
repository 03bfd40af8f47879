"""The client interface every stage above floor 2 talks to.

Stages (question synthesis, answer generation, evaluation, the vision extractor, embedders) are
given an :class:`LLMClient` by their caller; they never build one, read environment variables
or know whether the other end is OpenAI, Azure, a local server or the simulator.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    NamedTuple,
    Self,
    TypedDict,
    TypeVar,
    Unpack,
)
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from raftkit.errors import UsageError
from raftkit.llm._store import ResponseStore, request_key
from raftkit.resources import AsyncResource
from raftkit.types import Usage

if TYPE_CHECKING:
    # annotations only: importing httpx and numpy would double the time `import raftkit` takes
    import httpx
    import numpy as np
    import numpy.typing as npt

    from raftkit.llm.usage import UsageLedger

__all__ = [
    "ChatMessage",
    "ChatParams",
    "ChatRequest",
    "ChatResponse",
    "EndpointIdentity",
    "LLMClient",
    "RequestActivity",
    "RequestOptions",
    "StructuredMode",
    "StructuredParams",
    "StructuredResponse",
    "WaitReason",
]

OutputT = TypeVar("OutputT")

#: How structured output is asked for: ``json_schema`` (``response_format`` with a strict JSON
#: schema, OpenAI and Azure), ``json_object`` (JSON mode plus the schema in the prompt, most
#: OpenAI-compatible servers) or ``prompt`` (the schema in the prompt, plain text back).
StructuredMode = Literal["json_schema", "json_object", "prompt"]

#: What holds back a request waiting for admission: requests per minute, tokens per minute,
#: the concurrency limit, or the pause after a 429.
WaitReason = Literal["rpm", "tpm", "concurrency", "paused"]


class EndpointIdentity(BaseModel):
    """Which service answers a client's requests; never a credential.

    Part of every journal key (:meth:`ChatRequest.key`), so a response journaled from one
    endpoint (the simulator, a local server) is never replayed as another's (a real teacher),
    and recorded in a run's ``settings.json``. An Azure deployment is the ``model`` of each
    call, already in every request's path (deployment URLs) or body (``/openai/v1``), so in
    every key too.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(description='"openai", "azure", "simulator", or another name')
    host: str = Field(description="host of the base URL, lower case, with a non-default port")
    path: str = Field(description="path of the base URL, without the trailing slash")
    api_version: str | None = Field(None, description="Azure's api-version, when sent")

    @classmethod
    def from_url(
        cls, provider: str, url: str, *, api_version: str | None = None
    ) -> EndpointIdentity:
        """The identity of ``url``: host and path only (user info and query are dropped)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if ":" in host:
            host = f"[{host}]"  # an IPv6 address
        default_port = {"http": 80, "https": 443}.get(parts.scheme.lower())
        if parts.port is not None and parts.port != default_port:
            host += f":{parts.port}"
        return cls(
            provider=provider, host=host, path=parts.path.rstrip("/"), api_version=api_version
        )

    def __str__(self) -> str:
        version = f" (api-version {self.api_version})" if self.api_version else ""
        return f"{self.provider} {self.host}{self.path}{version}"


class RequestActivity(BaseModel):
    """What a client's requests are doing right now, for a live status line.

    A snapshot: ``in_flight`` requests have been sent and not answered, the oldest for
    ``oldest_in_flight_s`` seconds; ``waiting`` requests wait for admission, held by
    ``waiting_on`` (the limit that holds them back: requests per minute, tokens per minute,
    concurrency, or a pause after a 429), ``paused_for_s`` seconds more when paused.
    """

    model_config = ConfigDict(frozen=True)

    in_flight: int = 0
    oldest_in_flight_s: float | None = None
    waiting: int = 0
    waiting_on: WaitReason | None = None
    paused_for_s: float | None = None


#: A chat message as the Chat Completions API takes it: ``{"role": ..., "content": ...}``;
#: content may be a string or a list of content parts (text, ``image_url``).
ChatMessage = Mapping[str, Any]


class ChatParams(TypedDict, total=False):
    """The sampling parameters of a chat call, written once for every signature that takes
    them (``client.chat(messages, model=..., **params)``). A missing key means "not sent"."""

    temperature: float | None
    max_tokens: int | None
    seed: int | None
    stop: str | Sequence[str] | None
    extra_body: Mapping[str, Any] | None
    #: groups requests that share a long prefix for the provider's prompt cache; sent as
    #: ``prompt_cache_key`` where the endpoint takes it (OpenAI), left out elsewhere
    prompt_cache_key: str | None
    #: when the reply is cut by ``max_tokens`` (``finish_reason: "length"``), ask once more
    #: with this cap, under a journal key of its own; for learned caps
    #: (:attr:`raftkit.llm.caps.Cap.retry_max_tokens`). ``None``: the cut reply is returned
    retry_max_tokens: int | None


class StructuredParams(TypedDict, total=False):
    """The parameters of a structured chat call (``client.chat_structured(..., **params)``):
    sampling, how structured output is asked for, and how many calls it may take."""

    temperature: float | None
    max_tokens: int | None
    seed: int | None
    mode: StructuredMode | None
    max_attempts: int | None
    prompt_cache_key: str | None
    retry_max_tokens: int | None


class RequestOptions(TypedDict, total=False):
    """What ``client.request(method, path, **options)`` may send beside the path."""

    json: Any
    params: Mapping[str, str] | None
    files: Any
    data: Mapping[str, Any] | None
    content: bytes | None
    headers: Mapping[str, str] | None
    #: the model the call is for (rate limits are per model)
    model: str | None
    #: None: POST is made idempotent by its Idempotency-Key; False: never resent once it may
    #: have reached the server
    idempotent: bool | None


class ChatRequest(NamedTuple):
    """The request a chat call sends: ``path`` relative to the API root and the JSON ``body``.

    ``request.key(sample)`` is the journal key the call is stored under, so a request can be
    looked up, or answered offline (the Batch API), without making the call. ``endpoint`` is
    the identity of the service the request goes to, part of the key.
    """

    path: str
    body: dict[str, Any]
    endpoint: EndpointIdentity | None = None

    @property
    def method(self) -> str:
        return "POST"

    def key(self, sample: int = 0) -> str:
        return request_key(self.method, self.path, self.body, sample, endpoint=self.endpoint)


class ChatResponse(BaseModel):
    """One chat completion."""

    model_config = ConfigDict(frozen=True)

    text: str
    model: str = Field(description="the model the server says answered")
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    request_id: str | None = None
    from_journal: bool = Field(
        default=False, description="true when replayed from a journal instead of paid for"
    )
    truncated_usage: Usage | None = Field(
        default=None,
        description="usage of a first reply cut by max_tokens and asked again with "
        "retry_max_tokens; None when there was none",
    )

    @property
    def total_usage(self) -> Usage:
        """What this completion cost, a first reply cut by its cap and asked again included."""
        if self.truncated_usage is None:
            return self.usage
        return self.usage + self.truncated_usage


class StructuredResponse(BaseModel, Generic[OutputT]):
    """A chat completion whose content was parsed and validated against a schema."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    output: OutputT
    response: ChatResponse
    attempts: int = Field(default=1, description="calls it took to get valid output")
    mode: StructuredMode | None = Field(
        default=None, description="how structured output was asked for (None: not known)"
    )


class LLMClient(AsyncResource):
    """A connection to an OpenAI-shaped REST API. An async context manager.

    Implementations: :class:`~raftkit.llm.OpenAIClient` (OpenAI and OpenAI-compatible servers)
    and :class:`~raftkit.llm.AzureOpenAIClient`. For Azure deployment URLs, ``model`` is the
    deployment name.
    """

    @property
    def ledger(self) -> UsageLedger | None:
        """The ledger this client records usage and cost in; ``None`` for clients without one."""
        return None

    @property
    def endpoint_identity(self) -> EndpointIdentity | None:
        """Which service answers this client (no credential); ``None`` when it cannot say.

        Journal keys include it, and a run records it in ``settings.json``.
        """
        return None

    def activity(self) -> RequestActivity | None:
        """What this client's requests are doing now; ``None`` for clients that do not know."""
        return None

    def structured_modes(self) -> dict[str, StructuredMode]:
        """Per model, how :meth:`chat_structured` asked for structured output (after any
        fallback from a mode the server refused); empty for clients that do not say."""
        return {}

    def with_store(self, store: ResponseStore) -> Self:
        """A client that shares this one's connection, limits and ledger, and looks up and
        appends every chat and embedding response in ``store`` (a run's journal) before it is
        used. Clients that cannot journal raise :class:`~raftkit.errors.UsageError`."""
        raise UsageError(
            f"{type(self).__name__} cannot be journaled (it does not implement with_store); "
            "runs need a journal to keep paid results across restarts"
        )

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close what this client opened (never an injected ``httpx.AsyncClient``)."""

    def chat_request(
        self, messages: Sequence[ChatMessage], *, model: str, **params: Unpack[ChatParams]
    ) -> ChatRequest:
        """The path and body :meth:`chat` sends for these arguments, without sending them.

        With :meth:`ChatRequest.key` this gives the journal key of a call (the Batch API keys
        offline answers with it). Clients that cannot say raise
        :class:`~raftkit.errors.UsageError`.
        """
        raise UsageError(f"{type(self).__name__} cannot say what a chat call would send")

    @abc.abstractmethod
    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        sample: int = 0,
        **params: Unpack[ChatParams],
    ) -> ChatResponse:
        """One chat completion; ``params`` are :class:`ChatParams` (``temperature``,
        ``max_tokens``, ``seed``, ``stop``, ``extra_body``, ``prompt_cache_key``), each sent
        only when given; ``retry_max_tokens`` asks once more with that cap when the reply is
        cut by ``max_tokens``.

        ``sample`` is not sent: it tells apart deliberate repeats of the same request (a re-ask
        after an invalid answer) so that a journal keys them separately.
        """

    @abc.abstractmethod
    async def chat_structured(
        self,
        messages: Sequence[ChatMessage],
        output: type[OutputT] | Mapping[str, Any],
        *,
        model: str,
        sample: int = 0,
        **params: Unpack[StructuredParams],
    ) -> StructuredResponse[Any]:
        """A chat completion parsed into ``output``: a pydantic model class or a JSON schema.

        With a model class, ``.output`` is an instance of it; with a schema, a ``dict``.
        Invalid JSON is re-asked (a new ``sample``) up to ``max_attempts`` calls in all, then
        :class:`~raftkit.errors.StructuredOutputError` is raised.
        """

    @abc.abstractmethod
    async def embed(
        self,
        texts: Sequence[str],
        *,
        model: str,
        dimensions: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """Embeddings of ``texts`` as a ``(len(texts), dim)`` float32 matrix, in input order."""

    @abc.abstractmethod
    async def request(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """Any other endpoint (files, fine-tuning, batches) through the same request path.

        ``path`` is relative to the API root (``"files"``, ``"fine_tuning/jobs"``). Retries,
        rate limits and error translation apply; a non-2xx status raises.
        """

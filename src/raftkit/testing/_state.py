"""The simulator's shared state, and the seam for more endpoints.

The seam (for the files / fine-tuning / batches / deployments modules)
---------------------------------------------------------------------
A module that adds endpoints exposes ``routes(state: SimulatorState) -> list[BaseRoute]``
(Starlette routes). :func:`raftkit.testing._app.build_app` includes them for the modules
``_files``, ``_finetune``, ``_batches`` and ``_deployments`` when they exist, and anyone can pass
more through ``build_app(state, extra_routes=...)``. What a route can rely on:

- The app has already checked the key (``Authorization: Bearer`` or Azure ``api-key``; and
  ``api-version`` on Azure ``/openai/...`` paths other than ``/openai/v1/...``), applied injected
  faults, given every response ``x-request-id`` (and ``apim-request-id`` on Azure paths), and
  logs the request in ``state.requests`` (a bounded deque, newest last).
- Raise :class:`raftkit.testing._errors.SimulatorHTTPError` (or return
  :func:`raftkit.testing._errors.error_response`) for an OpenAI-shaped error.
- ``state.lock`` (a re-entrant ``threading.RLock``) guards shared mutable state: the server
  runs in its own thread, and tests read the state from theirs.
- ``state.clock()`` is the server's monotonic clock; ``state.unix_time()`` is for ``created``
  fields; ``state.new_id("ftjob")`` makes ids; ``state.random`` is the seeded generator.
- ``state.register_model(name)`` makes a (fine-tuned) model valid for chat and lists it in
  ``GET /v1/models``; ``state.register_deployment(name, model)`` maps an Azure deployment.
- Inside a handler the state is also ``request.app.state.simulator`` (useful for routes built
  before the state exists, e.g. ``Simulator(extra_routes=...)``).
- ``state.extensions`` is a free dict for a module's own stores (key it by module name).
- For batches: :func:`raftkit.testing._chat.complete_chat` and
  :func:`raftkit.testing._embeddings.create_embeddings` compute a response body from a request
  body without HTTP.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from raftkit.testing._faults import FaultPlan, FaultRule
from raftkit.testing._misbehaviour import MisbehaviourPlan
from raftkit.testing._ratelimit import RateLimit, RateLimiter

__all__ = [
    "DEFAULT_API_KEY",
    "ModelInfo",
    "RecordedRequest",
    "SimulatorConfig",
    "SimulatorState",
]

DEFAULT_API_KEY = "sk-raftkit-simulator-0000000000000000"

_BUILTIN_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)

_EMBEDDING_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """Everything that shapes one simulator. Every field has a working default."""

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    api_key: str = DEFAULT_API_KEY
    seed: int = 0
    """Seeds fault rules, misbehaviour and ids; answers depend only on the request."""

    chat_models: frozenset[str] | None = None
    """Allow-list for chat; ``None`` accepts any model name."""
    embedding_dimensions: Mapping[str, int] = field(
        default_factory=lambda: dict(_EMBEDDING_DIMENSIONS)
    )
    default_embedding_dimensions: int = 1536
    """For embedding models not in ``embedding_dimensions``."""
    max_embedding_inputs: int = 2048
    max_embedding_tokens: int = 300_000

    rpm: int | None = None
    """Requests per minute per model or deployment; ``None`` is unlimited."""
    tpm: int | None = None
    """Tokens per minute per model or deployment; ``None`` is unlimited."""
    model_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    """Per model (or deployment) limits that replace ``rpm``/``tpm``."""
    window_seconds: float | None = None
    """Enforce the limits in windows this short (the bucket holds only that share)."""
    background_load: float = 0.0
    """Share of the limits another client on the same account uses up continuously."""
    default_max_tokens: int = 1024
    """Token cost charged at admission for requests without ``max_tokens``."""
    insufficient_quota: bool = False
    """Answer every chat and embedding request with 429 ``insufficient_quota``."""

    latency_base: float = 0.0
    """Seconds added to every chat or embedding response."""
    latency_per_token: float = 0.0
    """Seconds added per completion token."""

    faults: tuple[FaultRule, ...] = ()
    """Random fault rules active from the start (see :class:`~raftkit.testing.Fault`)."""
    misbehaviour: Mapping[str, float] = field(default_factory=dict)
    """Probability of each teacher misbehaviour, e.g. ``{"invented_quote": 0.1}``."""

    max_logged_requests: int | None = 10_000
    """The request log keeps this many of the latest requests (``None``: all of them)."""

    shutdown_timeout: float = 2.0
    """Seconds ``stop()`` waits for requests in flight before cutting them off."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered (credentials removed from ``headers``)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int
    timestamp: float
    """The server's monotonic clock when the request arrived."""
    request_id: str


@dataclass(frozen=True)
class ModelInfo:
    id: str
    created: int
    owned_by: str


class SimulatorState:
    """Shared by every route of one simulator; see the module docstring for the contract."""

    def __init__(
        self, config: SimulatorConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.random = random.Random(config.seed)
        self.requests: deque[RecordedRequest] = deque(maxlen=config.max_logged_requests)
        self.extensions: dict[str, Any] = {}
        self.faults = FaultPlan(config.faults, seed=config.seed)
        self.misbehaviour = MisbehaviourPlan(config.misbehaviour, seed=config.seed)
        self.limiter = RateLimiter(
            RateLimit(config.rpm, config.tpm),
            config.model_limits,
            clock=clock,
            window_seconds=config.window_seconds,
            background_load=config.background_load,
        )
        self.insufficient_quota = config.insufficient_quota
        # waits in progress (latency, timeouts), ended early when the simulator stops
        self.holds: set[anyio.CancelScope] = set()
        self.closing = False
        self._ids = itertools.count(1)
        self._models: dict[str, ModelInfo] = {}
        self._registered: set[str] = set()
        self._deployments: dict[str, str] = {}
        # Jobs and deployments advance lazily, when read: the model and deployment lookups call
        # these first, so a job that finished unobserved is usable all the same.
        self._refreshers: list[Callable[[], None]] = []
        for name in _BUILTIN_MODELS:
            self._models[name] = ModelInfo(name, 1_700_000_000, "system")

    # ---------------------------------------------------------------- time and ids

    def unix_time(self) -> int:
        return int(time.time())

    def new_id(self, prefix: str) -> str:
        """A unique id such as ``chatcmpl-3f2a...``, reproducible for a given seed."""
        with self.lock:
            number = next(self._ids)
            suffix = f"{self.random.getrandbits(64):016x}{number:08x}"
        return f"{prefix}-{suffix}"

    # ---------------------------------------------------------------- models

    def register_model(self, name: str, *, owned_by: str = "user") -> None:
        """Make ``name`` valid for chat (even under an allow-list) and list it."""
        with self.lock:
            self._registered.add(name)
            if name not in self._models:
                self._models[name] = ModelInfo(name, self.unix_time(), owned_by)

    def models(self) -> list[ModelInfo]:
        with self.lock:
            return list(self._models.values())

    def add_refresher(self, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` before model and deployment lookups (see the seam above)."""
        with self.lock:
            self._refreshers.append(refresh)

    def _refresh(self) -> None:
        with self.lock:
            refreshers = list(self._refreshers)
        for refresh in refreshers:
            refresh()

    def chat_model_allowed(self, name: str) -> bool:
        allowed = self.config.chat_models
        if allowed is not None and name not in allowed:
            self._refresh()
        with self.lock:
            return allowed is None or name in allowed or name in self._registered

    def register_deployment(self, deployment: str, model: str) -> None:
        """Route Azure ``/openai/deployments/{deployment}/...`` to ``model``."""
        with self.lock:
            self._deployments[deployment] = model

    def unregister_deployment(self, deployment: str) -> None:
        """Stop routing ``deployment`` (its ARM resource was deleted)."""
        with self.lock:
            self._deployments.pop(deployment, None)

    def deployment_model(self, deployment: str) -> str:
        """The model behind an Azure deployment (by default the deployment's own name)."""
        self._refresh()
        with self.lock:
            return self._deployments.get(deployment, deployment)

    def embedding_dimensions(self, model: str) -> int:
        return self.config.embedding_dimensions.get(model, self.config.default_embedding_dimensions)

    def release_holds(self) -> None:
        """End every wait in progress; call it in the server's event loop thread."""
        with self.lock:
            self.closing = True
            scopes = list(self.holds)
        for scope in scopes:
            scope.cancel()

    # ---------------------------------------------------------------- request log

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

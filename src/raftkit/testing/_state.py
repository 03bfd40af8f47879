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
- ``state.clock()`` is the server's monotonic clock (rate limits, waits); ``state.now()`` is the
  simulated wall clock (Unix seconds, settable: lifecycles, dates, cache expiry) and
  ``state.unix_time()`` its whole seconds for ``created`` fields; ``state.new_id("ftjob")``
  makes ids; ``state.random`` is the seeded generator.
- ``state.model_refusal(name, kind)`` says whether (and how) the service refuses a model;
  ``state.model(name)`` resolves a name against the catalog; ``state.behaviour(name)`` is how
  the model answers.
- State on disk: ``state.add_persistence(key, dump, load)`` registers a module's section of the
  snapshot; call ``state.mark_dirty()`` after a change that cannot be recomputed (the gateway
  saves at the end of the request) and use ``state.directory`` (``None`` unless a state
  directory is configured) for file contents.
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
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import anyio

from raftkit.testing._behaviour import ModelBehaviour, behaviour_for
from raftkit.testing._catalog import DEFAULT_MODELS, ModelCard, ResolvedModel, resolve_model
from raftkit.testing._clock import SimulatedClock, parse_time
from raftkit.testing._config import DEFAULT_API_KEY, SimulatorConfig
from raftkit.testing._dialects import DIALECTS, DialectProfile
from raftkit.testing._faults import FaultPlan
from raftkit.testing._misbehaviour import MisbehaviourPlan
from raftkit.testing._persist import StateDirectory
from raftkit.testing._prompt_cache import PromptCache
from raftkit.testing._ratelimit import RateLimit, RateLimiter
from raftkit.testing._tokens import TokenCounter, token_counter

__all__ = [
    "DEFAULT_API_KEY",
    "ModelInfo",
    "RecordedRequest",
    "SimulatorConfig",
    "SimulatorState",
]


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
    shutdown_date: date | None = None


ModelRefusal = Literal["unknown", "retired"]

_RESOLVED_CACHE = 4096


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
        self.dialect: DialectProfile = DIALECTS[config.dialect]
        self.catalog: Mapping[str, ModelCard] = (
            DEFAULT_MODELS if config.models is None else dict(config.models)
        )
        self.behaviours: dict[str, ModelBehaviour] = dict(config.model_behaviour)
        self.prompt_cache = PromptCache()
        start = None if config.start_time is None else parse_time(config.start_time)
        self.wall = SimulatedClock(lambda: self.clock(), start)
        # waits in progress (latency, timeouts), ended early when the simulator stops
        self.holds: set[anyio.CancelScope] = set()
        self.closing = False
        # request slots (local dialects): made in the server's event loop on first use
        self.slot_semaphore: anyio.Semaphore | None = None
        self.in_flight = 0
        self.queued = 0
        self.peak_in_flight = 0
        self._ids = itertools.count(1)
        self._next_id = 1
        self._models: dict[str, ModelInfo] = {}
        self._registered: set[str] = set()
        self._fine_tuned: set[str] = set()
        self._resolved: dict[str, ResolvedModel] = {}
        self._deployments: dict[str, str] = {}
        # Jobs and deployments advance lazily, when read: the model and deployment lookups call
        # these first, so a job that finished unobserved is usable all the same.
        self._refreshers: list[Callable[[], None]] = []
        self.directory: StateDirectory | None = (
            StateDirectory(Path(config.state_dir)) if config.state_dir is not None else None
        )
        self._sections: list[tuple[str, Callable[[], Any], Callable[[Any], None]]] = []
        self._dirty = False
        self.add_persistence("core", self._dump_core, self._load_core)

    # ---------------------------------------------------------------- time and ids

    def now(self) -> float:
        """The simulated wall clock, in Unix seconds (see :mod:`raftkit.testing._clock`)."""
        return self.wall.now()

    def unix_time(self) -> int:
        return int(self.wall.now())

    def today(self) -> date:
        return self.wall.today()

    def set_time(self, when: datetime | date | str | float) -> None:
        self.wall.set(parse_time(when))
        self.mark_dirty()

    def new_id(self, prefix: str) -> str:
        """A unique id such as ``chatcmpl-3f2a...``, reproducible for a given seed."""
        with self.lock:
            number = next(self._ids)
            self._next_id = number + 1
            suffix = f"{self.random.getrandbits(64):016x}{number:08x}"
        return f"{prefix}-{suffix}"

    # ---------------------------------------------------------------- models

    def register_model(
        self, name: str, *, owned_by: str = "user", fine_tuned: bool = False
    ) -> None:
        """Make ``name`` valid for chat (even under an allow-list) and list it; a
        ``fine_tuned`` one answers as a fine-tuned model does."""
        with self.lock:
            self._registered.add(name)
            if fine_tuned:
                self._fine_tuned.add(name)
            if name not in self._models:
                self._models[name] = ModelInfo(name, self.unix_time(), owned_by)

    def models(self) -> list[ModelInfo]:
        """The models ``GET /v1/models`` lists now: the catalog (or a local server's models)
        and the registered ones, without those past their shutdown date."""
        self._refresh()
        today = self.today()
        if self.dialect.name != "openai":
            served = self.config.served_models or self.dialect.served_models
            listed = [ModelInfo(name, 1_700_000_000, self.dialect.owned_by) for name in served]
        else:
            listed = [
                ModelInfo(name, card.created, card.owned_by, card.shutdown_date)
                for name, card in self.catalog.items()
            ]
        with self.lock:
            registered = [
                ModelInfo(m.id, m.created, m.owned_by, self.shutdown_date(m.id))
                for m in self._models.values()
            ]
        names = {m.id for m in listed}
        every = listed + [m for m in registered if m.id not in names]
        return [m for m in every if m.shutdown_date is None or m.shutdown_date > today]

    def model(self, name: str) -> ResolvedModel:
        """``name`` read against the catalog."""
        found = self._resolved.get(name)
        if found is None:
            found = resolve_model(name, self.catalog)
            if len(self._resolved) < _RESOLVED_CACHE:
                self._resolved[name] = found
        return found

    def shutdown_date(self, name: str) -> date | None:
        """When ``name`` (or the base model of a fine-tune) shuts down, if announced."""
        card = self.model(name).card
        return card.shutdown_date if card is not None else None

    def is_registered(self, name: str) -> bool:
        with self.lock:
            if name in self._registered:
                return True
        self._refresh()
        with self.lock:
            return name in self._registered

    def model_refusal(
        self, name: str, kind: Literal["chat", "embedding"] = "chat"
    ) -> ModelRefusal | None:
        """Why the service refuses ``name`` for ``kind`` (``None``: it answers it).

        A local dialect answers any name (llama.cpp) or its served names (vLLM); OpenAI's
        answers the catalog, registered models (fine-tuned ones, deployments) and, unless
        ``accept_foreign_fine_tunes`` is off, fine-tunes of known base models; a model past its
        shutdown date (or a fine-tune of one) is ``"retired"``.
        """
        config = self.config
        if self.dialect.any_model:
            return None
        if self.dialect.name != "openai":
            served = config.served_models or self.dialect.served_models
            return None if name in served or self.is_registered(name) else "unknown"
        resolved = self.model(name)
        shutdown = self.shutdown_date(name)
        if shutdown is not None and self.today() >= shutdown:
            return "retired"
        if config.chat_models is not None and kind == "chat":
            allowed = name in config.chat_models or self.is_registered(name)
            return None if allowed else "unknown"
        card = resolved.card
        known = card is not None and card.kind == kind
        if known and (not resolved.fine_tuned or config.accept_foreign_fine_tunes):
            return None  # the common case: no need to bring the jobs up to the clock
        if config.accept_unknown_models or self.is_registered(name):
            return None
        return "unknown"

    def chat_model_allowed(self, name: str) -> bool:
        return self.model_refusal(name, "chat") is None

    def behaviour(self, name: str) -> ModelBehaviour:
        """How ``name`` answers (see :mod:`raftkit.testing._behaviour`)."""
        with self.lock:
            here = name in self._fine_tuned
        fine_tuned = here or self.model(name).fine_tuned
        return behaviour_for(name, self.behaviours, fine_tuned=fine_tuned)

    def tokens(self, model: str) -> TokenCounter:
        """The token counter the simulator bills ``model`` with."""
        return token_counter(model, exact=self.config.exact_tokens)

    def add_refresher(self, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` before model and deployment lookups (see the seam above)."""
        with self.lock:
            self._refreshers.append(refresh)

    def _refresh(self) -> None:
        with self.lock:
            refreshers = list(self._refreshers)
        for refresh in refreshers:
            refresh()

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

    def has_deployment(self, deployment: str) -> bool:
        with self.lock:
            return deployment in self._deployments

    def embedding_dimensions(self, model: str) -> int:
        return self.config.embedding_dimensions.get(model, self.config.default_embedding_dimensions)

    # ---------------------------------------------------------------- request slots

    def slot_limit(self) -> int | None:
        return self.config.slots if self.config.slots is not None else self.dialect.slots

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

    # ---------------------------------------------------------------- state on disk

    def add_persistence(
        self, key: str, dump: Callable[[], Any], load: Callable[[Any], None]
    ) -> None:
        """Include a section in the snapshot of the state directory (loaded in this order)."""
        with self.lock:
            self._sections.append((key, dump, load))

    def mark_dirty(self) -> None:
        """Something that cannot be recomputed changed: save at the end of the request."""
        if self.directory is not None:
            self._dirty = True

    def save_if_dirty(self) -> None:
        if not self._dirty or self.directory is None:
            return
        with self.lock:
            self._dirty = False
            sections = {key: dump() for key, dump, _ in self._sections}
            self.directory.save(sections)

    def load_from_directory(self) -> None:
        """Load the snapshot of the state directory (a no-op for a new one)."""
        if self.directory is None:
            return
        sections = self.directory.load()
        if sections is None:
            return
        with self.lock:
            for key, _, load in self._sections:
                if key in sections:
                    load(sections[key])

    def _dump_core(self) -> dict[str, Any]:
        return {
            "clock_offset": self.wall.wall_offset(),
            "next_id": self._next_id,
            "models": [
                {
                    "id": m.id,
                    "created": m.created,
                    "owned_by": m.owned_by,
                    "fine_tuned": name in self._fine_tuned,
                }
                for name, m in self._models.items()
                if name in self._registered
            ],
            "deployments": dict(self._deployments),
        }

    def _load_core(self, data: Any) -> None:
        self.wall.set(time.time() + float(data.get("clock_offset", 0.0)))
        self._next_id = int(data.get("next_id", 1))
        self._ids = itertools.count(self._next_id)
        for model in data.get("models", []):
            self._registered.add(model["id"])
            if model.get("fine_tuned"):
                self._fine_tuned.add(model["id"])
            self._models[model["id"]] = ModelInfo(model["id"], model["created"], model["owned_by"])
        self._deployments.update(data.get("deployments", {}))

"""Everything that shapes one simulator: :class:`SimulatorConfig`.

Each field is documented where it is declared; docs/simulator.md has them all in one table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from raftkit.testing._behaviour import ModelBehaviour
from raftkit.testing._catalog import FINE_TUNING_CUTOFFS, ModelCard
from raftkit.testing._clock import DEFAULT_START_TIME, parse_time
from raftkit.testing._dialects import DIALECTS, DialectName
from raftkit.testing._faults import FaultRule
from raftkit.testing._ratelimit import RateLimit

__all__ = ["DEFAULT_API_KEY", "SimulatorConfig"]

DEFAULT_API_KEY = "sk-raftkit-simulator-0000000000000000"

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

    dialect: DialectName = "openai"
    """The server to imitate: ``"openai"``, ``"llama.cpp"`` or ``"vllm"`` (see
    :mod:`raftkit.testing._dialects`)."""
    slots: int | None = None
    """Chat requests served at once; more wait their turn (their latency grows). ``None``: the
    dialect's default (OpenAI: no limit, llama.cpp: 1, vLLM: 64)."""
    context_window: int | None = None
    """Prompt + ``max_tokens`` above this answers 400 ``context_length_exceeded``. ``None``: the
    dialect's default (llama.cpp: 4,096, vLLM: 8,192), else each model card's."""
    runaway_share: float | None = None
    """Share of chat requests (decided per request) whose output does not stop until
    ``max_tokens`` or the context window. ``None``: the dialect's default (llama.cpp: 0.05)."""
    served_models: tuple[str, ...] | None = None
    """What a local dialect lists in ``GET /v1/models`` (and, for vLLM, the only names it
    answers). ``None``: the dialect's default name."""

    models: Mapping[str, ModelCard] | None = None
    """The model catalog; ``None`` is ``DEFAULT_MODELS`` (see :mod:`raftkit.testing._catalog`)."""
    accept_unknown_models: bool = False
    """Answer model names that are not in the catalog (instead of 404 ``model_not_found``)."""
    accept_foreign_fine_tunes: bool = True
    """Answer fine-tuned names of known base models (``ft:gpt-4o-mini:...``) that no simulated
    job produced; ``False`` refuses them with 404, as a real account would."""
    chat_models: frozenset[str] | None = None
    """An extra allow-list for chat (registered and fine-tuned models always pass)."""
    model_behaviour: Mapping[str, ModelBehaviour] = field(default_factory=dict)
    """How named models answer: exact names or ``fnmatch`` patterns, before the built-in table
    (see :mod:`raftkit.testing._behaviour`)."""
    exact_tokens: bool | None = None
    """Count tokens with OpenAI's real vocabularies (``bpe-openai``, the ``tokens`` extra);
    ``None``: when it is installed; ``False``: always the estimate."""
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
    """Completion tokens charged at admission for a chat request without ``max_tokens`` /
    ``max_completion_tokens``: it costs prompt + this (0 charges the prompt only)."""
    insufficient_quota: bool = False
    """Answer every chat and embedding request with 429 ``insufficient_quota``."""

    latency_base: float = 0.0
    """Seconds added to every chat or embedding response."""
    latency_per_token: float = 0.0
    """Seconds added per completion token."""

    prompt_caching: bool = True
    """Report ``cached_tokens`` for repeated prompt prefixes of 1,024 tokens or more (OpenAI
    dialect only)."""
    prompt_cache_ttl: float = 600.0
    """Seconds (simulated clock) a cached prefix lives after its last use, unless the model
    card says otherwise; ``prompt_cache_retention: "24h"`` in a request makes it a day."""

    start_time: datetime | date | str | float | None = DEFAULT_START_TIME
    """The simulated date when the simulator starts (then it advances in real time); ``None``
    is the real time. Fixed by default so the suite behaves the same whatever day it runs."""
    fine_tuning_cutoffs: Mapping[str, date | None] = field(
        default_factory=lambda: dict(FINE_TUNING_CUTOFFS)
    )
    """Per provider (``"openai"``, ``"azure"``): from this date on, job creation is refused."""
    state_dir: Path | str | None = None
    """Keep files, jobs, batches, deployments and the clock in this directory, so a restarted
    simulator carries on (see :mod:`raftkit.testing._persist`). ``None``: in memory only."""

    faults: tuple[FaultRule, ...] = ()
    """Random fault rules active from the start (see :class:`~raftkit.testing.Fault`)."""
    misbehaviour: Mapping[str, float] = field(default_factory=dict)
    """Probability of each teacher misbehaviour, e.g. ``{"invented_quote": 0.1}``."""

    max_logged_requests: int | None = 10_000
    """The request log keeps this many of the latest requests (``None``: all of them)."""

    shutdown_timeout: float = 2.0
    """Seconds ``stop()`` waits for requests in flight before cutting them off."""

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {self.dialect!r}; expected one of {list(DIALECTS)}")
        if self.dialect != "openai" and (
            self.rpm is not None or self.tpm is not None or self.model_limits
        ):
            raise ValueError(
                f"the {self.dialect} dialect publishes no rate limits; leave rpm, tpm and "
                "model_limits unset (use slots and latency to bound throughput)"
            )
        if self.slots is not None and self.slots < 1:
            raise ValueError(f"slots must be at least 1, got {self.slots}")
        if self.runaway_share is not None and not 0.0 <= self.runaway_share <= 1.0:
            raise ValueError(f"runaway_share must be in [0, 1], got {self.runaway_share}")
        if self.default_max_tokens < 0:
            raise ValueError("default_max_tokens must not be negative")
        if self.start_time is not None:
            parse_time(self.start_time)  # a clear error now rather than at start

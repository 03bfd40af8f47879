"""Loopback simulator of the OpenAI and Azure OpenAI REST APIs, for tests and benchmarks.

``async with Simulator() as sim:`` serves real HTTP on 127.0.0.1: chat completions with a
deterministic RAFT "teacher", structured output valid under the requested schema, embeddings in
which texts sharing words are close, account rate limits with OpenAI's headers and 429s, and
faults on demand. It imports nothing of raftkit but ``raftkit.types`` and ``raftkit.errors``,
so a bug in the client cannot hide in it.
"""

from raftkit.testing._app import build_app
from raftkit.testing._embeddings import embed_text
from raftkit.testing._faults import Fault, FaultRule
from raftkit.testing._misbehaviour import Misbehaviour
from raftkit.testing._ratelimit import RateLimit, format_duration
from raftkit.testing._server import Simulator
from raftkit.testing._state import (
    DEFAULT_API_KEY,
    RecordedRequest,
    SimulatorConfig,
    SimulatorState,
)

__all__ = [
    "DEFAULT_API_KEY",
    "Fault",
    "FaultRule",
    "Misbehaviour",
    "RateLimit",
    "RecordedRequest",
    "Simulator",
    "SimulatorConfig",
    "SimulatorState",
    "build_app",
    "embed_text",
    "format_duration",
]

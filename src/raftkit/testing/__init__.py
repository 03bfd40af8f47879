"""Loopback simulator of the OpenAI and Azure OpenAI REST APIs, for tests and benchmarks.

``async with Simulator() as sim:`` serves real HTTP on 127.0.0.1: chat completions with a
deterministic RAFT "teacher", structured output valid under the requested schema, embeddings in
which texts sharing words are close, account rate limits with OpenAI's headers and 429s, and
faults on demand. It imports nothing of raftkit but ``raftkit.types`` and ``raftkit.errors``,
so a bug in the client cannot hide in it.

:class:`~raftkit.testing.scripted.ScriptedClient` is the other kind of test double: an
:class:`~raftkit.llm.LLMClient` whose answers a test scripts, with no HTTP at all. It is the
one module here that imports the client side, and only when it is asked for.

Names are imported on first use, so the pytest plugin (loaded into every pytest session of a
project that installs raftkit) costs nothing until its fixtures are used.
"""

import importlib
import typing

if typing.TYPE_CHECKING:
    from raftkit.testing._app import build_app
    from raftkit.testing._batches import BatchSettings, configure_batches
    from raftkit.testing._behaviour import DEFAULT_BEHAVIOURS, ModelBehaviour
    from raftkit.testing._catalog import DEFAULT_MODELS, ModelCard
    from raftkit.testing._clock import DEFAULT_START_TIME
    from raftkit.testing._deployments import DeploymentSettings, configure_deployments
    from raftkit.testing._embeddings import embed_text
    from raftkit.testing._faults import Fault, FaultRule
    from raftkit.testing._files import FileSettings, configure_files
    from raftkit.testing._finetune import FineTuningSettings, configure_fine_tuning
    from raftkit.testing._misbehaviour import Misbehaviour
    from raftkit.testing._ratelimit import RateLimit, format_duration
    from raftkit.testing._server import Simulator
    from raftkit.testing._state import (
        DEFAULT_API_KEY,
        RecordedRequest,
        SimulatorConfig,
        SimulatorState,
    )
    from raftkit.testing.scripted import ScriptedClient

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_BEHAVIOURS",
    "DEFAULT_MODELS",
    "DEFAULT_START_TIME",
    "BatchSettings",
    "DeploymentSettings",
    "Fault",
    "FaultRule",
    "FileSettings",
    "FineTuningSettings",
    "Misbehaviour",
    "ModelBehaviour",
    "ModelCard",
    "RateLimit",
    "RecordedRequest",
    "ScriptedClient",
    "Simulator",
    "SimulatorConfig",
    "SimulatorState",
    "build_app",
    "configure_batches",
    "configure_deployments",
    "configure_files",
    "configure_fine_tuning",
    "embed_text",
    "format_duration",
]

_LAZY = {
    "build_app": "raftkit.testing._app",
    "BatchSettings": "raftkit.testing._batches",
    "configure_batches": "raftkit.testing._batches",
    "DeploymentSettings": "raftkit.testing._deployments",
    "configure_deployments": "raftkit.testing._deployments",
    "DEFAULT_BEHAVIOURS": "raftkit.testing._behaviour",
    "ModelBehaviour": "raftkit.testing._behaviour",
    "DEFAULT_MODELS": "raftkit.testing._catalog",
    "ModelCard": "raftkit.testing._catalog",
    "DEFAULT_START_TIME": "raftkit.testing._clock",
    "embed_text": "raftkit.testing._embeddings",
    "Fault": "raftkit.testing._faults",
    "FaultRule": "raftkit.testing._faults",
    "FileSettings": "raftkit.testing._files",
    "configure_files": "raftkit.testing._files",
    "FineTuningSettings": "raftkit.testing._finetune",
    "configure_fine_tuning": "raftkit.testing._finetune",
    "Misbehaviour": "raftkit.testing._misbehaviour",
    "RateLimit": "raftkit.testing._ratelimit",
    "format_duration": "raftkit.testing._ratelimit",
    "Simulator": "raftkit.testing._server",
    "DEFAULT_API_KEY": "raftkit.testing._state",
    "RecordedRequest": "raftkit.testing._state",
    "SimulatorConfig": "raftkit.testing._state",
    "SimulatorState": "raftkit.testing._state",
    # the scripted client implements raftkit.llm.LLMClient: loaded only when asked for
    "ScriptedClient": "raftkit.testing.scripted",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'raftkit.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

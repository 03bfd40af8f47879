"""pytest fixtures for the raftkit simulator (registered as the ``raftkit`` pytest11 plugin).

- ``raftkit_simulator``: a started :class:`~raftkit.testing.Simulator` for one test; configure it
  with ``@pytest.mark.raftkit_simulator(rpm=60, tpm=10_000)`` (any
  :class:`~raftkit.testing.SimulatorConfig` field).
- ``raftkit_simulator_factory``: call it (with a config or fields) for more simulators; all are
  stopped after the test.

The fixtures are synchronous: the simulator serves from its own thread, so they work with
tests on asyncio, trio, or no event loop at all.

pytest loads this plugin into every session of a project that installs raftkit, so the server
stack (uvicorn, starlette, the app) is imported only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from raftkit.testing._server import Simulator
    from raftkit.testing._state import SimulatorConfig

__all__ = ["pytest_configure", "raftkit_simulator", "raftkit_simulator_factory"]

SimulatorFactory = Callable[..., "Simulator"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "raftkit_simulator(**config): SimulatorConfig fields for the raftkit_simulator fixture",
    )


@pytest.fixture
def raftkit_simulator_factory() -> Iterator[SimulatorFactory]:
    from raftkit.testing._server import Simulator
    from raftkit.testing._state import SimulatorConfig

    started: list[Simulator] = []

    def make(config: SimulatorConfig | None = None, **fields: Any) -> Simulator:
        if config is not None and fields:
            raise TypeError("pass either a SimulatorConfig or its fields, not both")
        simulator = Simulator(config or SimulatorConfig(**fields))
        simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in reversed(started):
        simulator.stop()


@pytest.fixture
def raftkit_simulator(
    request: pytest.FixtureRequest, raftkit_simulator_factory: SimulatorFactory
) -> Simulator:
    marker = request.node.get_closest_marker("raftkit_simulator")
    fields: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    return raftkit_simulator_factory(**fields)

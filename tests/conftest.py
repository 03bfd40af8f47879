"""Every async test runs on both anyio backends: asyncio and trio."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from raftkit.testing import Simulator


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True, scope="session")
def _isolated_simulator_state(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """A background simulator a developer left running (``raftkit simulator start``) must not
    answer the CLI calls of the tests: point the state directory somewhere empty."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RAFTKIT_SIMULATOR_DIR", str(tmp_path_factory.mktemp("simulator-state")))
    yield
    patch.undo()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.extra("module", ...)``: the test needs an optional extra.

    Without it the test is skipped with the install command, except where
    ``RAFTKIT_REQUIRE_EXTRAS=1`` (CI installs every extra), where a missing one is a failure.
    """
    for marker in item.iter_markers("extra"):
        missing = [name for name in marker.args if importlib.util.find_spec(name) is None]
        if missing:
            message = f"needs {', '.join(missing)}: pip install 'raftkit[{missing[0]}]'"
            if os.environ.get("RAFTKIT_REQUIRE_EXTRAS") == "1":
                pytest.fail(f"RAFTKIT_REQUIRE_EXTRAS=1 but the test {message}", pytrace=False)
            pytest.skip(message)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One LoRA adapter of SmolLM2-135M, trained once per session by ``raftkit finetune RUN
    --provider local`` on a tiny run: the student, serving and real-server tests share it
    (training is the slow part). Request it only from tests marked ``requires_student()``."""
    from students_support import train_tiny_run

    result = train_tiny_run(tmp_path_factory.mktemp("tiny-student"))
    assert result.code == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch, raftkit_simulator: Simulator) -> Simulator:
    """The session's simulator as the only credentials a command finds (OpenAI's key set,
    Azure's endpoint and a base URL unset)."""
    monkeypatch.setenv("OPENAI_API_KEY", raftkit_simulator.api_key)
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return raftkit_simulator

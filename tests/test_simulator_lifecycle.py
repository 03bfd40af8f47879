"""Starting and stopping the simulator: context managers, fixtures, the seam, the CLI."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import raftkit.testing
from raftkit.testing import Simulator, SimulatorConfig, SimulatorState, build_app

pytestmark = pytest.mark.anyio


def test_public_names_match_all() -> None:
    for name in raftkit.testing.__all__:  # the names are loaded on first use
        assert getattr(raftkit.testing, name) is not None
    public = {
        name
        for name, value in vars(raftkit.testing).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(raftkit.testing.__all__) == public


def test_simulator_imports_nothing_of_raftkit_but_floor_one() -> None:
    allowed = ("raftkit.testing", "raftkit.types", "raftkit.errors")
    package = Path(raftkit.testing.__file__).parent
    for source in sorted(package.glob("*.py")):
        if source.name == "scripted.py":
            continue  # the scripted client implements LLMClient: the one declared exception
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name == "raftkit" or name.startswith("raftkit."):
                    assert name.startswith(allowed), f"{source.name} imports {name}"


def test_the_simulator_and_the_plugin_load_no_client_and_no_server_up_front() -> None:
    code = (
        "import sys, json, raftkit.testing.pytest_plugin; "
        "before = sorted(m for m in ('uvicorn', 'starlette', 'raftkit.testing._app') "
        "if m in sys.modules); "
        "raftkit.testing.Simulator; "
        "client = sorted(m for m in ('raftkit.testing.scripted', 'raftkit.llm._transport') "
        "if m in sys.modules); "
        "print(json.dumps([before, client, 'uvicorn' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == [[], [], True]


async def test_async_context_manager(anyio_backend: str) -> None:
    async with Simulator() as sim, httpx.AsyncClient(verify=False) as client:
        assert sim.base_url == f"http://127.0.0.1:{sim.port}/v1"
        assert sim.azure_endpoint == f"http://127.0.0.1:{sim.port}"
        response = await client.get(
            f"{sim.base_url}/models", headers={"Authorization": f"Bearer {sim.api_key}"}
        )
        assert response.status_code == 200
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.base_url


def test_sync_start_stop_and_restart_guard() -> None:
    sim = Simulator(SimulatorConfig(api_key="sk-test-key"))
    sim.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            sim.start()
        response = httpx.get(
            f"{sim.base_url}/models", headers={"Authorization": "Bearer sk-test-key"}, verify=False
        )
        assert response.status_code == 200
        assert "sk-test-key" not in repr(sim)
    finally:
        sim.stop()
    sim.stop()  # a second stop is harmless


@pytest.mark.raftkit_simulator(rpm=7)
def test_marker_configures_the_fixture(raftkit_simulator: Simulator) -> None:
    assert raftkit_simulator.config.rpm == 7


def test_factory_fixture(raftkit_simulator_factory: Any) -> None:
    first: Simulator = raftkit_simulator_factory(seed=1)
    second: Simulator = raftkit_simulator_factory(SimulatorConfig(tpm=5))
    assert first.port != second.port
    assert second.config.tpm == 5
    with pytest.raises(TypeError):
        raftkit_simulator_factory(SimulatorConfig(), seed=2)


async def test_extra_routes_share_state_auth_and_ids() -> None:
    async def echo(request: Request) -> JSONResponse:
        state: SimulatorState = request.app.state.simulator
        state.register_model("ft:gpt-4o-mini:org::xyz")
        return JSONResponse({"models": len(state.models())})

    simulator = Simulator(extra_routes=[Route("/v1/echo", echo, methods=["GET"])])
    async with simulator as sim, httpx.AsyncClient(verify=False) as client:
        ok = await client.get(
            f"{sim.base_url}/echo", headers={"Authorization": f"Bearer {sim.api_key}"}
        )
        denied = await client.get(f"{sim.base_url}/echo")
    assert ok.status_code == 200
    assert ok.headers["x-request-id"]
    assert denied.status_code == 401
    assert any(m.id == "ft:gpt-4o-mini:org::xyz" for m in sim.state.models())


def test_build_app_is_an_asgi_app() -> None:
    app = build_app(SimulatorState(SimulatorConfig()))
    assert callable(app)


@pytest.mark.slow
def test_module_runs_as_a_process_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "raftkit.testing", "--rpm", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        second = process.stdout.readline()
        base_url = first.split("base_url=", 1)[1].strip()
        api_key = second.split("api_key=", 1)[1].strip()
        response = httpx.get(
            f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"}, verify=False
        )
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.raftkit_simulator(max_logged_requests=3)
def test_request_log_keeps_the_latest(raftkit_simulator: Simulator) -> None:
    with httpx.Client(verify=False) as client:
        for index in range(5):
            client.get(
                f"{raftkit_simulator.base_url}/models",
                params={"i": str(index)},
                headers={"Authorization": f"Bearer {raftkit_simulator.api_key}"},
            )
    assert [record.query["i"] for record in raftkit_simulator.requests] == ["2", "3", "4"]
    raftkit_simulator.clear_requests()
    assert raftkit_simulator.requests == []

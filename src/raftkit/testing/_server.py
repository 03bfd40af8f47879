"""The :class:`Simulator`: the app served by uvicorn on 127.0.0.1 in a thread of its own.

The server runs its own asyncio loop in a background thread, so it serves tests running on
asyncio, on trio, and plain synchronous code alike.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import uvicorn
from starlette.routing import BaseRoute

from raftkit.testing._app import build_app
from raftkit.testing._behaviour import ModelBehaviour
from raftkit.testing._faults import Fault
from raftkit.testing._misbehaviour import Misbehaviour
from raftkit.testing._ratelimit import RateLimit
from raftkit.testing._state import RecordedRequest, SimulatorConfig, SimulatorState

__all__ = ["Simulator"]

_STARTUP_TIMEOUT = 15.0


class _Server(uvicorn.Server):
    """uvicorn's server, woken at once by :meth:`wake` instead of polling every 0.1 s."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: anyio.Event | None = None

    def wake(self) -> None:
        """Call in the server's loop after setting ``should_exit``."""
        if self._wake is not None:
            self._wake.set()

    async def main_loop(self) -> None:
        self._wake = anyio.Event()
        counter = 0
        while not await self.on_tick(counter):
            # one wait stands for ten of uvicorn's ticks, so the date header stays fresh
            counter = (counter + 10) % 864_000
            with anyio.move_on_after(1.0):
                await self._wake.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own shutdown, polling every few milliseconds instead of 0.1 s: tests start
        # and stop one simulator each, and those tenths add up to minutes.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        with anyio.move_on_after(self.config.timeout_graceful_shutdown or 1.0):
            # uvicorn offers no event for "all connections closed"; poll it
            while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        for task in self.server_state.tasks:
            task.cancel()
        for server in self.servers:
            await server.wait_closed()


class Simulator:
    """A loopback OpenAI / Azure OpenAI API.

    Use ``async with Simulator() as sim:`` or ``sim.start()`` / ``sim.stop()``; point a client
    at :attr:`base_url` (OpenAI) or :attr:`azure_endpoint` (Azure) with :attr:`api_key`.
    """

    def __init__(
        self, config: SimulatorConfig | None = None, *, extra_routes: Sequence[BaseRoute] = ()
    ) -> None:
        self.config = config or SimulatorConfig()
        self.state = SimulatorState(self.config)
        self._extra_routes = tuple(extra_routes)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._error: BaseException | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._loaded = False

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Bind the port and serve in a background thread; returns once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        directory = self.state.directory
        if directory is not None:
            directory.acquire()
        try:
            self._serve()
        except BaseException:
            if directory is not None:
                directory.release()
            raise
        if directory is not None:
            directory.announce(
                {
                    "pid": os.getpid(),
                    "host": self.config.host,
                    "port": self.port,
                    "base_url": self.base_url,
                    "azure_endpoint": self.azure_endpoint,
                    "dialect": self.config.dialect,
                    "started": time.time(),
                }
            )

    def _serve(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.config.host, self.config.port))
        sock.listen(512)
        self._socket = sock
        self._port = int(sock.getsockname()[1])
        app = build_app(self.state, self._extra_routes)
        if not self._loaded:
            # the routes registered their sections of the snapshot: now it can be read
            self.state.load_from_directory()
            self._loaded = True
        self.state.slot_semaphore = None
        self.state.closing = False
        server_config = uvicorn.Config(
            app,
            http="h11",
            ws="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            date_header=False,  # the gateway sends the simulated date
            timeout_keep_alive=30,
            timeout_graceful_shutdown=max(1, round(self.config.shutdown_timeout)),
        )
        server = _Server(server_config)
        self._server = server

        async def serve_with_portal() -> None:
            async with anyio.from_thread.BlockingPortal() as portal:
                self._portal = portal
                await server.serve([sock])

        def serve() -> None:
            try:
                anyio.run(serve_with_portal, backend="asyncio")
            except BaseException as error:  # surfaced by start() or stop()
                self._error = error

        self._thread = threading.Thread(target=serve, name="raftkit-simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._cleanup()
                raise RuntimeError("the simulator did not start") from self._error
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving; requests still in flight get ``shutdown_timeout`` seconds to finish."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        portal = self._portal
        if portal is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                portal.call(self.state.release_holds)
                portal.call(server.wake)
        thread.join(self.config.shutdown_timeout + 2.0)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5.0)
        self._cleanup()

    def _cleanup(self) -> None:
        directory = self.state.directory
        if directory is not None and self._thread is not None:
            self.state.mark_dirty()  # the clock moved on: keep where it stands
            self.state.save_if_dirty()
            directory.release()
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._port = None
        self._server = None
        self._thread = None
        self._portal = None

    async def __aenter__(self) -> Simulator:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return self._port

    @property
    def azure_endpoint(self) -> str:
        """E.g. ``http://127.0.0.1:PORT`` (for ``AsyncAzureOpenAI(azure_endpoint=...)``)."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def management_endpoint(self) -> str:
        """The Azure Resource Manager root for deployments (``https://management.azure.com``)."""
        return self.azure_endpoint

    @property
    def base_url(self) -> str:
        """E.g. ``http://127.0.0.1:PORT/v1`` (for ``AsyncOpenAI(base_url=...)``)."""
        return f"{self.azure_endpoint}/v1"

    @property
    def api_key(self) -> str:
        """The only key the simulator accepts (a fake one)."""
        return self.config.api_key

    def __repr__(self) -> str:
        where = self.azure_endpoint if self._port is not None else "not running"
        return f"Simulator({where})"

    # ---------------------------------------------------------------- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request answered so far, oldest first."""
        with self.state.lock:
            return list(self.state.requests)

    def clear_requests(self) -> None:
        with self.state.lock:
            self.state.requests.clear()

    # ---------------------------------------------------------------- behaviour at runtime

    def add_fault(self, fault: Fault, *, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests it matches (see ``Fault.path``)."""
        self.state.faults.add(fault, times)

    def add_random_fault(self, fault: Fault, probability: float) -> None:
        """Apply ``fault`` to each matching request with ``probability`` (seeded)."""
        self.state.faults.add_rule(fault, probability)

    def clear_faults(self) -> None:
        self.state.faults.clear()

    @property
    def pending_faults(self) -> int:
        return self.state.faults.pending

    def misbehave(self, mode: Misbehaviour, *, times: int = 1) -> None:
        """Make the next ``times`` completions show ``mode`` (e.g. ``"invented_quote"``)."""
        self.state.misbehaviour.next_n(mode, times)

    def set_misbehaviour(self, mode: Misbehaviour, probability: float) -> None:
        self.state.misbehaviour.set_probability(mode, probability)

    def set_insufficient_quota(self, exhausted: bool = True) -> None:
        """Answer every chat and embedding request with 429 ``insufficient_quota`` (or stop)."""
        self.state.insufficient_quota = exhausted

    def set_rate_limit(self, model: str, *, rpm: int | None, tpm: int | None) -> None:
        """Give ``model`` (or an Azure deployment) its own limits, starting with full buckets."""
        self.state.limiter.set_limit(model, RateLimit(rpm, tpm))

    def register_model(
        self, name: str, *, owned_by: str = "user", fine_tuned: bool = False
    ) -> None:
        """Make ``name`` a valid chat model and list it (``fine_tuned``: it answers as a model
        fine-tuned on RAFT data does)."""
        self.state.register_model(name, owned_by=owned_by, fine_tuned=fine_tuned)
        self.state.mark_dirty()
        self.state.save_if_dirty()

    def register_deployment(self, deployment: str, model: str) -> None:
        """Route Azure requests for ``deployment`` to ``model``."""
        self.state.register_deployment(deployment, model)
        self.state.mark_dirty()
        self.state.save_if_dirty()

    def rate_limit_headers(self, model: str) -> dict[str, Any]:
        """What the ``x-ratelimit-*`` headers for ``model`` would say now."""
        return dict(self.state.limiter.headers(model))

    # ---------------------------------------------------------------- the simulated clock

    def now(self) -> datetime:
        """The simulated date and time (UTC)."""
        return datetime.fromtimestamp(self.state.now(), UTC)

    def set_time(self, when: datetime | date | str | float) -> None:
        """Move the simulated clock to ``when`` (a datetime, a date meaning its midnight UTC,
        an ISO 8601 string or Unix seconds); it then runs on from there."""
        self.state.set_time(when)
        self.state.save_if_dirty()

    def advance_time(self, seconds: float) -> None:
        """Move the simulated clock forward (or back, with a negative number)."""
        self.state.set_time(self.state.now() + seconds)
        self.state.save_if_dirty()

    # ---------------------------------------------------------------- models

    def set_model_behaviour(self, model: str, behaviour: ModelBehaviour) -> None:
        """Make ``model`` (a name or an ``fnmatch`` pattern) answer as ``behaviour`` says."""
        with self.state.lock:
            self.state.behaviours[model] = behaviour

    def clear_prompt_cache(self) -> None:
        """Forget every cached prompt prefix."""
        self.state.prompt_cache.clear()

    @property
    def concurrency(self) -> dict[str, int]:
        """Chat requests being answered now (``in_flight``), waiting for a slot (``queued``),
        and the most answered at once so far (``peak_in_flight``)."""
        return {
            "in_flight": self.state.in_flight,
            "queued": self.state.queued,
            "peak_in_flight": self.state.peak_in_flight,
        }

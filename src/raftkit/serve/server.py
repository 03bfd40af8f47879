"""Running the app: in a background thread (tests, notebooks, your own code) or in the
foreground (the ``raftkit serve`` command)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Self

import uvicorn

from raftkit.errors import UsageError
from raftkit.serve.app import create_app
from raftkit.serve.model import LocalChatModel

__all__ = ["ServerThread"]

_STARTUP_TIMEOUT = 30.0


class ServerThread:
    """``with ServerThread(model) as server:`` serves ``model`` on ``server.base_url``
    (127.0.0.1 and a free port unless given) from a thread with its own event loop, so it
    answers sync code and async code on either anyio backend alike."""

    def __init__(self, model: LocalChatModel, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            create_app(model), host=host, port=port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="raftkit-serve", daemon=True)
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        """The API root, ending in ``/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UsageError(f"the server did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        sockets = self._server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

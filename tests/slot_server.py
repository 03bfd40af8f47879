"""A local OpenAI-compatible server with a few slots: the shape of llama.cpp and vLLM for tests.

It serves ``slots`` chat completions at once and queues the rest first-come first-served;
each takes ``seconds`` plus ``per_token`` per completion token (completions of 20 to 120
tokens, fixed by the request's text). Like a local server it publishes no rate limits: no
``x-ratelimit-*`` headers, no 429s, only a queue that makes every request beyond the slots
wait. It records the longest queue it saw and whether a client hung up on a request.

Run it as a process (``with slot_server_process(slots=1, seconds=0.05) as server: ...``, or
by hand, as ``benchmarks/local_servers.py`` does), so it shares no interpreter lock with the
client it serves; ``GET /stats`` says what it saw::

    python tests/slot_server.py --slots 8 --seconds 0.5    # prints "base_url=http://..."
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["RemoteSlotServer", "SlotServer", "slot_server_process"]


class SlotServer:
    """The server, in a thread with its own event loop (so it serves asyncio and trio tests)."""

    def __init__(self, *, slots: int, seconds: float, per_token: float = 0.0) -> None:
        self.slots = slots
        self.seconds = seconds
        self.per_token = per_token
        self.served = 0
        self.hung_up = 0  # requests whose client gave up (a timeout) before the answer
        self.busy = 0
        self.queued = 0
        self.max_queued = 0
        self.max_busy = 0
        self._free: anyio.Semaphore | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.base_url = ""

    @staticmethod
    def completion_tokens(messages: Any) -> int:
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
        return 20 + digest[0] % 101

    async def _chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        if self._free is None:
            self._free = anyio.Semaphore(self.slots)
        tokens = self.completion_tokens(body.get("messages"))
        self.queued += 1
        self.max_queued = max(self.max_queued, self.queued - self.slots)
        try:
            async with self._free:
                self.busy += 1
                self.max_busy = max(self.max_busy, self.busy)
                try:
                    await anyio.sleep(self.seconds + self.per_token * tokens)
                finally:
                    self.busy -= 1
        finally:
            self.queued -= 1
        if await request.is_disconnected():
            self.hung_up += 1
        self.served += 1
        answer = {
            "id": f"chatcmpl-{self.served}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "local"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "word " * tokens},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 30,
                "completion_tokens": tokens,
                "total_tokens": 30 + tokens,
            },
        }
        return JSONResponse(answer)

    def stats(self) -> dict[str, int]:
        return {
            "served": self.served,
            "hung_up": self.hung_up,
            "max_queued": self.max_queued,
            "max_busy": self.max_busy,
        }

    async def _stats(self, request: Request) -> JSONResponse:
        return JSONResponse(self.stats())

    def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/stats", self._stats, methods=["GET"]),
            ]
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        self._socket = sock
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        config = uvicorn.Config(
            app, http="h11", lifespan="off", log_level="warning", access_log=False
        )
        server = uvicorn.Server(config)
        self._server = server

        def serve() -> None:
            anyio.run(server.serve, [sock], backend="asyncio")

        self._thread = threading.Thread(target=serve, name="slot-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the slot server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SlotServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RemoteSlotServer:
    """A :class:`SlotServer` running in a process of its own."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def stats(self) -> dict[str, int]:
        root = self.base_url.removesuffix("/v1")
        stats: dict[str, int] = httpx.get(f"{root}/stats", timeout=10).json()
        return stats


@contextlib.contextmanager
def slot_server_process(
    *, slots: int, seconds: float, per_token: float = 0.0
) -> Iterator[RemoteSlotServer]:
    command = [sys.executable, str(Path(__file__).resolve()), "--slots", str(slots)]
    command += ["--seconds", str(seconds), "--per-token", str(per_token)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "base_url=" not in line:
            raise RuntimeError(f"the slot server did not start: {line!r}")
        yield RemoteSlotServer(line.split("base_url=", 1)[1].strip())
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--per-token", type=float, default=0.0)
    args = parser.parse_args()
    with SlotServer(slots=args.slots, seconds=args.seconds, per_token=args.per_token) as server:
        print(f"base_url={server.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        print(
            f"served={server.served} max_queued={server.max_queued} hung_up={server.hung_up}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()

"""A headless Chromium driven over the DevTools protocol, for tests of raftkit's HTML pages.

``--remote-debugging-pipe`` makes Chromium read protocol messages from file descriptor 3 and
write them to 4, each a JSON object ending in a NUL byte: no port, no websocket library.
Where Chromium is missing, :func:`chromium_or_skip` skips the test with the install command —
or fails it where ``RAFTKIT_REQUIRE_EXTRAS=1`` (CI installs it).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = [
    "INSTALL",
    "Browser",
    "PageLoad",
    "chromium_or_skip",
    "fonts_covering",
    "open_browser",
    "png_size",
    "skip_or_fail",
]

INSTALL = "apt-get install -y chromium fonts-wqy-microhei"
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def skip_or_fail(message: str) -> None:
    if os.environ.get("RAFTKIT_REQUIRE_EXTRAS") == "1":
        pytest.fail(f"RAFTKIT_REQUIRE_EXTRAS=1 but {message}", pytrace=False)
    pytest.skip(message)


def chromium_or_skip() -> str:
    """The Chromium executable; skips (or fails under CI) with the install command if none."""
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    skip_or_fail(f"the browser test needs Chromium: {INSTALL}")
    raise AssertionError("unreachable")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header; an error if ``data`` is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@dataclass
class PageLoad:
    """What happened while a page loaded: console messages, exceptions, log entries, dialogs."""

    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    dialogs: list[dict[str, Any]] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Every error or warning the page produced, as readable lines."""
        found = [
            f"console.{m.get('type')}: "
            + " ".join(str(a.get("value", a.get("description"))) for a in m.get("args", []))
            for m in self.console
            if m.get("type") in {"error", "warning", "assert"}
        ]
        found += [
            f"exception: {e.get('exceptionDetails', {}).get('text')} "
            f"{e.get('exceptionDetails', {}).get('exception', {}).get('description', '')}"
            for e in self.exceptions
        ]
        found += [
            f"log.{e['entry'].get('level')}: {e['entry'].get('text')} {e['entry'].get('url', '')}"
            for e in self.log
            if e.get("entry", {}).get("level") in {"error", "warning"}
        ]
        found += [f"dialog: {d.get('type')} {d.get('message')!r}" for d in self.dialogs]
        return found


class Browser:
    """One page of a headless Chromium, driven by DevTools protocol commands."""

    def __init__(self, process: subprocess.Popen[bytes], to_browser: int, from_browser: int):
        self._process = process
        self._out = to_browser
        self._in = from_browser
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self.session = ""

    def _send(self, method: str, params: dict[str, Any] | None, session: str | None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        browser_level: bool = False,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send a command (to the page unless ``browser_level``) and return its result."""
        wanted = self._send(method, params, None if browser_level else self.session)
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self._events.append(message)

    def wait_for(self, event: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the next page event named ``event`` (events already received count)."""
        deadline = time.monotonic() + timeout
        for i, message in enumerate(self._events):
            if message["method"] == event:
                return self._events.pop(i)
        while True:
            message = self._receive(deadline)
            if message.get("method") == event:
                return message
            if "method" in message:
                self._events.append(message)

    def load(self, url: str) -> PageLoad:
        """Navigate to ``url``, wait for its load event, and report what the page logged."""
        for domain in ("Page", "Runtime", "Log", "DOM", "CSS"):
            self.call(f"{domain}.enable")
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")
        self.evaluate("new Promise(function (r) { setTimeout(r, 100); })")  # let scripts settle
        load = PageLoad()
        for message in self._events:
            params = message.get("params", {})
            method = message["method"]
            if method == "Runtime.consoleAPICalled":
                load.console.append(params)
            elif method == "Runtime.exceptionThrown":
                load.exceptions.append(params)
            elif method == "Log.entryAdded":
                load.log.append(params)
            elif method == "Page.javascriptDialogOpening":
                load.dialogs.append(params)
        self._events.clear()
        return load

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, width: int = 1280) -> bytes:
        """A PNG of the whole page, ``width`` CSS pixels wide."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        shot = self.call("Page.captureScreenshot", {"format": "png"}, timeout=60.0)
        return base64.b64decode(shot["data"])

    def fonts_of(self, selector: str) -> list[dict[str, Any]]:
        """The platform fonts that render the text of the first element matching ``selector``."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        if not node:
            raise LookupError(f"no element matches {selector!r}")
        fonts: list[dict[str, Any]] = self.call("CSS.getPlatformFontsForNode", {"nodeId": node})[
            "fonts"
        ]
        return fonts


_TRAMPOLINE = """
import os, sys
read, write = int(sys.argv[1]), int(sys.argv[2])
os.dup2(read, 3)
os.dup2(write, 4)
os.close(read)
os.close(write)
os.execv(sys.argv[3], sys.argv[3:])
"""


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The pipe's ends moved to 10 or above, so that none of them is fd 3 or 4 already."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved[0], moved[1]


@contextmanager
def open_browser(executable: str, *, width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """A headless Chromium with one blank page, closed on exit."""
    with tempfile.TemporaryDirectory(prefix="raftkit-chromium-") as profile:
        to_read, to_browser = _high(os.pipe())  # we write, Chromium reads on fd 3
        from_browser, to_write = _high(os.pipe())  # Chromium writes on fd 4, we read

        # A tiny Python trampoline makes the pipe ends fds 3 and 4, then becomes Chromium
        # (a shell cannot: dash only redirects one-digit fds; preexec_fn is not thread-safe).
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TRAMPOLINE,
                str(to_read),
                str(to_write),
                executable,
                *_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("RAFTKIT_BROWSER_DEBUG") else subprocess.DEVNULL,
            pass_fds=(to_read, to_write),
        )
        os.close(to_read)
        os.close(to_write)
        browser = Browser(process, to_browser, from_browser)
        try:
            target = browser.call(
                "Target.createTarget", {"url": "about:blank"}, browser_level=True
            )["targetId"]
            browser.session = browser.call(
                "Target.attachToTarget", {"targetId": target, "flatten": True}, browser_level=True
            )["sessionId"]
            yield browser
        finally:
            with suppress(OSError, RuntimeError, TimeoutError):
                browser.call("Browser.close", browser_level=True, timeout=5.0)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            os.close(to_browser)
            os.close(from_browser)


def fonts_covering(char: str) -> set[str]:
    """Font families on this machine (fontconfig) with a glyph for ``char``; empty if unknown."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return set()
    out = subprocess.run(
        [fc_list, f":charset={ord(char):x}", "family"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {name.strip() for line in out.splitlines() for name in line.split(",") if name.strip()}

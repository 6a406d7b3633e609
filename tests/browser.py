"""Headless Chromium, driven over the DevTools protocol on a pipe, with the stdlib only.

`--remote-debugging-pipe` makes Chromium read commands on fd 3 and write replies
and events on fd 4, each message one JSON text ended by a NUL byte
(chromedevtools.github.io/devtools-protocol). Every event is kept, so that a test
can ask afterwards what the console said and which requests the page made.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

# Debian's package is `chromium`; other systems name the same browser otherwise.
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe")
# A guard against a browser that hangs, not a speed requirement.
GUARD_SECONDS = 120.0


def find_chromium() -> str | None:
    return next((found for name in NAMES if (found := shutil.which(name))), None)


class BrowserError(Exception):
    pass


class Chromium:
    """One browser process and one page in it."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser, self._writer = _pipe_pair()  # the browser reads commands on fd 3
        self._reader, from_browser = _pipe_pair()  # and writes to fd 4
        self.stderr_path = profile.parent / f"{profile.name}.stderr"
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                pass_fds=(3, 4, to_browser, from_browser),
                preexec_fn=lambda: (os.dup2(to_browser, 3), os.dup2(from_browser, 4)),
            )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""

    def open_page(self) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        reply = self._until(lambda m: m.get("id") == self._next_id)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                self.events.remove(event)
                return event
        return self._until(lambda m: m.get("method") == method)

    def load(self, url: str, width: int, height: int, mobile: bool) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluate: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip,
                         captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def complaints(self) -> list[str]:
        """What the console said at warning level or above, and uncaught exceptions."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                    "error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry'].get('text')}")
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        finally:
            try:
                self.process.wait(timeout=GUARD_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            os.close(self._writer)
            os.close(self._reader)

    def _until(self, wanted: Any) -> dict[str, Any]:
        deadline = time.monotonic() + GUARD_SECONDS
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
                self.events.append(message)
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._reader], [], [], max(left, 0))
            chunk = os.read(self._reader, 1 << 20) if ready else b""
            if not chunk:
                raise BrowserError("the browser stopped answering; its output is in "
                                   f"{self.stderr_path}")
            self._buffer += chunk


def _pipe_pair() -> tuple[int, int]:
    """A pipe whose ends are not 3 or 4, which the browser's side is moved onto."""
    held = []
    while True:
        read, write = os.pipe()
        if read > 4 and write > 4:
            for fd in held:
                os.close(fd)
            return read, write
        held += [read, write]

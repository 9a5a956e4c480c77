"""A small Chrome DevTools Protocol client for headless Chromium over ``--remote-debugging-pipe``.

The pipe (fd 3 in, fd 4 out, messages ended by NUL) needs no port and no websocket library.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)
TIMEOUT_SECONDS = 30.0


class CDPError(RuntimeError):
    """Chromium answered a command with an error, or did not answer in time."""


class Browser:
    """One Chromium process; :meth:`new_page` opens a tab to drive."""

    def __init__(self, executable: str = CHROMIUM) -> None:
        if not Path(executable).exists():
            raise CDPError(
                f"{executable} is missing: run `make chromium` (apt-get install chromium)"
            )
        self._profile = tempfile.mkdtemp(prefix="otelprof-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # bash puts our pipe ends at fds 3 and 4, where --remote-debugging-pipe wants them
        # (dash cannot: it only takes one-digit fds in redirections).
        script = f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write}'
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", script, executable, *FLAGS, f"--user-data-dir={self._profile}"],
            pass_fds=(to_browser_read, from_browser_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition()
        self._responses: Dict[int, Dict[str, Any]] = {}
        self.events: List[Dict[str, Any]] = []
        self._closed = False
        self._stderr_lines: List[str] = []
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()
        threading.Thread(target=self._drain_stderr, name="cdp-stderr", daemon=True).start()

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr_lines.append(line.decode("utf-8", "replace"))

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._arrived:
                    if "id" in message:
                        self._responses[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._arrived.notify_all()
        with self._arrived:
            self._closed = True
            self._arrived.notify_all()

    def send(self, method: str, params: Optional[Dict[str, Any]] = None, session: str = "") -> Any:
        with self._lock:
            self._next_id += 1
            message_id = self._next_id
        message: Dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode("utf-8") + b"\0")
        except BrokenPipeError:
            stderr = "".join(self._stderr_lines[-20:])
            raise CDPError(f"chromium has exited ({self.process.poll()}): {stderr}") from None
        deadline = time.monotonic() + TIMEOUT_SECONDS
        with self._arrived:
            while message_id not in self._responses:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    stderr = "".join(self._stderr_lines[-20:])
                    raise CDPError(f"no answer to {method} (browser stderr: {stderr})")
                self._arrived.wait(left)
            response = self._responses.pop(message_id)
        if "error" in response:
            raise CDPError(f"{method}: {response['error']}")
        return response.get("result", {})

    def wait_event(self, method: str, session: str = "") -> Dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        with self._arrived:
            while True:
                for event in self.events:
                    if event["method"] == method and event.get("sessionId", "") == session:
                        self.events.remove(event)
                        return event
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise CDPError(f"no {method} event")
                self._arrived.wait(left)

    def new_page(self, width: int = 1200, height: int = 800) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    def close(self) -> None:
        with contextlib.suppress(CDPError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # The browser's exit closes its end of the pipe, which ends the reader: then close ours.
        self._reader.join(10)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """One tab: navigate, evaluate JavaScript, send real mouse and key input, take screenshots."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, params: Optional[Dict[str, Any]] = None) -> Any:
        return self.browser.send(method, params, self.session)

    def open(self, path: Path) -> None:
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        self.browser.wait_event("Page.loadEventFired", self.session)

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str = "") -> Any:
        """Poll until ``expression`` is truthy (deadline: TIMEOUT_SECONDS); return its value."""
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for {what or expression}")
            time.sleep(0.05)  # polling interval of a deadline-bounded wait, not a synchronisation

    def wait_until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while not check():
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def mouse(self, kind: str, x: float, y: float) -> None:
        params: Dict[str, Any] = {"type": kind, "x": x, "y": y}
        if kind != "mouseMoved":
            params.update(button="left", clickCount=1)
        self.call("Input.dispatchMouseEvent", params)

    def click(self, x: float, y: float) -> None:
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y)
        self.mouse("mouseReleased", x, y)

    def type_text(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", {"text": text})

    def screenshot(self, clip: Optional[Dict[str, float]] = None) -> bytes:
        params: Dict[str, Any] = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", params)["data"])

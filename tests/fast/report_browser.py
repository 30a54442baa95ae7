"""Open a page in headless Chromium over the DevTools protocol (``--remote-debugging-pipe``: JSON messages
separated by NUL on file descriptors 3 and 4, no websocket library needed) and report what a person's browser
would: console errors, uncaught exceptions, failed loads, and every image's natural width."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int) -> None:
        self._write, self._read = write_fd, read_fd
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        reply = self.wait(lambda m: m.get("id") == self._next_id, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait(self, predicate: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if predicate(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the browser")
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                chunk = os.read(self._read, 1 << 16)
                if not chunk:
                    raise RuntimeError("the browser closed its pipe")
                self._buffer += chunk


def _high(fd: int) -> int:
    """A duplicate of ``fd`` numbered 10 or above (so that the child can move it to 3 or 4 safely)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


def inspect_page(browser: str, page: Path, timeout: float = 60.0, width: int = 1400) -> dict[str, Any]:
    """Load ``page`` in a ``width``-pixel wide window; return ``{"images": [{"file", "complete", "naturalWidth"}],
    "errors": [...], "sections": [ids], "viewport": width, "page_width": the document's scroll width,
    "overflowing": [what is cut off: a table or cell wider than its box, or anything past the window's right]}``."""
    to_child_r, to_child_w = (_high(fd) for fd in os.pipe())
    from_child_r, from_child_w = (_high(fd) for fd in os.pipe())

    def move_fds() -> None:
        os.dup2(to_child_r, 3)
        os.dup2(from_child_w, 4)

    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=move_fds, pass_fds=(3, 4), close_fds=True)
        os.close(to_child_r)
        os.close(from_child_w)
        pipe = _Pipe(to_child_w, from_child_r)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                               "mobile": False}, session=session)
            pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
            pipe.wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session, timeout)
            script = ("JSON.stringify({images: Array.from(document.images).map(i => ({file: i.dataset.file, "
                      "complete: i.complete, naturalWidth: i.naturalWidth})), sections: Array.from("
                      "document.querySelectorAll('section')).map(s => s.id), viewport: window.innerWidth, "
                      "page_width: document.documentElement.scrollWidth, overflowing: Array.from("
                      "document.querySelectorAll('table, td, th, p, li, img, code')).filter(e => "
                      "e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > window.innerWidth + 1)"
                      ".map(e => e.tagName + ': ' + e.textContent.slice(0, 80))})")
            value = pipe.send("Runtime.evaluate", {"expression": script, "returnByValue": True},
                              session=session)["result"]["value"]
            result = json.loads(value)
            result["errors"] = _errors(pipe.events)
            with contextlib.suppress(RuntimeError, TimeoutError):
                pipe.send("Browser.close", timeout=10)
            return result
        finally:
            os.close(to_child_w)
            os.close(from_child_r)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return out

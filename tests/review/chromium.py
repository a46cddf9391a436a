"""The real headless Chromium (Debian's ``chromium``, installed by ``./scripts/dev tools``)
driven over the DevTools protocol on a 127.0.0.1 port, with ``websocket-client``.

The flags are those of ``tools_chromium`` in scripts/tools.sh (network-quiet, throwaway
profile). Tests that need it fail, never skip, when the browser is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
         "--no-default-browser-check", "--hide-scrollbars")


def chromium_path() -> str:
    path = shutil.which("chromium") or CHROMIUM
    assert Path(path).exists(), "chromium is missing: run ./scripts/dev tools"
    return path


def _launch(args: tuple[str, ...], **popen: Any) -> tuple[subprocess.Popen[Any], str]:
    """Start Chromium on a throwaway profile; returns the process and the profile.

    Chromium's own temporary files (its ``org.chromium.Chromium.*`` singleton directory)
    go inside the profile too, through TMPDIR: removed with it, never left in /tmp.
    """
    profile = tempfile.mkdtemp(prefix="magcfg-chromium-")
    temp = Path(profile) / "tmp"
    temp.mkdir()
    process = subprocess.Popen([chromium_path(), *FLAGS, f"--user-data-dir={profile}", *args],
                               env={**os.environ, "TMPDIR": str(temp)},
                               start_new_session=True, **popen)
    return process, profile


def run_chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run (``--dump-dom URL``, ``--screenshot=PNG URL``...)."""
    process, profile = _launch(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        _stop(process)
        _remove_profile(profile)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _stop(process: subprocess.Popen[Any]) -> None:
    """Stop the browser and every helper it started (its own process group): the network
    service and the zygote can outlive the browser process, still writing the profile."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    # What is left of the group (the browser too, if SIGTERM did not end it in time).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=20)


def _remove_profile(profile: str) -> None:
    """Remove the throwaway profile; a helper that was still dying may have written one
    more file into it while the tree was removed, so a failed removal is tried again."""
    deadline = time.monotonic() + 20
    while True:
        try:
            shutil.rmtree(profile)
            return
        except OSError:  # a file added, or one a helper removed first
            if not os.path.lexists(profile):
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Browser:
    """One Chromium process and a DevTools session on its first page."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        self.process, self._profile = _launch(
            ("--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            targets = json.loads(r.read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.send("Page.enable")
        self.send("Network.enable")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call ``method``; events that arrive meanwhile are kept in ``events``."""
        self._next += 1
        ident = self._next
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_event(self, method: str) -> dict[str, Any]:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            message = json.loads(self.ws.recv())
            if message.get("method") == method:
                return message
            self.events.append(message)

    def open(self, url: str) -> float:
        """Load ``url`` and wait for its load event; returns the seconds it took."""
        self.events.clear()
        start = time.perf_counter()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")
        return time.perf_counter() - start

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` as a person would (input events)."""
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.eval(f"document.querySelector({json.dumps(selector)}).select()")
        if text:
            self.send("Input.insertText", text=text)
        else:
            self.send("Input.dispatchKeyEvent", type="keyDown", key="Backspace",
                      code="Backspace", windowsVirtualKeyCode=8)
            self.send("Input.dispatchKeyEvent", type="keyUp", key="Backspace",
                      code="Backspace", windowsVirtualKeyCode=8)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.eval(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                        ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                      clickCount=1)

    def requests(self) -> list[str]:
        """URLs the page asked the network for since it was opened."""
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        _stop(self.process)
        _remove_profile(self._profile)

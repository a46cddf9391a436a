"""A small Language Server Protocol client over stdio (JSON-RPC with Content-Length
framing), enough to drive a real language server from a test."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Message = dict[str, Any]


class LspClient:
    def __init__(self, command: list[str], cwd: Path,
                 settings: Callable[[Message], Any] | None = None) -> None:
        self.proc = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._messages: queue.Queue[Message | None] = queue.Queue()
        self._next_id = 0
        self._settings = settings or (lambda _params: None)
        self.notifications: list[Message] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    self._messages.put(None)
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            assert length is not None
            self._messages.put(json.loads(stream.read(length)))

    def send(self, message: Message) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = 60) -> Any:
        self._next_id += 1
        wanted = self._next_id
        self.send({"id": wanted, "method": method, "params": params})
        found = self._until(lambda m: m.get("id") == wanted and "method" not in m, timeout)
        assert "error" not in found, found
        return found.get("result")

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 60) -> Message:
        for seen in self.notifications:
            if predicate(seen):
                return seen
        return self._until(lambda m: "method" in m and "id" not in m and predicate(m), timeout)

    def _until(self, predicate: Callable[[Message], bool], timeout: float) -> Message:
        while True:
            message = self._messages.get(timeout=timeout)
            if message is None:
                raise EOFError("the language server exited")
            if "method" in message and "id" in message:  # a request from the server
                result = (self._settings(message["params"])
                          if message["method"] == "workspace/configuration" else None)
                self.send({"id": message["id"], "result": result})
                continue
            if predicate(message):
                return message
            if "method" in message:
                self.notifications.append(message)

    def close(self) -> None:
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)  # the server's output has ended with it

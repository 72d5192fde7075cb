"""A server process's stderr (`serve`, `scheduler`: JSON lines), read as it comes: a pipe
nobody drains fills up and stops the process at its next log line."""

from __future__ import annotations

import json
import threading
from typing import IO, Any


class ServerLog:
    """Every line the process writes on `stream`, and its start-up event once logged."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.startup: dict[str, Any] | None = None
        self._started = threading.Event()
        self._ended = threading.Event()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self.lines.append(line)
                if self.startup is None and line.startswith("{"):
                    entry = json.loads(line)
                    if entry.get("event") == "startup":
                        self.startup = entry
                        self._started.set()
        finally:
            self._ended.set()

    def wait_started(self, timeout: float = 60.0) -> dict[str, Any]:
        """The start-up event; an AssertionError with what it wrote if it ends, or says
        nothing of a start within `timeout`."""
        for _ in range(int(timeout * 10)):
            if self._started.wait(0.1) or self._ended.is_set():
                break
        if self.startup is None:
            raise AssertionError("the process logged no start-up:\n" + "".join(self.lines))
        return self.startup

    def entries(self, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Its JSON lines, once it has closed its stream (it exited)."""
        if not self._ended.wait(timeout):
            raise AssertionError("the process's log did not end")
        return [json.loads(line) for line in self.lines if line.startswith("{")]

"""Counting Redis round trips in this process: a client sends one packed request and waits
for its answer, so one send is one round trip (a pipeline's batch is one send too)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.connection import AbstractConnection

_NAME = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")


class RoundTrips:
    """The round trips seen, each as the names of the commands it carried."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.sent)

    @property
    def work(self) -> list[list[str]]:
        """The round trips without the client's health-check PINGs (sent before a command on
        a connection idle for a while, whatever the command)."""
        return [sent for sent in self.sent if sent != ["PING"]]

    def add(self, command: Any) -> None:
        chunks = [command] if isinstance(command, (bytes, str)) else list(command)
        packed = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        with self._lock:
            self.sent.append([n.decode().upper() for n in _NAME.findall(packed)])


@contextmanager
def round_trips() -> Iterator[RoundTrips]:
    """Count every Redis client's sends in this process while the block runs (health-check
    PINGs and connection handshakes included: they are round trips too)."""
    seen = RoundTrips()
    original = AbstractConnection.send_packed_command

    def send(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        seen.add(command)
        # redis-py leaves send_packed_command unannotated
        original(self, command, check_health)  # type: ignore[no-untyped-call]

    AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]

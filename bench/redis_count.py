"""Counting what the bot asks of Redis: round trips through a counting connection (one per
command sent; the store sends no pipelines), and commands through Redis's own INFO
commandstats (which also counts the commands a script runs)."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import redis
from redis.connection import Connection


class CountingConnection(Connection):
    """A connection that counts the requests it sends (all connections of the process)."""

    sent: ClassVar[int] = 0
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        with CountingConnection._lock:
            CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def commands(client: redis.Redis) -> int:
    """Commands the server has run, INFO itself left out."""
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")

"""Real redis-sentinel processes for the failover tests: a master, a replica and one
sentinel (quorum 1), on free ports, with a short down-after so a failover takes seconds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from sandbox.ports import free_port
from sandbox.redis_server import RedisServer

MASTER = "mymaster"


class Sentinel:
    def __init__(self, master_port: int, *, down_after_ms: int = 500) -> None:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            pytest.skip("redis-sentinel is not installed (Debian: redis-sentinel)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rollout-sentinel-"))
        conf = self.dir / "sentinel.conf"  # sentinel rewrites it: a file of its own
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndaemonize no\ndir {self.dir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
            f"sentinel parallel-syncs {MASTER} 1\n")
        self.proc = subprocess.Popen([binary, str(conf), "--loglevel", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)
        wait_for(self._answers, "the sentinel to answer")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            return False

    def _sentinel(self, *args: str) -> Any:
        # redis-py leaves execute_command unannotated (the answer's shape is the command's)
        return self.client.execute_command("SENTINEL", *args)  # type: ignore[no-untyped-call]

    def master_port(self) -> int:
        host_port = self._sentinel("GET-MASTER-ADDR-BY-NAME", MASTER)
        return int(host_port[1])

    def knows_replica(self, port: int) -> bool:
        replicas = self._sentinel("REPLICAS", MASTER)
        found = [dict(zip(r[::2], r[1::2], strict=True)) if isinstance(r, list) else r
                 for r in replicas]
        return any(int(r["port"]) == port and "s_down" not in r["flags"] for r in found)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.client.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def in_sync(replica: RedisServer) -> bool:
    info = redis.Redis(port=replica.port, decode_responses=True).info("replication")
    return info.get("master_link_status") == "up"


def pause(server: RedisServer, *, resume: bool = False) -> None:
    """SIGSTOP (or SIGCONT) a server: it holds its connections but answers nothing."""
    assert server._proc is not None
    os.kill(server._proc.pid, signal.SIGCONT if resume else signal.SIGSTOP)


def wait_for(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(0.05)

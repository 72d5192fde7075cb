"""The embedded servers' ports: picked where no outgoing connection can take them, and a
Redis whose picked port was taken anyway comes up on another. A CI run lost a test to a
redis-server that exited at start with an empty error: its port, picked by `bind(0)` from
the ephemeral range, was taken before it bound it, and it said so on the stdout we dropped."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from sandbox.ports import DEFAULT_EPHEMERAL, LOWEST, ephemeral_range, free_port
from sandbox.redis_server import RedisServer, RedisServerError


@contextmanager
def listening(port: int) -> Iterator[socket.socket]:
    """Someone else's listener on `port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock


def test_a_free_port_lies_below_the_range_outgoing_connections_use() -> None:
    ceiling = ephemeral_range()[0]
    for _ in range(20):
        port = free_port()
        assert LOWEST <= port < ceiling
        with listening(port):  # free: it can be listened on
            pass


def test_the_test_runners_seed_does_not_give_every_worker_the_same_ports() -> None:
    """pytest-randomly seeds `random` alike in every worker: ports picked from it would
    collide between workers, test after test."""
    picks = set()
    for _ in range(5):
        random.seed(1234)
        picks.add(free_port())
    assert len(picks) > 1


def test_the_ephemeral_range_is_read_from_the_kernel_or_defaulted(tmp_path: Path) -> None:
    source = tmp_path / "ip_local_port_range"
    source.write_text("40000\t50000\n")
    assert ephemeral_range(source) == (40000, 50000)
    source.write_text("not numbers\n")
    assert ephemeral_range(source) == DEFAULT_EPHEMERAL
    assert ephemeral_range(tmp_path / "missing") == DEFAULT_EPHEMERAL


def test_a_redis_whose_picked_port_was_taken_comes_up_on_another() -> None:
    server = RedisServer()
    taken = server.port
    with listening(taken):
        try:
            server.start()
            assert server.port != taken
            assert redis.Redis(port=server.port).ping()
        finally:
            server.close()


def test_a_redis_on_a_port_it_was_given_says_why_it_could_not_start(tmp_path: Path) -> None:
    """A port the caller chose is not changed behind its back: the start fails, and the
    error carries the server's own account (it logs to stdout, which is not kept)."""
    port = free_port()
    server = RedisServer(port=port, data_dir=tmp_path)
    with listening(port), pytest.raises(RedisServerError) as failure:
        server.start()
    assert str(port) in str(failure.value)  # the server's log line naming the port
    assert server.port == port and not server.running

"""The freeze store against a real redis-server: one freeze at a time, racing approvers get one
answer each, keys under the install's prefix, and an unreachable Redis changes nothing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import redis

from rollout.adapters.freeze_store import FreezeStore
from rollout.domain.errors import Conflict, StoreUnavailable
from rollout.domain.freeze import Freeze
from sandbox.redis_server import RedisServer
from tests.integration.conftest import unique_prefix

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1,
                                socket_timeout=1)


def test_freeze_is_kept_refused_twice_and_lifted_once(redis_server: RedisServer) -> None:
    prefix = unique_prefix()
    r = _client(redis_server.url)
    store = FreezeStore(r, prefix=prefix)
    assert store.get() is None
    frozen = Freeze(by="U_ALICE", reason="incident 42", since=T0)
    assert store.put(frozen) == frozen
    assert r.exists(f"{prefix}:freeze") == 1
    assert store.get() == frozen
    with pytest.raises(Conflict, match="already frozen by U_ALICE"):
        store.put(Freeze(by="U_BOB", since=T0))
    assert store.get() == frozen
    assert FreezeStore(r, prefix=unique_prefix()).get() is None  # another install's prefix
    assert store.lift() == frozen
    assert store.get() is None
    with pytest.raises(Conflict, match="not frozen"):
        store.lift()


def test_racing_freezes_record_exactly_one(redis_server: RedisServer) -> None:
    store = FreezeStore(_client(redis_server.url), prefix=unique_prefix())
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            store.put(Freeze(by=f"U_{i}", since=T0))
            outcomes.append("frozen")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["frozen"]


def test_an_unreachable_redis_is_a_temporary_failure() -> None:
    with RedisServer() as server:
        url = server.url
    store = FreezeStore(_client(url), prefix=unique_prefix())
    with pytest.raises(StoreUnavailable):
        store.get()
    with pytest.raises(StoreUnavailable):
        store.put(Freeze(by="U_ALICE", since=T0))


def test_a_freeze_is_lifted_on_a_redis_without_getdel() -> None:
    """GETDEL came in Redis 6.2: on an older (or a managed tier that renames it), freezing
    worked and nothing could lift it."""
    with RedisServer(config='rename-command GETDEL ""') as server:
        r = _client(server.url)
        with pytest.raises(redis.ResponseError):
            r.getdel("anything")
        store = FreezeStore(r, prefix=unique_prefix())
        frozen = store.put(Freeze(by="U_ALICE", since=T0))
        assert store.lift() == frozen and store.get() is None


def test_an_unreadable_record_is_a_freeze_that_unfreeze_removes(
        redis_server: RedisServer) -> None:
    prefix = unique_prefix()
    r = _client(redis_server.url)
    store = FreezeStore(r, prefix=prefix)
    r.set(f"{prefix}:freeze", '{"by": 42}')
    unreadable = Freeze(by="a record the bot cannot read",
                        reason=f"{prefix}:freeze holds no freeze this version understands; "
                               "unfreeze removes it")
    assert store.get() == unreadable
    with pytest.raises(Conflict, match="already frozen by a record the bot cannot read"):
        store.put(Freeze(by="U_BOB", since=T0))
    assert store.lift() == unreadable and r.exists(f"{prefix}:freeze") == 0

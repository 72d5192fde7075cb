"""A lost lock is named for what happened: a rollback took it, or it lapsed under load.

Real redis-server; the lapse is made by removing the lock key, as its TTL would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from rollout.adapters.freeze_store import FreezeStore
from rollout.adapters.store import RedisStore
from rollout.domain.errors import LockLapsed, Superseded, TemporaryFailure
from rollout.domain.freeze import Freeze
from sandbox.redis_server import RedisServer
from tests.integration.conftest import unique_prefix


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_server.url, prefix=unique_prefix(), lock_ttl_seconds=30)
    try:
        yield s
    finally:
        s.client.close()


def test_a_lock_that_lapsed_is_not_reported_as_a_rollback(store: RedisStore) -> None:
    lease = store.acquire("httproute/default/routes-to-llm")
    store.client.delete(store.key("lock", lease.key))  # the TTL ran out under load
    with pytest.raises(LockLapsed, match="lapsed") as raised:
        store.confirm(lease)
    assert isinstance(raised.value, TemporaryFailure)
    assert "rollback" not in str(raised.value)
    other = store.acquire(lease.key)  # someone else's ordinary command took it since
    with pytest.raises(LockLapsed):
        store.confirm(lease)
    store.release(other)


def test_a_lock_taken_by_a_rollback_is_reported_as_superseded(store: RedisStore) -> None:
    lease = store.acquire("httproute/default/routes-to-llm")
    rollback = store.acquire(lease.key, preempt=True)
    with pytest.raises(Superseded, match="rollback took over"):
        store.confirm(lease)
    store.release(rollback)
    assert not isinstance(Superseded("x"), LockLapsed)


def test_a_confirmed_lock_answers_the_freeze_as_it_stands(store: RedisStore) -> None:
    """The confirm just before a write reads the freeze in its round trip: a step-up decided
    before a freeze was recorded is held by it."""
    freezes = FreezeStore(store.client, prefix=store.key())
    lease = store.acquire("httproute/default/routes-to-llm")
    assert store.confirm(lease) is None
    frozen = freezes.put(Freeze(by="U_CAROL", reason="incident 42",
                                since=datetime(2026, 11, 26, tzinfo=UTC)))
    assert store.confirm(lease) == frozen
    freezes.lift()
    assert store.confirm(lease) is None
    store.release(lease)

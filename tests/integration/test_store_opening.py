"""A command's first and last round trips against a real redis-server: `open` (the request's
memo, the lock, the state under it, the in-flight mark, the freeze) and `close` (the save,
the memo, the lock given back whatever the save's answer)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial

import pytest

from rollout.adapters.freeze_store import FreezeStore
from rollout.adapters.leadership import LeaderLease
from rollout.adapters.store import RedisStore
from rollout.domain.errors import Busy, LockLapsed, Superseded
from rollout.domain.freeze import Freeze
from rollout.domain.models import Rollout
from rollout.ports import Memo, Opening, Saving
from sandbox.redis_server import RedisServer
from tests.integration.conftest import unique_prefix
from tests.support.redis_trips import round_trips
from tests.unit.builders import TARGET, started

KEY = TARGET.object_key
LATEST = ("default", "llm-pool-version-2")


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_server.url, prefix=unique_prefix(), lock_ttl_seconds=30,
                            lock_wait_seconds=0.2)
    try:
        yield s
    finally:
        s.client.close()


def _created(store: RedisStore) -> Rollout:
    lease = store.acquire(KEY)
    created = store.create(started(), lease=lease, events=())
    store.release(lease)
    return created


def _lock_holder(store: RedisStore) -> str | None:
    value = store.client.get(store.key("lock", KEY))
    return str(value) if value is not None else None


def test_open_by_pool_name_or_id_locks_the_target_and_loads_the_state(
    store: RedisStore,
) -> None:
    created = _created(store)
    for by_name in (partial(store.open, latest=LATEST),
                    partial(store.open, rollout_id=created.id)):
        opening = by_name()
        assert opening.lease is not None and opening.lease.key == KEY
        assert opening.rollout == created and not opening.in_flight
        assert opening.freeze is None and opening.answer is None
        assert _lock_holder(store) == str(opening.lease.token)
        store.close(opening.lease)
        assert _lock_holder(store) is None


def test_open_reads_the_freeze_and_the_in_flight_mark(store: RedisStore) -> None:
    created = _created(store)
    freeze = Freeze(by="U0ALICE", reason="incident", since=datetime(2026, 11, 26, tzinfo=UTC))
    prefix = store.key("x").removesuffix(":x")
    FreezeStore(store.client, prefix=prefix).put(freeze)
    store.mark_in_flight(created.id)
    opening = store.open(rollout_id=created.id)
    assert opening.freeze == freeze and opening.in_flight
    assert opening.lease is not None
    store.close(opening.lease)


def test_a_name_nothing_is_recorded_under_takes_no_lock(store: RedisStore) -> None:
    assert store.open(latest=("default", "nothing")) == Opening(lease=None)
    assert store.open(rollout_id="nothing") == Opening(lease=None)
    assert store.client.keys(store.key("lock", "*")) == []


def test_a_held_lock_is_waited_for_then_busy_and_a_rollback_takes_it(store: RedisStore) -> None:
    created = _created(store)
    held = store.open(rollout_id=created.id)
    assert held.lease is not None
    with pytest.raises(Busy):
        store.open(rollout_id=created.id)
    rollback = store.open(rollout_id=created.id, preempt=True)
    assert rollback.lease is not None and rollback.lease.token > held.lease.token
    with pytest.raises(Superseded, match="rollback took over"):
        store.close(held.lease, saving=Saving(created, created.version))
    assert _lock_holder(store) == str(rollback.lease.token)  # the rollback's lock stays
    store.close(rollback.lease)


def test_a_saved_answer_is_found_without_taking_the_lock(store: RedisStore) -> None:
    created = _created(store)
    opening = store.open(rollout_id=created.id, memo="request:click-1")
    assert opening.lease is not None
    store.close(opening.lease, saving=Saving(created, created.version),
                memo=Memo("request:click-1", "Applied step 1", 60))
    assert store.get(created.id) == created.model_copy(update={"version": 2})
    assert store.client.ttl(store.key("idem", "request:click-1")) > 0
    held = store.open(rollout_id=created.id)  # someone else's command is running
    assert held.lease is not None
    again = store.open(rollout_id=created.id, memo="request:click-1")
    assert again == Opening(lease=None, answer="Applied step 1")
    store.close(held.lease)


def test_a_save_refused_gives_the_lock_back_and_keeps_no_answer(store: RedisStore) -> None:
    created = _created(store)
    opening = store.open(rollout_id=created.id, memo="request:click-2")
    assert opening.lease is not None
    with pytest.raises(Superseded, match="changed while this operation ran"):
        store.close(opening.lease, saving=Saving(created, created.version + 5),
                    memo=Memo("request:click-2", "Applied", 60))
    assert _lock_holder(store) is None
    assert store.client.exists(store.key("idem", "request:click-2")) == 0
    assert store.get(created.id) == created
    store.client.delete(store.key("rollout", created.id))  # nothing else can be read wrong
    assert store.open(rollout_id=created.id, memo="request:click-2").lease is None


def test_a_save_after_the_lock_lapsed_is_refused_and_leaves_the_next_holder_alone(
    store: RedisStore,
) -> None:
    created = _created(store)
    opening = store.open(rollout_id=created.id)
    assert opening.lease is not None
    store.client.delete(store.key("lock", KEY))  # the TTL ran out under load
    other = store.open(rollout_id=created.id)
    assert other.lease is not None
    with pytest.raises(LockLapsed):
        store.close(opening.lease, saving=Saving(created, created.version))
    assert _lock_holder(store) == str(other.lease.token) and store.get(created.id) == created
    store.close(other.lease)


def test_a_state_written_before_it_named_its_lock_is_opened_in_two_round_trips(
    store: RedisStore,
) -> None:
    created = _created(store)
    warm = store.open(latest=LATEST)  # the script known to the server from here on
    assert warm.lease is not None
    store.close(warm.lease)
    store.client.hdel(store.key("rollout", created.id), "lock")
    with round_trips() as trips:
        opening = store.open(latest=LATEST)
    assert opening.lease is not None and opening.lease.key == KEY
    assert opening.rollout == created
    assert trips.work == [["EVALSHA"], ["HMGET"], ["EVALSHA"]]
    store.close(opening.lease, saving=Saving(created, created.version))
    assert store.client.hget(store.key("rollout", created.id), "lock") == KEY


def _lose_every_write(store: RedisStore) -> None:
    """What a restart without persistence, or a failover that lost the latest writes, leaves
    of this store's keys (a prefix of its own: other tests share the server)."""
    for key in store.client.scan_iter(store.key("*")):
        store.client.delete(key)


def test_a_redis_that_lost_its_writes_never_grants_a_token_held_already(
    store: RedisStore,
) -> None:
    """A holds the target's lock when Redis loses its writes, counter included; a rollback
    then opens the target. Its token is above A's, so A's lock is no longer A's (a counter
    begun again would have handed the rollback A's own number: A's confirm and save would
    pass, and its write would pass the route's fence as the rollback's)."""
    held = store.open(key=KEY)
    assert held.lease is not None
    _lose_every_write(store)
    rollback = store.open(key=KEY, preempt=True)
    assert rollback.lease is not None and rollback.lease.token > held.lease.token
    with pytest.raises(Superseded):
        store.confirm(held.lease)
    assert _lock_holder(store) == str(rollback.lease.token)


def test_a_leader_lease_regained_after_redis_lost_it_has_a_new_token(
    store: RedisStore,
) -> None:
    """The scheduler tells a new term by its token: the same number again after a loss
    would let a replica carry on from the last term's position in the change index."""
    lease = LeaderLease(store.client, key=store.key("leader"), holder="a", ttl_seconds=30)
    assert lease.refresh()
    first = lease.token
    _lose_every_write(store)
    assert lease.refresh() and lease.token is not None and first is not None
    assert lease.token > first

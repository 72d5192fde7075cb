"""A state write whose answer never comes in time: a command's close (the save, the
request's answer, the lock given back) or a start's create (the claim, the lock kept). The
store's answer must be what Redis holds, then and after everything sent has been served:
recorded, not recorded (and never recorded later), or not known. Against a real
redis-server, behind a proxy that delays one direction (`tests/support/tcp_delay.py`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import redis

from rollout.adapters.store import RedisStore
from rollout.domain.errors import StoreUnavailable, StoreUnknown
from rollout.domain.models import AuditAction, AuditEvent, Phase
from rollout.lock_keeper import LockKeeper
from rollout.ports import Lease, Saving
from rollout.redis_connect import connect
from rollout.service import _Hold
from sandbox.redis_server import RedisServer
from tests.integration.conftest import unique_prefix
from tests.support.polling import eventually
from tests.support.tcp_delay import DelayProxy
from tests.unit.builders import ALICE, TARGET, started

TIMEOUT = 0.3  # the client's socket timeout, seconds


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[DelayProxy]:
    p = DelayProxy(redis_server.port)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def store(proxy: DelayProxy) -> Iterator[RedisStore]:
    client = redis.Redis.from_url(proxy.redis_url, decode_responses=True, socket_timeout=TIMEOUT,
                                  socket_connect_timeout=TIMEOUT)
    s = RedisStore(client, prefix=unique_prefix(), lock_ttl_seconds=30)
    try:
        yield s
    finally:
        client.close()


WRITES = ["close", "create"]


def _pending(store: RedisStore, write: str) -> tuple[Lease, Saving, Callable[[], object]]:
    """A command's lock and the save it is about to send: a pause of a recorded rollout (its
    close, which gives the lock back), or a start's claim (its create, which keeps it). The
    script is loaded first: its first call would otherwise be refused with NOSCRIPT (and
    sent again with the script), and that refusal is what would come late."""
    if write == "create":
        store.client.script_load(store._create.script)
        lease = store.acquire(TARGET.object_key)
        saving = Saving(started(), 0)
        return lease, saving, lambda: store.create(saving.rollout, lease=lease, events=())
    store.client.script_load(store._close.script)
    lease = store.acquire(TARGET.object_key)
    created = store.create(started(), lease=lease, events=())
    saving = Saving(created.model_copy(update={"phase": Phase.PAUSED}), created.version)
    return lease, saving, lambda: store.close(lease, saving=saving)


def _version(store: RedisStore, saving: Saving) -> int | None:
    held = store.get(saving.rollout.id)
    return held.version if held is not None else None


def _lock(store: RedisStore, lease: Lease) -> str | None:
    value = store.client.get(store.key("lock", lease.key))
    return str(value) if value is not None else None


@pytest.mark.parametrize("write", WRITES)
def test_a_save_whose_answer_came_too_late_is_answered_as_recorded(
    proxy: DelayProxy, store: RedisStore, write: str,
) -> None:
    """The save ran and its answer was held past the timeout: the read-back finds it, and
    leaves the lock as the save left it (a close gave it back, a create keeps it for the
    start's cluster write)."""
    lease, saving, save = _pending(store, write)
    proxy.hold_replies(TIMEOUT * 1.5)
    save()  # no error: the answer is the save's
    assert _version(store, saving) == saving.saved.version
    assert _lock(store, lease) == (str(lease.token) if write == "create" else None)


@pytest.mark.parametrize("write", WRITES)
def test_a_save_that_reaches_redis_after_the_answer_is_refused_there(
    proxy: DelayProxy, store: RedisStore, write: str,
) -> None:
    """The save is held on its way past the timeout: the read-back takes the lock back and
    finds it not recorded, so the answer says nothing changed; the late save then reaches
    Redis and is refused on the lock, so the answer stays true."""
    lease, saving, save = _pending(store, write)
    proxy.hold_requests(TIMEOUT * 2)
    with pytest.raises(StoreUnavailable, match="not recorded; nothing was changed") as refused:
        save()
    assert not isinstance(refused.value, StoreUnknown)
    eventually(lambda: proxy.late_served >= 1, message="Redis to serve the held save")
    assert _version(store, saving) == (saving.expected_version or None)  # never recorded
    assert _lock(store, lease) is None


@pytest.mark.parametrize("write", WRITES)
def test_a_save_redis_never_answers_in_time_is_not_known_never_nothing_changed(
    proxy: DelayProxy, store: RedisStore, write: str,
) -> None:
    """The answers of the save and of the read-back both come too late: the answer says it
    is not known whether the change was recorded (here it was)."""
    _lease, saving, save = _pending(store, write)
    proxy.hold_replies(TIMEOUT * 4)
    with pytest.raises(StoreUnknown) as unknown:
        save()
    assert "did not answer whether this change was recorded" in str(unknown.value)
    assert "nothing was changed" not in str(unknown.value)

    def recorded() -> bool:
        try:
            return _version(store, saving) == saving.saved.version
        except StoreUnavailable:  # answers are still held
            return False

    eventually(recorded, message="the save, served before its answer was held")


def test_a_save_to_a_redis_gone_is_not_known() -> None:
    """Redis gone under an open connection: the save may have been the last thing it ran
    (a crash after the write, before the answer, looks the same), so not known."""
    with RedisServer() as server:  # its own: this test kills it
        client = redis.Redis.from_url(server.url, decode_responses=True,
                                      socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        store = RedisStore(client, prefix=unique_prefix())
        _lease, _saving, save = _pending(store, "close")
        server.kill()
        with pytest.raises(StoreUnknown):
            save()
        client.close()


def test_a_close_whose_answer_came_too_late_is_recorded_though_a_later_write_followed(
    redis_server: RedisServer, proxy: DelayProxy, store: RedisStore,
) -> None:
    """The close ran, and before its read-back came the next command (which the close's
    release let in) saved the rollout again: the read-back finds a state that is not the
    close's, and still answers recorded, since the close left its receipt."""
    lease, saving, save = _pending(store, "close")
    direct = redis.Redis.from_url(redis_server.url, decode_responses=True)
    other = RedisStore(direct, prefix=store.key("").removesuffix(":"), lock_ttl_seconds=30)
    wrote: list[int] = []

    def next_command() -> None:  # as soon as the close has run: lock, save, release
        eventually(lambda: _version(other, saving) == saving.saved.version, step=0.001,
                   message="the close to run")
        later = other.acquire(lease.key)
        newer = saving.saved.model_copy(update={"phase": Phase.BAKING})
        other.close(later, saving=Saving(newer, saving.saved.version))
        wrote.append(saving.saved.version + 1)

    thread = threading.Thread(target=next_command)
    thread.start()
    proxy.hold_replies(TIMEOUT * 1.5)
    try:
        save()  # no error: the close was recorded
    finally:
        thread.join()
        direct.close()
    assert wrote == [saving.saved.version + 1]
    assert _version(store, saving) == saving.saved.version + 1
    assert _lock(store, lease) is None


@pytest.mark.parametrize("write", WRITES)
def test_a_save_whose_connection_was_refused_is_not_recorded(write: str) -> None:
    """Redis gone and the client's connection to it closed: the save's connection is
    refused, so the save never left this process and nothing was recorded, whatever the
    read-back (refused too) could not tell."""
    with RedisServer() as server:  # its own: this test kills it
        client = redis.Redis.from_url(server.url, decode_responses=True,
                                      socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        store = RedisStore(client, prefix=unique_prefix())
        _lease, _saving, save = _pending(store, write)
        server.kill()
        client.connection_pool.disconnect()  # as after a failed health check
        with pytest.raises(StoreUnavailable, match="refused the connection") as refused:
            save()
        assert not isinstance(refused.value, StoreUnknown)
        assert "nothing was changed" in str(refused.value)
        client.close()


@pytest.mark.parametrize("write", WRITES)
def test_a_save_whose_connection_is_cut_after_it_ran_is_recorded_once(
    proxy: DelayProxy, write: str,
) -> None:
    """The save ran, and its connection was cut before the answer: the client the bot builds
    (`rollout.redis_connect.connect`) does not send it again on a new connection (a second
    run would find the lock given back, or the version moved, and answer "not recorded"),
    and the read-back finds its receipt."""
    client = connect(proxy.redis_url)
    store = RedisStore(client, prefix=unique_prefix(), lock_ttl_seconds=30)
    try:
        lease, saving, _save = _pending(store, write)
        event = AuditEvent(at=saving.rollout.updated_at, rollout_id=saving.rollout.id,
                           target=TARGET.key, action=AuditAction.PAUSED, actor=ALICE)
        saving = replace(saving, events=(event,))
        proxy.cut_next_reply()
        if write == "create":
            store.create(saving.rollout, lease=lease, events=saving.events)
        else:
            store.close(lease, saving=saving)
        assert proxy.cut == 1
        assert _version(store, saving) == saving.saved.version
        assert [e.action for e in store.audit(saving.rollout.id)].count(AuditAction.PAUSED) == 1
        assert _lock(store, lease) == (str(lease.token) if write == "create" else None)
    finally:
        client.close()


def test_a_renewal_redis_did_not_answer_keeps_the_lock_renewed(proxy: DelayProxy) -> None:
    """One renewal's answer lost (a blip, a failover): the lock is most likely still ours,
    and the keeper tries again next period. Given up, a slow command's lock lapsed by
    itself, and its save was refused as if a rollback had taken over."""
    client = connect(proxy.redis_url)
    store = RedisStore(client, prefix=unique_prefix(), lock_ttl_seconds=30)
    keeper = LockKeeper(10.0, clock=lambda: 0.0, background=False)
    try:
        opening = store.open(key=TARGET.object_key)
        _Hold(store, opening, keeper=keeper)
        lock = store.key("lock", TARGET.object_key)
        store.client.pexpire(lock, 5_000)  # so that a renewal shows in its TTL
        proxy.cut_next_reply()
        keeper.renew_due(10.0)
        assert proxy.cut == 1 and keeper.held() == 1
        store.client.pexpire(lock, 5_000)
        keeper.renew_due(20.0)
        assert int(store.client.pttl(lock)) > 20_000
        store.client.delete(lock)  # lapsed: the lock is lost for sure, renewing ends
        keeper.renew_due(30.0)
        assert keeper.held() == 0
    finally:
        client.close()

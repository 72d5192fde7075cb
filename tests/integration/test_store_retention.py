"""ROLLOUT_RETENTION against a real Redis: a rollout nothing more is asked of (rolled back,
failed at its start, retired, or completed with its keep period over) leaves Redis after the
retention, its audit stream and its pool's marker with it; an active rollout, and every
rollout without a retention, stays. What names a gone rollout passes it by."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from rollout.domain.errors import NotFound
from rollout.domain.models import AuditAction, AuditEvent
from rollout.domain.plan import build_plan
from rollout.redis_connect import connect
from rollout.service import Ref
from sandbox.redis_server import RedisServer
from tests.integration.conftest import (
    ALICE,
    BOB,
    CAROL,
    Cli,
    World,
    make_world,
    unique_prefix,
)
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster
from tests.support.redis_trips import round_trips

CANARY = "llm-pool-version-2"
REF = Ref(canary=CANARY)
DAY = 24 * 3600
RETENTION = 30 * DAY


@pytest.fixture
def kept(cluster: RealCluster, redis_server: RedisServer) -> Iterator[World]:
    w = make_world(cluster, redis_server.url, retention_seconds=RETENTION)
    try:
        yield w
    finally:
        w.store.client.close()


def _ttls(world: World, rollout_id: str) -> tuple[float, float, float]:
    """Seconds left to the rollout's hash, its audit stream and the pool's latest marker
    (-1: kept for ever, -2: gone)."""
    store = world.store
    state, audit, pool = (int(store.client.pttl(k)) for k in (
        store.key("rollout", rollout_id), store.key("audit", rollout_id),
        store.key("pool", "default", CANARY)))
    return _seconds(state), _seconds(audit), _seconds(pool)


def _seconds(pttl: int) -> float:
    """A PTTL in seconds; its -1 (no expiry) and -2 (no key) as they are."""
    return pttl / 1000 if pttl >= 0 else float(pttl)


def _start(world: World, keep_seconds: int = DAY) -> str:
    out = world.service.start(namespace="default", canary=CANARY, actor=ALICE,
                              plan=build_plan([50, 100], interval_seconds=0),
                              keep_seconds=keep_seconds)
    assert out.ok and out.rollout is not None, out.message
    return out.rollout.id


def _near(ttl: float, seconds: float) -> bool:
    return seconds - 60 <= ttl <= seconds


def test_an_active_rollout_stays_and_a_rolled_back_one_goes_after_the_retention(
        kept: World) -> None:
    rollout_id = _start(kept)
    assert _ttls(kept, rollout_id) == (-1, -1, -1)
    assert kept.service.approve(REF, actor=BOB).ok
    assert _ttls(kept, rollout_id) == (-1, -1, -1)
    assert kept.service.rollback(REF, actor=BOB, reason="bad answers").ok
    assert all(_near(ttl, RETENTION) for ttl in _ttls(kept, rollout_id))


def test_a_completed_rollout_stays_through_its_keep_period_and_then_the_retention(
        kept: World) -> None:
    rollout_id = _start(kept, keep_seconds=2 * DAY)
    for _ in range(2):
        assert kept.service.approve(REF, actor=BOB).ok
    # a rollback is still possible for two days: the retention counts from then
    assert all(_near(ttl, 2 * DAY + RETENTION) for ttl in _ttls(kept, rollout_id))
    kept.clock.advance(3 * DAY)
    assert kept.service.retire(REF, actor=CAROL).ok
    assert all(_near(ttl, RETENTION) for ttl in _ttls(kept, rollout_id))


def test_without_a_retention_every_rollout_stays(world: World) -> None:
    rollout_id = _start(world)
    assert world.service.rollback(REF, actor=BOB).ok
    assert _ttls(world, rollout_id) == (-1, -1, -1)


def test_a_gone_rollout_is_passed_by_and_its_pool_can_start_again(kept: World) -> None:
    rollout_id = _start(kept)
    assert kept.service.rollback(REF, actor=BOB).ok
    client = kept.store.client
    for key in (kept.store.key("rollout", rollout_id), kept.store.key("audit", rollout_id),
                kept.store.key("pool", "default", CANARY)):
        client.pexpire(key, 1)  # the retention, over
    eventually(lambda: client.exists(kept.store.key("rollout", rollout_id)) == 0,
               message="Redis to let the record go")
    assert kept.service.status(REF).rollout is None
    with pytest.raises(NotFound, match="no rollout of llm-pool-version-2"):
        kept.service.history(REF)
    assert [r.id for r in kept.service.list_rollouts()] == []
    assert _start(kept) != rollout_id
    assert [r.id for r in kept.service.list_rollouts()] != []


def test_the_cli_keeps_a_rolled_back_rollout_for_rollout_retention(
        cli: Cli, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """ROLLOUT_RETENTION reaches the store every command builds."""
    monkeypatch.setenv("ROLLOUT_RETENTION", "2d")
    cli("start", CANARY, "--interval", "0s", "--as", "alice")
    code, _, err = cli("rollback", CANARY, "--as", "bob")
    assert code == 0, err
    client = connect(redis_server.url)
    try:
        prefix = os.environ["ROLLOUT_KEY_PREFIX"]
        rollout_id = str(client.get(f"{prefix}:pool:default:{CANARY}") or "")
        assert rollout_id
        left = client.pttl(f"{prefix}:rollout:{rollout_id}") / 1000
        assert 2 * DAY - 60 <= left <= 2 * DAY
    finally:
        client.close()


def test_a_line_audited_after_the_record_was_given_its_time_goes_with_it(
        kept: World) -> None:
    """A refusal audited on a finished rollout (a retire refused, say) keeps the rollout's
    stream no longer than its record: the stream alone was kept for ever."""
    rollout_id = _start(kept)
    assert kept.service.rollback(REF, actor=BOB).ok
    client = kept.store.client
    client.delete(kept.store.key("audit", rollout_id))  # as if Redis had let it go first
    assert kept.service.record_denial(actor=CAROL, action="retire", ref=REF,
                                      reason="not an approver")
    state_left, audit_left, _ = _ttls(kept, rollout_id)
    assert _near(state_left, RETENTION) and _near(audit_left, RETENTION)
    assert [e.refused for e in kept.service.history(REF)] == ["retire"]
    assert [e.refused for e in kept.store.global_audit(limit=1)] == ["retire"]


def test_a_line_on_a_rollout_redis_does_not_know_is_kept_in_both_streams(
        kept: World) -> None:
    """`release` audits on the id the route's marker names, which Redis lost: the line is
    the only record of it, in the install's stream and under that id."""
    kept.store.record(AuditEvent(at=kept.clock.now(), rollout_id="lost-1", target="t",
                                 action=AuditAction.RELEASED, actor=BOB, detail="dropped"))
    assert [e.detail for e in kept.store.audit("lost-1")] == ["dropped"]
    assert kept.store.client.pttl(kept.store.key("audit", "lost-1")) == -1
    assert [e.detail for e in kept.store.global_audit(limit=1)] == ["dropped"]


def test_records_kept_while_the_retention_was_off_go_once_it_is_set(
        cluster: RealCluster, redis_server: RedisServer) -> None:
    """A rollout finished while ROLLOUT_RETENTION was 0 is never written again: its record
    would stay for ever. The leader's pass gives it the time its next write would have (from
    when it finished), once; an active rollout, and the marker naming it, stay."""
    prefix = unique_prefix()
    off = make_world(cluster, redis_server.url, prefix=prefix)
    on = make_world(cluster, redis_server.url, prefix=prefix, retention_seconds=RETENTION)
    try:
        finished = _start(off)
        assert off.service.rollback(REF, actor=BOB, reason="bad answers").ok
        off.clock.advance(DAY)
        active = _start(off)
        assert _ttls(off, finished) == (-1, -1, -1)
        assert off.store.expire_finished(off.clock.now()) == 0  # no retention: nothing goes
        assert _ttls(off, finished) == (-1, -1, -1)

        on.clock.set(off.clock.now())
        with round_trips() as trips:
            assert on.service.expire_finished() == 1
        # the states read: the finished one's only (the active one is known from its index)
        assert [sent for sent in trips.work if "HMGET" in sent] == [["HMGET"]]
        state, audit, marker = _ttls(on, finished)
        assert _near(state, RETENTION - DAY) and _near(audit, RETENTION - DAY)
        assert marker == -1  # the pool's marker names the active rollout now
        assert _ttls(on, active) == (-1, -1, -1)
        assert on.service.expire_finished() == 0  # given once
        assert _near(_ttls(on, finished)[0], RETENTION - DAY)
    finally:
        off.store.client.close()
        on.store.client.close()


def test_the_pass_leaves_a_record_written_since_it_was_read_and_one_it_cannot_read(
        kept: World) -> None:
    """Its script acts only on the version it read (a write since gave the record its own
    time, or made it active again), and a state of a newer version is passed by."""
    store = kept.store
    rollout_id = _start(kept)
    assert kept.service.rollback(REF, actor=BOB, reason="bad answers").ok
    key = store.key("rollout", rollout_id)
    store.client.persist(key)
    read = store.get(rollout_id)
    assert read is not None
    store.client.hset(key, "version", str(read.version + 1))  # a write since the read
    assert store._expire_one(key, read, 60_000) == 0
    assert store.client.pttl(key) == -1
    store.client.hset(store.key("rollout", "newer"), mapping={"version": "1", "data": "{"})
    assert store.expire_finished(kept.clock.now()) == 0
    assert store.client.pttl(store.key("rollout", "newer")) == -1

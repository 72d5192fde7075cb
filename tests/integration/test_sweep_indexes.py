"""The indexes that make an idle sweep cheap, against a real Redis and the real API server:
the save script keeps the due times and the change index, and a leader that did not make a
change itself (another replica did) still learns it at its next sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollout.adapters import store as store_module
from rollout.adapters.leadership import LeaderLease
from rollout.domain.models import Rollout
from rollout.domain.plan import build_plan
from rollout.scheduler import RolloutScheduler
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, World

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)


def _baking(world: World) -> str:
    """A rollout at its first step with an hour's bake ahead; its id."""
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 100], interval_seconds=3600, auto=True))
    world.service.approve_plan(REF, actor=BOB)
    world.service.tick(world.service.get(REF).id)
    return world.service.get(REF).id


def test_the_save_keeps_the_due_index(world: World) -> None:
    rid = _baking(world)
    due = world.service.get(REF).next_due_at
    assert due is not None
    assert world.store.due_until(due) == {rid: due}
    assert world.store.due_until(due - timedelta(seconds=1)) == {}
    world.service.rollback(REF, actor=BOB)
    assert world.store.due_until(due + timedelta(days=1)) == {}


def test_a_takeovers_index_of_due_times_never_puts_back_a_rollout_finished_meanwhile(
        world: World) -> None:
    """A new leader read the active rollouts, then another replica rolled one back (its save
    took it out of the index): indexing what was read must not put it back, where every
    sweep would then find it due."""
    rid = _baking(world)
    read = world.service.active()
    world.service.rollback(REF, actor=BOB)
    world.store.client.delete(world.store.key("due"))  # as before the index existed
    world.service.index_due(read)
    assert world.store.due_until(datetime.now(UTC) + timedelta(days=1)) == {}
    assert [r.id for r in read] == [rid]
    again = _baking(world)
    world.store.client.delete(world.store.key("due"))
    world.service.index_due(world.service.active())  # one still active is indexed
    assert list(world.store.due_until(datetime.now(UTC) + timedelta(days=1))) == [again]


def test_a_takeovers_index_of_due_times_never_puts_back_a_rollout_paused_meanwhile(
        world: World) -> None:
    """A new leader read the active rollouts, then another replica paused one (its save took
    the due time out of the index, the rollout still active): indexing what was read put the
    old due time back, against the index's word that it holds only what is due."""
    _baking(world)
    read = world.service.active()
    world.service.pause(REF, actor=BOB, reason="p99")
    world.service.index_due(read)
    assert world.store.due_until(datetime.now(UTC) + timedelta(days=1)) == {}
    world.service.resume(REF, actor=BOB)  # the save indexes its due time again
    resumed = world.service.get(REF)
    assert resumed.next_due_at is not None
    assert world.store.due_until(resumed.next_due_at) == {resumed.id: resumed.next_due_at}


def test_the_change_index_names_each_written_rollout_once(world: World) -> None:
    seen = world.store.changes_since(0)
    rid = _baking(world)
    after = world.store.changes_since(seen.seq)
    assert after.ids == [rid] and after.complete
    assert after.seq > seen.seq
    assert world.store.changes_since(after.seq).ids == []
    # a reader ahead of Redis's counter (Redis lost it) is told to reload everything
    assert not world.store.changes_since(after.seq + 1).complete


def test_a_change_made_elsewhere_reaches_the_leader_at_its_next_sweep(world: World) -> None:
    """No `on_change` from this replica: only the change index tells the leader."""
    lease = LeaderLease(world.store.client, key=world.store.key("leader"), holder="a",
                        ttl_seconds=30)
    scheduler = RolloutScheduler(service=world.service, lease=lease, sweep_seconds=5)
    scheduler.scheduler.start(paused=True)  # jobs are kept, none fires
    try:
        scheduler.sweep()  # takes the lease: the full load finds nothing
        assert scheduler.due_times() == {}
        rid = _baking(world)
        scheduler.sweep()
        assert scheduler.due_times() == {rid: world.service.get(REF).next_due_at}
        world.service.rollback(REF, actor=BOB)
        scheduler.sweep()
        assert scheduler.due_times() == {}
    finally:
        scheduler.scheduler.shutdown(wait=False)
        lease.release()


def _completed_and_kept(world: World) -> Rollout:
    """A one-step rollout completed, its stable pool kept for an hour."""
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([100]), keep_seconds=3600)
    assert world.service.approve(REF, actor=BOB).ok
    r = world.service.get(REF)
    assert r.keep_until is not None
    return r


def test_the_save_keeps_the_keep_index(world: World) -> None:
    r = _completed_and_kept(world)
    assert r.keep_until is not None
    assert world.store.kept_until(r.keep_until) == [r.id]
    assert world.store.kept_until(r.keep_until - timedelta(seconds=1)) == []
    world.clock.advance(3600)
    [told] = world.service.remind_kept()
    assert told.rollout is not None and told.rollout.keep_reminded
    assert world.store.kept_until(r.keep_until + timedelta(days=1)) == []


def test_a_rollback_of_a_completed_rollout_leaves_the_keep_index(world: World) -> None:
    r = _completed_and_kept(world)
    assert r.keep_until is not None
    assert world.service.rollback(REF, actor=BOB).ok
    assert world.store.kept_until(r.keep_until + timedelta(days=1)) == []


def test_a_new_leader_indexes_keep_periods_saved_before_the_index(world: World) -> None:
    """A state saved by a version of the bot without the index: the leader indexes it when
    it takes the lease, and the reminder then finds it."""
    r = _completed_and_kept(world)
    assert r.keep_until is not None
    world.store.unindex_kept([r.id])
    assert world.store.kept_until(r.keep_until) == []
    lease = LeaderLease(world.store.client, key=world.store.key("leader"), holder="a",
                        ttl_seconds=30)
    scheduler = RolloutScheduler(service=world.service, lease=lease, sweep_seconds=5)
    scheduler.scheduler.start(paused=True)
    try:
        scheduler.sweep()  # takes the lease
    finally:
        scheduler.scheduler.shutdown(wait=False)
        lease.release()
    assert world.store.kept_until(r.keep_until) == [r.id]
    world.clock.advance(3600)
    assert [o.rollout.id for o in world.service.remind_kept() if o.rollout] == [r.id]


def test_a_change_index_that_lost_its_latest_writes_is_not_read_past(world: World) -> None:
    """A failover (asynchronous replication) or a restart without persistence can lose the
    latest writes, the change index's among them. The counter went on from where the loss
    left it: as many new writes brought it back to the number the leader had seen, and the
    leader read nothing new, missing the rollout written meanwhile."""
    rid = _baking(world)
    client, keys = world.store.client, [world.store.key("changes"),
                                         world.store.key("changes", "seq")]
    before = {key: bytes(client.dump(key) or b"") for key in keys}
    world.service.pause(REF, actor=BOB)  # seen by the leader, then lost
    seen = world.store.changes_since(0).seq
    for key, dumped in before.items():  # the index as the loss left it
        client.restore(key, 0, dumped, replace=True)
    world.service.resume(REF, actor=BOB)  # written after the loss
    after = world.store.changes_since(seen)
    assert rid in after.ids or not after.complete


def test_a_reader_behind_what_the_change_index_let_go_of_reloads_everything(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "CHANGES_KEPT", 1)  # one rollout remembered
    start = world.store.changes_since(0).seq
    first = _baking(world)
    world.service.rollback(REF, actor=BOB)
    after_first = world.store.changes_since(start)
    assert after_first.ids == [first] and after_first.complete
    second = _baking(world)  # the index lets the first rollout go
    assert not world.store.changes_since(start).complete
    since = world.store.changes_since(after_first.seq)
    assert since.ids == [second] and since.complete


def test_a_pause_redis_lost_under_a_surviving_lease_leaves_the_rollout_scheduled(
        world: World) -> None:
    """A person paused the rollout on the leader's replica (its job went), the leader's
    sweep saw the write, then Redis lost it (a failover to a replica it had not reached;
    the leader lease, older, survived with its token). The leader kept its paused copy,
    of a version Redis no longer had, over the baking one Redis holds: the rollout, due in
    Redis, had no job until someone wrote it again."""
    lease = LeaderLease(world.store.client, key=world.store.key("leader"), holder="a",
                        ttl_seconds=30)
    scheduler = RolloutScheduler(service=world.service, lease=lease, sweep_seconds=5)
    world.service.options.listeners.append(scheduler.on_change)
    scheduler.scheduler.start(paused=True)  # jobs are kept, none fires
    client = world.store.client
    try:
        scheduler.sweep()
        _baking(world)
        baking = world.service.get(REF)
        assert scheduler.due_times() == {baking.id: baking.next_due_at}
        kept = [k for k in client.keys(world.store.key("*")) if k != world.store.key("leader")]
        before = {k: (bytes(client.dump(k) or b""), client.pttl(k)) for k in kept}
        world.service.pause(REF, actor=BOB)
        scheduler.sweep()  # the pause is heard and seen
        assert scheduler.due_times() == {}
        for k in client.keys(world.store.key("*")):  # the replica's data: the pause lost
            if k not in before and k != world.store.key("leader"):
                client.delete(k)
        for k, (dumped, ttl) in before.items():
            client.restore(k, max(ttl, 0), dumped, replace=True)
        assert world.service.get(REF).version == baking.version
        scheduler.sweep()
        assert scheduler.due_times() == {baking.id: baking.next_due_at}
    finally:
        scheduler.scheduler.shutdown(wait=False)
        lease.release()

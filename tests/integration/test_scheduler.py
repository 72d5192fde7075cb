"""The scheduler: unattended automatic plans, one leader, due times that survive restarts."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from rollout.adapters.leadership import LeaderLease
from rollout.domain.models import Phase
from rollout.domain.plan import build_plan
from rollout.scheduler import RolloutScheduler
from rollout.service import Outcome, Ref
from tests.integration.conftest import ALICE, BOB, World
from tests.support import weight_writes
from tests.support.polling import eventually

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)


def _wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    eventually(check, timeout=timeout, step=0.05)


def _scheduler(world: World, holder: str, *, ttl: float = 2.0,
               sweep: float = 0.2) -> RolloutScheduler:
    lease = LeaderLease(world.store.client, key=world.store.key("leader"), holder=holder,
                        ttl_seconds=ttl)
    scheduler = RolloutScheduler(service=world.service, lease=lease, sweep_seconds=sweep)
    world.service.options.listeners.append(scheduler.on_change)
    return scheduler


def test_an_automatic_plan_reaches_100_unattended_each_step_once(live_world: World) -> None:
    world = live_world
    scheduler = _scheduler(world, "a")
    scheduler.start()
    try:
        world.service.start(namespace="default", canary=POOL, actor=ALICE,
                            plan=build_plan([10, 50, 100], interval_seconds=1, auto=True))
        world.service.approve_plan(REF, actor=BOB)  # by someone other than alice
        _wait_for(lambda: world.service.get(REF).phase is Phase.COMPLETED)
    finally:
        scheduler.stop()
    assert world.weights() == {"llm-pool": 0, POOL: 100}
    assert weight_writes(world.emulator) == [[100, 0], [90, 10], [50, 50], [0, 100]]
    steps = [e for e in world.service.history(REF) if e.action == "step_applied"]
    assert [e.step for e in steps] == [0, 1, 2]
    assert all(e.actor.id == "scheduler" for e in steps)


def test_approval_gates_are_opened_by_the_scheduler_after_the_bake(live_world: World) -> None:
    world = live_world
    scheduler = _scheduler(world, "a")
    scheduler.start()
    try:
        world.service.start(namespace="default", canary=POOL, actor=ALICE,
                            plan=build_plan([10, 100], interval_seconds=1))
        world.service.approve(REF, actor=BOB)
        assert world.service.get(REF).phase is Phase.BAKING
        _wait_for(lambda: world.service.get(REF).phase is Phase.AWAITING_APPROVAL)
    finally:
        scheduler.stop()
    events = [e.action for e in world.service.history(REF)]
    assert events[-1] == "approval_requested"


def test_only_one_of_two_schedulers_leads_and_steps_apply_once(live_world: World) -> None:
    world = live_world
    a, b = _scheduler(world, "a"), _scheduler(world, "b")
    a.start()
    b.start()
    try:
        _wait_for(lambda: a.lease.is_leader or b.lease.is_leader)
        assert not (a.lease.is_leader and b.lease.is_leader)
        world.service.start(namespace="default", canary=POOL, actor=ALICE,
                            plan=build_plan([10, 25, 50, 100], interval_seconds=1, auto=True))
        world.service.approve_plan(REF, actor=BOB)  # by someone other than alice
        _wait_for(lambda: world.service.get(REF).step >= 1)
        leader, other = (a, b) if a.lease.is_leader else (b, a)
        leader.halt()  # stops without releasing its lease, as a crash would
        started = time.monotonic()
        _wait_for(lambda: other.lease.is_leader, timeout=20)
        # TTL + one sweep + slack for a loaded machine: a takeover that waited for a sweep
        # of a default install (5 s) would miss it
        assert time.monotonic() - started <= 2.0 + 0.2 + 2.0
        _wait_for(lambda: world.service.get(REF).phase is Phase.COMPLETED)
    finally:
        for s in (a, b):
            s.halt()
    assert weight_writes(world.emulator) == [[100, 0], [90, 10], [75, 25], [50, 50], [0, 100]]


def test_a_scheduler_restart_mid_bake_keeps_the_due_time(live_world: World) -> None:
    world = live_world
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 100], interval_seconds=3600, auto=True))
    world.service.approve_plan(REF, actor=BOB)  # by someone other than alice
    world.service.tick(world.service.get(REF).id)
    due = world.service.get(REF).next_due_at
    assert due is not None
    first = _scheduler(world, "a")
    first.start()
    _wait_for(lambda: bool(first.due_times()))
    assert first.due_times() == {world.service.get(REF).id: due}
    first.stop()
    second = _scheduler(world, "b")
    second.start()
    try:
        _wait_for(lambda: bool(second.due_times()))
        assert second.due_times() == {world.service.get(REF).id: due}
    finally:
        second.stop()


def test_a_replica_that_cannot_renew_stops_firing_at_once(live_world: World) -> None:
    now = [0.0]
    lease = LeaderLease(live_world.store.client, key=live_world.store.key("leader"),
                        holder="a", ttl_seconds=2.0, monotonic=lambda: now[0])
    assert lease.refresh() and lease.is_leader
    now[0] = 1.9
    assert lease.is_leader
    now[0] = 2.0
    assert not lease.is_leader  # by its own clock, before Redis expires the key
    other = LeaderLease(live_world.store.client, key=live_world.store.key("leader"),
                        holder="b", ttl_seconds=2.0)
    assert not other.refresh()  # the key itself is still there
    live_world.store.client.delete(live_world.store.key("leader"))
    assert other.refresh()
    now[0] = 2.5
    assert not lease.refresh() and not lease.is_leader


def test_a_renewal_answered_after_the_ttl_does_not_count_as_leading(
        live_world: World) -> None:
    """Redis renewed the key, but its answer came later than the TTL by the replica's own
    clock: the lease counted from before the call has lapsed, and `refresh` says so (it
    said it led while `is_leader` said not, and the sweep took the lapsed lease's missing
    token for a new term)."""
    calls = iter([0.0, 2.5])
    now = [0.0]

    def monotonic() -> float:
        now[0] = next(calls, now[0])
        return now[0]

    lease = LeaderLease(live_world.store.client, key=live_world.store.key("leader"),
                        holder="a", ttl_seconds=2.0, monotonic=monotonic)
    assert not lease.refresh()
    assert not lease.is_leader and lease.token is None


def test_stopping_while_a_tick_runs_does_not_deadlock(live_world: World) -> None:
    """APScheduler's shutdown holds its job-store lock while waiting for a running job; the
    job's tick reschedules through on_change and must not wait for that lock."""
    import threading

    world = live_world
    scheduler = _scheduler(world, "a")
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 100], interval_seconds=3600, auto=True))
    world.service.approve_plan(REF, actor=BOB)  # by someone other than alice
    rollout_id = world.service.get(REF).id
    entered, release = threading.Event(), threading.Event()
    real_tick = world.service.tick

    def slow_tick(rollout_id: str) -> Outcome:
        entered.set()
        release.wait(10)
        return real_tick(rollout_id)

    world.service.tick = slow_tick  # type: ignore[method-assign]
    scheduler.start()
    assert entered.wait(10), "the due job did not fire"
    stopper = threading.Thread(target=scheduler.stop)
    stopper.start()
    time.sleep(0.2)  # shutdown is now waiting for the job
    release.set()
    stopper.join(timeout=10)
    assert not stopper.is_alive(), "stop() deadlocked with the running tick"
    assert world.service.get(REF).id == rollout_id


def test_reminders_and_the_approval_timeout_through_the_service(world: World) -> None:
    """The scheduler's tick path with an injected clock: no sleeping for half an hour."""
    world.service.options.reminder_seconds = 600
    world.service.options.approval_timeout_seconds = 1500
    world.service.start(namespace="default", canary=POOL, actor=ALICE, plan=build_plan())
    rollout = world.service.get(REF)
    assert rollout.next_due_at == world.clock.now() + timedelta(seconds=600)
    assert not world.service.tick(rollout.id).changed
    world.clock.advance(600)
    assert [e.action for e in world.service.tick(rollout.id).events] == ["reminder"]
    world.clock.advance(600)
    assert [e.action for e in world.service.tick(rollout.id).events] == ["reminder"]
    world.clock.advance(300)
    out = world.service.tick(rollout.id)
    assert out.rollout is not None and out.rollout.phase is Phase.PAUSED
    assert out.rollout.pause is not None and "not approved within 25m" in out.rollout.pause.reason
    assert world.weights() == {"llm-pool": 100, POOL: 0}

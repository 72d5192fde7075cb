"""Which ticks go ahead of the backlog: the one a person's change just made due, heard from
this replica's own command or from another replica's announcement, on a few threads of its
own. APScheduler runs paused here: only where each job is put is read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial

import pytest
from apscheduler.job import Job

from rollout.ahead_lane import AHEAD_THREADS, AHEAD_WITHIN
from rollout.domain.clock import ManualClock
from rollout.domain.errors import ClusterUnavailable
from rollout.domain.models import Actor, AuditAction, AuditEvent, Phase, Rollout
from rollout.domain.plan import build_plan
from rollout.pacing import TickPacer
from rollout.scheduler import (
    AHEAD_EXECUTOR,
    SWEEP_JOB,
    RolloutScheduler,
    background_scheduler,
)
from rollout.service import Outcome, RolloutService
from tests.support.polling import eventually
from tests.unit.builders import ALICE, BOB, T0, started
from tests.unit.test_scheduler_jobs import _HeldLease
from tests.unit.test_service import CANARY, REF, _world

BAKE = 60
SWEEP = 5.0


@pytest.fixture
def replica() -> Iterator[tuple[RolloutScheduler, RolloutService, ManualClock]]:
    """The leader, its jobs paused; the service's outcomes reach it only where a test says
    (this replica's own commands) and the sweep reads the rest (another replica's)."""
    service, _store, _target, clock = _world()
    jobs = background_scheduler()
    jobs.start(paused=True)
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs, sweep_seconds=SWEEP)
    jobs.add_job(scheduler.sweep, "interval", seconds=3600, id=SWEEP_JOB)
    try:
        yield scheduler, service, clock
    finally:
        jobs.shutdown(wait=False)


def _job(scheduler: RolloutScheduler, rollout_id: str = "r1") -> Job:
    job = scheduler.scheduler.get_job(f"due:{rollout_id}")
    assert job is not None, f"no job for {rollout_id}"
    return job


def _ahead(scheduler: RolloutScheduler, rollout_id: str = "r1") -> bool:
    job = _job(scheduler, rollout_id)
    ahead: bool = job.executor == AHEAD_EXECUTOR
    assert job.args == (rollout_id, ahead)  # the tick knows which lane it came by
    return ahead


def _approved(service: RolloutService, bake: int = BAKE) -> None:
    """A rollout started and its plan approved: its first step is due."""
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 50, 100], interval_seconds=bake, auto=True))
    service.approve_plan(REF, actor=BOB)


def _due(rollout_id: str, at: datetime) -> Rollout:
    return started(auto=True, interval=BAKE).model_copy(
        update={"id": rollout_id, "phase": Phase.BAKING, "next_due_at": at})


def _changed(r: Rollout, by: Actor) -> Outcome:
    event = AuditEvent(at=T0, rollout_id=r.id, target="default/route", actor=by,
                       action=AuditAction.PLAN_APPROVED)
    return Outcome(r, "changed", events=(event,))


def test_a_plan_approved_on_this_replica_takes_its_first_step_ahead(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    scheduler, service, _clock = replica
    service.options.listeners.append(scheduler.on_change)
    _approved(service)
    assert _ahead(scheduler)


def test_the_step_after_the_one_that_went_ahead_queues_with_the_others(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    """Bakes of 0 s: the next step is due at once, but nobody waits for it."""
    scheduler, service, _clock = replica
    service.options.listeners.append(scheduler.on_change)
    _approved(service, bake=0)
    assert _ahead(scheduler)
    scheduler.fire("r1", True)  # the paused scheduler: the tick runs here
    assert service.get(REF).step == 0
    assert not _ahead(scheduler)
    assert _job(scheduler).next_run_time <= service.clock.now()


def test_a_plan_approved_on_another_replica_goes_ahead_once_announced(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    scheduler, service, _clock = replica
    _approved(service)  # the leader hears nothing of it but the feed
    scheduler.wake("r1")  # no sweep runs here: the announced rollout is loaded at once
    assert _ahead(scheduler)
    scheduler.sweep()
    assert _ahead(scheduler)


def test_an_announced_rollout_that_cannot_be_loaded_is_left_to_the_sweep(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    scheduler, service, _clock = replica
    _approved(service)
    loads = service.load

    def unavailable(rollout_ids: list[str]) -> dict[str, Rollout | None]:
        raise ClusterUnavailable("Redis did not answer")  # any RolloutError

    service.load = unavailable  # type: ignore[method-assign]
    scheduler.wake("r1")
    assert scheduler.scheduler.get_job("due:r1") is None
    service.load = loads  # type: ignore[method-assign]
    scheduler.sweep()
    assert _ahead(scheduler)


def test_a_change_the_sweep_found_unannounced_queues_with_the_others(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    scheduler, service, _clock = replica
    _approved(service)
    scheduler.wake()
    scheduler.sweep()
    assert not _ahead(scheduler)


def test_the_schedulers_own_step_and_a_change_that_starts_a_bake_do_not_go_ahead(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    scheduler, _service, _clock = replica
    scheduler.on_change(_changed(_due("r2", T0), Actor.scheduler()))
    scheduler.on_change(_changed(_due("r3", T0 + AHEAD_WITHIN + timedelta(seconds=1)), BOB))
    scheduler.on_change(_changed(_due("r4", T0 + AHEAD_WITHIN), BOB))
    assert not _ahead(scheduler, "r2") and not _ahead(scheduler, "r3")
    assert _ahead(scheduler, "r4")


def test_a_change_heard_long_before_its_rollout_falls_due_does_not_go_ahead(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    """Two sweeps after it was heard, the change is forgotten: a later due time is the
    scheduler's own (a bake's end), whoever made the change before it."""
    scheduler, _service, clock = replica
    scheduler.on_change(_changed(_due("r2", T0 + timedelta(seconds=BAKE)), BOB))
    assert not _ahead(scheduler, "r2")
    clock.advance(2 * SWEEP)
    scheduler.on_change(_changed(_due("r2", clock.now()), Actor.scheduler()))
    assert not _ahead(scheduler, "r2")
    clock.advance(-0.001)  # just inside two sweeps, it would have
    scheduler.on_change(_changed(_due("r2", clock.now()), Actor.scheduler()))
    assert _ahead(scheduler, "r2")


def test_only_as_many_rollouts_go_ahead_at_once_as_the_lane_has_threads(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    """A burst of people's changes (a script approving many plans) beyond the lane's threads
    waits with the other ticks; once a tick that went ahead fired, the lane takes another."""
    scheduler, _service, _clock = replica
    ids = [f"p{i}" for i in range(AHEAD_THREADS + 1)]
    for rid in ids:
        scheduler.on_change(_changed(_due(rid, T0), BOB))
    assert [_ahead(scheduler, rid) for rid in ids] == [True] * AHEAD_THREADS + [False]
    scheduler.on_change(_changed(_due(ids[0], T0), BOB))  # rescheduled: keeps its thread
    assert _ahead(scheduler, ids[0])
    scheduler.fire(ids[0], True)  # no such rollout in the store: the tick finds nothing
    scheduler.on_change(_changed(_due("late", T0), BOB))
    assert _ahead(scheduler, "late")


def test_a_replica_that_loses_the_lead_forgets_what_it_heard(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    scheduler, _service, _clock = replica
    for rid in [f"p{i}" for i in range(AHEAD_THREADS)]:
        scheduler.on_change(_changed(_due(rid, T0), BOB))
    lease = scheduler.lease
    lease.refresh = lambda: False  # type: ignore[method-assign]
    scheduler.sweep()
    lease.refresh = lambda: True  # type: ignore[method-assign]
    scheduler.on_change(_changed(_due("p0", T0), Actor.scheduler()))
    assert not _ahead(scheduler, "p0")
    later = [f"later{i}" for i in range(AHEAD_THREADS)]  # the lane is whole again
    for rid in later:
        scheduler.on_change(_changed(_due(rid, T0), BOB))
    assert all(_ahead(scheduler, rid) for rid in later)


def test_a_rollout_that_stops_being_due_gives_its_thread_back(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    scheduler, _service, _clock = replica
    scheduler.on_change(_changed(_due("paused", T0), BOB))
    assert _ahead(scheduler, "paused")
    paused = _due("paused", T0).model_copy(update={"phase": Phase.PAUSED, "next_due_at": None,
                                                   "version": 1})
    scheduler.on_change(_changed(paused, BOB))
    assert scheduler.scheduler.get_job("due:paused") is None
    ids = [f"p{i}" for i in range(AHEAD_THREADS)]
    for rid in ids:
        scheduler.on_change(_changed(_due(rid, T0), BOB))
    assert all(_ahead(scheduler, rid) for rid in ids)


def test_a_rollouts_tick_already_waiting_behind_the_backlog_is_moved_ahead(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    """r1's automatic tick waits for a place behind r2's when a person's change makes r1
    due: the job that change fires finds r1's tick running and only asks it to go once
    more, so the waiting tick itself takes the next place, not r2's."""
    scheduler, service, _clock = replica
    scheduler.pacer = TickPacer(service.clock, ceiling=1, poll_seconds=60)
    ticked: list[str] = []

    def tick(rollout_id: str) -> Outcome:
        ticked.append(rollout_id)
        return Outcome(None, "nothing due", changed=False)

    service.tick = tick  # type: ignore[method-assign]
    assert scheduler.pacer.enter(lambda: False)  # the backlog holds the only place
    threads = []
    for rid in ("r2", "r1"):  # r2 waits first: woken first, as a condition wakes
        threads.append(threading.Thread(target=scheduler.fire, args=(rid,), daemon=True))
        threads[-1].start()
        waiters = len(threads)
        eventually(partial(_waiting_for_a_place, scheduler, waiters), timeout=5)
    scheduler.fire("r1", True)  # returns at once: r1's tick runs
    scheduler.pacer.leave(changed=False)
    eventually(lambda: len(ticked) == 3, timeout=5)  # r1 once more, as it was asked
    for thread in threads:
        thread.join(5)
    assert ticked[0] == "r1" and sorted(ticked) == ["r1", "r1", "r2"]


def _waiting_for_a_place(scheduler: RolloutScheduler, count: int) -> bool:
    return len(scheduler.pacer._cond._waiters) == count  # type: ignore[attr-defined]


def test_a_move_ahead_for_a_tick_that_then_failed_is_not_kept_for_the_next(
    replica: tuple[RolloutScheduler, RolloutService, ManualClock],
) -> None:
    """A person's change made r1 due while r1's tick ran, which then failed: the tick runs
    once more for the person, ahead, and the move is spent there. (When that run never
    came, the mark stayed, and r1's next automatic tick, much later, went ahead of r2's,
    which waited longer.)"""
    scheduler, service, _clock = replica
    scheduler.pacer = TickPacer(service.clock, ceiling=1, poll_seconds=60)
    ticked: list[str] = []
    failing = threading.Event()

    def tick(rollout_id: str) -> Outcome:
        if not ticked:
            ticked.append("failed")
            assert failing.wait(5)
            raise ClusterUnavailable("the API server timed out")
        ticked.append(rollout_id)
        return Outcome(None, "nothing due", changed=False)

    service.tick = tick  # type: ignore[method-assign]
    first = threading.Thread(target=scheduler.fire, args=("r1",), daemon=True)
    first.start()
    eventually(lambda: ticked == ["failed"], timeout=5)  # r1's tick runs, in the only place
    scheduler.fire("r1", True)  # returns at once: it only asks the running tick once more
    failing.set()
    first.join(5)
    assert not first.is_alive()
    assert ticked == ["failed", "r1"]  # the person's run
    assert scheduler.pacer.enter(lambda: False)  # the backlog holds the only place
    threads = []
    for rid in ("r2", "r1"):  # r2 waits first; r1's automatic tick comes later
        threads.append(threading.Thread(target=scheduler.fire, args=(rid,), daemon=True))
        threads[-1].start()
        eventually(partial(_waiting_for_a_place, scheduler, len(threads)), timeout=5)
    scheduler.pacer.leave(changed=False)
    eventually(lambda: len(ticked) == 4, timeout=5)
    for thread in threads:
        thread.join(5)
    assert ticked == ["failed", "r1", "r2", "r1"]

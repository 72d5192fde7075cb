"""The scheduler's jobs on APScheduler's real threads, over the in-memory service: a stop
during APScheduler's pass over due jobs (many rounds, the stop landing at a different moment
of the pass in each), a job that falls due while its rollout's tick still runs, and the
leader's jobs and sweeps while every tick thread waits on a slow cluster with more ticks
queued. No Redis or cluster is needed: only the scheduler's own threading is under test."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler

from rollout.domain.errors import ClusterUnavailable
from rollout.domain.models import Rollout
from rollout.domain.plan import build_plan
from rollout.ports import Changes
from rollout.scheduler import (
    JOB_PREFIX,
    STEP_THREADS,
    SWEEP_JOB,
    RolloutScheduler,
    background_scheduler,
)
from rollout.service import Outcome, RolloutService
from tests.support.polling import eventually
from tests.unit.builders import ALICE, BOB, T0, started
from tests.unit.test_scheduler_ahead import _changed, _due
from tests.unit.test_scheduler_jobs import _HeldLease
from tests.unit.test_service import CANARY, REF, _world

ROUNDS = 40
JOBS = 300


@contextlib.contextmanager
def thread_errors() -> Iterator[list[str]]:
    """Exceptions that end a thread (APScheduler's own among them) while inside, by type;
    set in the test's body, so that no hook of the test runner's own stands in front."""
    errors: list[str] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_type.__name__)
    try:
        yield errors
    finally:
        threading.excepthook = previous


def _nothing() -> None:
    pass


def test_stopping_during_a_pass_over_due_jobs_leaves_no_thread_dead() -> None:
    with thread_errors() as errors:
        _stop_during_passes()
    assert errors == []


def _stop_during_passes() -> None:
    service, _store, _target, _clock = _world()
    for round_ in range(ROUNDS):
        jobs = background_scheduler()
        jobs.start()
        scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                     scheduler=jobs)
        due = datetime.now(UTC) + timedelta(milliseconds=20)
        for i in range(JOBS):  # spread over about 9 ms: a pass takes a few
            jobs.add_job(_nothing, "date", id=f"{JOB_PREFIX}r{i}", misfire_grace_time=None,
                         run_date=due + timedelta(microseconds=30 * i))
        time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + (round_ % 20) / 1000)
        scheduler.halt()
        assert not jobs.running


def test_a_due_time_reached_while_the_rollouts_own_tick_still_runs_is_not_lost() -> None:
    """A slow tick (a cluster that answers in seconds) decides its step at `now`, so the next
    due time it schedules can be past before the tick returns. That job fires while the tick
    still runs; APScheduler used to skip it (one instance a job), and the rollout then
    waited for a sweep. Here no sweep comes: the next step must still run."""
    service, _store, _target, clock = _world()
    jobs = background_scheduler()
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs, sweep_seconds=3600)
    service.options.listeners.append(scheduler.on_change)
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 50, 100], interval_seconds=60, auto=True))
    service.approve_plan(REF, actor=BOB)  # step 1 due now, by the service's (manual) clock
    ticks: list[int] = []
    second_job_fired, real_tick = threading.Event(), service.tick

    def slow_tick(rollout_id: str) -> Outcome:
        outcome = real_tick(rollout_id)  # schedules the next step's job, already due
        ticks.append(service.get(REF).step)
        if len(ticks) == 1:
            clock.advance(60)  # the bake is over before this tick returns
            second_job_fired.wait(2)  # the next job fires while this tick still runs
        return outcome

    service.tick = slow_tick  # type: ignore[method-assign]
    def due_job_done(event: JobEvent) -> None:  # run, or skipped by APScheduler
        if event.job_id.startswith(JOB_PREFIX) and len(ticks) == 1:
            second_job_fired.set()

    jobs.add_listener(due_job_done, EVENT_JOB_EXECUTED | EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while len(ticks) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ticks[:2] == [0, 1], ticks
    finally:
        scheduler.halt()


def _sweep_job_at(scheduler: RolloutScheduler) -> datetime:
    job = scheduler.scheduler.get_job(SWEEP_JOB)
    assert job is not None
    at: datetime = job.next_run_time
    return at


def test_a_wake_brings_the_sweep_forward_only_as_leader() -> None:
    """An announced change: the leader's sweep job runs now, not at its interval."""
    service, _store, _target, _clock = _world()
    for leading in (True, False):
        jobs = background_scheduler()
        jobs.start(paused=True)  # nothing runs: only where the job stands is read
        lease = _HeldLease()
        lease.is_leader = leading
        scheduler = RolloutScheduler(service=service, lease=lease,  # type: ignore[arg-type]
                                     scheduler=jobs)
        try:
            jobs.add_job(scheduler.sweep, "interval", seconds=3600, id=SWEEP_JOB)
            before = _sweep_job_at(scheduler)
            scheduler.wake()
            moved = _sweep_job_at(scheduler) <= datetime.now(UTC)
            assert moved is leading and (moved or _sweep_job_at(scheduler) == before)
        finally:
            jobs.shutdown(wait=False)


def test_a_change_announced_while_the_sweep_runs_makes_it_sweep_once_more() -> None:
    """The sweep read the change index before the change was saved: without one more
    sweep, the change would wait for the next interval. A change announced during that
    sweep again gets one more. Many rounds, real threads."""
    service, _store, _target, _clock = _world()
    for _ in range(ROUNDS):
        assert _sweeps_with_a_wake_during_the_first_two(service) == 3


def _sweeps_with_a_wake_during_the_first_two(service: RolloutService) -> int:
    """How many times the sweep read the change index, woken while it ran twice."""
    jobs = background_scheduler()
    jobs.start(paused=True)
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs)
    reading = [threading.Event(), threading.Event()]
    carry_on = [threading.Event(), threading.Event()]
    reads: list[int] = []
    real_changes = service.changes_since

    def changes_since(seen: int) -> Changes:
        reads.append(seen)
        if len(reads) <= 2:
            reading[len(reads) - 1].set()
            carry_on[len(reads) - 1].wait(5)
        return real_changes(seen)

    service.changes_since = changes_since  # type: ignore[method-assign]
    jobs.add_job(scheduler.sweep, "interval", seconds=3600, id=SWEEP_JOB)
    try:
        sweeping = threading.Thread(target=scheduler.sweep)
        sweeping.start()
        for i in range(2):
            assert reading[i].wait(5)
            scheduler.wake()  # announced after this sweep read the index
            carry_on[i].set()
        sweeping.join(5)
        swept = len(reads)
        scheduler.wake()  # no sweep runs now: the job is brought forward instead
        assert len(reads) == swept and _sweep_job_at(scheduler) <= datetime.now(UTC)
        return swept
    finally:
        service.changes_since = real_changes  # type: ignore[method-assign]
        jobs.shutdown(wait=False)


class _CountedLease(_HeldLease):
    """A lease held throughout, that says each time the sweep renews it."""

    def __init__(self) -> None:
        self.renewed = threading.Semaphore(0)

    def refresh(self) -> bool:
        self.renewed.release()
        return True


class _StuckTicks:
    """The service as the scheduler calls it: every tick waits until released (a cluster
    that answers slowly); the sweep finds `due` active and due (none unless told)."""

    def __init__(self, due: list[Rollout] | None = None) -> None:
        self.release = threading.Event()
        self.clock = _world()[3]
        self.due = due or []
        self.asked: list[str] = []

    def tick(self, rollout_id: str) -> Outcome:
        self.asked.append(rollout_id)
        assert self.release.wait(30)
        return Outcome(None, "nothing due", changed=False)

    def changes_since(self, seq: int) -> Changes:
        return Changes(seq=seq, ids=[], complete=True)

    def active(self) -> list[Rollout]:
        return self.due

    def index_due(self, rollouts: list[object]) -> None:
        pass

    def index_kept(self) -> None:
        pass

    def expire_finished(self) -> int:
        return 0

    def due_until(self, horizon: object) -> list[str]:
        return [r.id for r in self.due]

    def in_flight(self) -> list[str]:
        return []

    def remind_kept(self) -> list[Outcome]:
        return []


def _counted(job: Callable[[], None], runs: threading.Semaphore) -> Callable[[], None]:
    def counted() -> None:
        job()
        runs.release()
    return counted


def test_the_sweep_renews_the_lease_while_every_tick_thread_waits_on_the_cluster() -> None:
    """Hundreds of ticks due at once on a slow cluster fill every tick thread and queue the
    rest. The sweep (the lease's renewal), the drift watch and the analysis must not queue
    behind them: a renewal that waits past the lease's TTL stops every tick of the replica
    until it runs (at 1,000 rollouts the sweep ran 10 s late every 20 s, and the ticks
    stalled each time)."""
    ticks, lease = _StuckTicks(), _CountedLease()
    scheduler = RolloutScheduler(service=ticks, lease=lease,  # type: ignore[arg-type]
                                 sweep_seconds=0.05)
    ran = {"look": threading.Semaphore(0), "analyse": threading.Semaphore(0)}
    for name, runs in ran.items():  # the drift watch's and the analysis' passes, counted
        setattr(scheduler, name, _counted(getattr(scheduler, name), runs))
    scheduler.start()
    try:
        for i in range(3 * STEP_THREADS):
            scheduler.scheduler.add_job(scheduler.fire, "date", args=[f"r{i}"],
                                        id=f"{JOB_PREFIX}r{i}", misfire_grace_time=None)
        for renewal in range(5):  # while every tick thread is held and the rest queue
            assert lease.renewed.acquire(timeout=5), f"renewal {renewal} never came"
            for name, runs in ran.items():
                assert runs.acquire(timeout=5), f"{name} pass {renewal} never came"
        assert not ticks.release.is_set()
    finally:
        ticks.release.set()
        scheduler.halt()


def test_a_scheduler_given_a_plain_apscheduler_adds_the_leaders_executor_to_it() -> None:
    ticks, lease = _StuckTicks(), _CountedLease()
    scheduler = RolloutScheduler(service=ticks, lease=lease,  # type: ignore[arg-type]
                                 scheduler=BackgroundScheduler(timezone="UTC"),
                                 sweep_seconds=0.05)
    scheduler.start()
    try:
        assert lease.renewed.acquire(timeout=5) and lease.renewed.acquire(timeout=5)
    finally:
        scheduler.halt()


def test_a_sweep_adds_no_job_for_a_rollout_whose_tick_waits_for_a_thread() -> None:
    """Three times as many rollouts due as tick threads, every tick held: each sweep finds
    them all due. A job for a rollout whose tick is queued would queue a second instance,
    and APScheduler skips a third with a warning (37,329 of them in one run at 1,000
    rollouts): none may be skipped, and every queued tick runs once the cluster answers."""
    due = [started().model_copy(update={"id": f"r{i}", "next_due_at": started().created_at})
           for i in range(3 * STEP_THREADS)]
    ticks, lease = _StuckTicks(due), _CountedLease()
    scheduler = RolloutScheduler(service=ticks, lease=lease,  # type: ignore[arg-type]
                                 sweep_seconds=0.05)
    skipped: list[str] = []

    def skip(event: JobSubmissionEvent) -> None:  # the leader's jobs skip a run while one runs
        if event.job_id.startswith(JOB_PREFIX):
            skipped.append(event.job_id)

    scheduler.scheduler.add_listener(skip, EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    try:
        for renewal in range(6):  # the take-over, then sweeps finding every rollout due
            assert lease.renewed.acquire(timeout=5), f"renewal {renewal} never came"
        assert skipped == []
        assert len(ticks.asked) == STEP_THREADS  # the rest wait for a thread
        ticks.release.set()  # the cluster answers: every queued tick runs
        deadline = time.monotonic() + 10
        while set(ticks.asked) != {r.id for r in due} and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        ticks.release.set()
        scheduler.halt()
    # (these ticks leave their rollouts due, so later sweeps tick them again)
    assert set(ticks.asked) == {r.id for r in due}


def test_a_tick_that_failed_is_tried_again_by_the_next_sweep() -> None:
    """A tick whose cluster write failed leaves no job (the next sweep retries): once its
    queued instance has begun, the rollout counts as queued no more, and the sweep adds its
    job again."""
    due = [started().model_copy(update={"id": "r1", "next_due_at": started().created_at})]
    ticks, lease = _StuckTicks(due), _CountedLease()
    ticks.release.set()
    answers: list[Exception | None] = [ClusterUnavailable("the API server timed out"), None]
    held = ticks.tick

    def failing_once(rollout_id: str) -> Outcome:
        answer = answers.pop(0) if answers else None
        if answer is not None:
            ticks.asked.append(rollout_id)
            raise answer
        return held(rollout_id)

    ticks.tick = failing_once  # type: ignore[method-assign]
    scheduler = RolloutScheduler(service=ticks, lease=lease,  # type: ignore[arg-type]
                                 sweep_seconds=0.05)
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while len(ticks.asked) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        scheduler.halt()
    assert ticks.asked[:2] == ["r1", "r1"]


class _OneAtATime(_StuckTicks):
    """Every tick waits for a permit of its own (one tick of the cluster ends at a time)."""

    def __init__(self, due: list[Rollout]) -> None:
        super().__init__(due)
        self.permits = threading.Semaphore(0)

    def tick(self, rollout_id: str) -> Outcome:
        self.asked.append(rollout_id)
        assert self.permits.acquire(timeout=30)
        return Outcome(None, "nothing due", changed=False)


def test_the_step_a_person_made_due_goes_before_the_backlog_of_automatic_ones() -> None:
    """Every tick thread waits on a slow cluster and twice as many ticks wait for a thread.
    A person approves a plan on this replica: its first step is the next tick the cluster
    gets, not the last of the backlog (at 1,000 rollouts it waited 9 to 12 s, p99). Many
    rounds: whichever thread the freed place would wake first."""
    for round_ in range(ROUNDS // 4):
        due = [started().model_copy(update={"id": f"r{i}", "next_due_at": T0})
               for i in range(3 * STEP_THREADS)]
        assert _first_after_the_backlogs_next(_OneAtATime(due)) == "approved", f"round {round_}"


def _first_after_the_backlogs_next(ticks: _OneAtATime) -> str:
    """The rollout whose tick the cluster gets once one tick of a full house ends, a
    person having approved a plan while all were busy."""
    scheduler = RolloutScheduler(service=ticks, lease=_HeldLease(),  # type: ignore[arg-type]
                                 sweep_seconds=3600)
    # the first sweep schedules the backlog: jobs added beside it could be dropped by its sync
    scheduler.start()
    try:
        eventually(lambda: len(ticks.asked) == STEP_THREADS, timeout=5)
        scheduler.on_change(_changed(_due("approved", T0), BOB))
        eventually(lambda: scheduler.pacer.ahead_waiting == 1, timeout=5)
        ticks.permits.release()  # one tick of the backlog ends
        eventually(lambda: len(ticks.asked) > STEP_THREADS, timeout=5)
        return ticks.asked[STEP_THREADS]
    finally:
        ticks.permits.release(10 * STEP_THREADS)
        scheduler.halt()


class _SlowFirstRecord:
    """The hold's record (`TickHolds`), whose first write is slow: the Redis record is the
    last write (a SET)."""

    def __init__(self) -> None:
        self.first_inside = threading.Event()
        self.let_first_go = threading.Event()
        self.writes: list[datetime] = []

    def hold(self, until: datetime) -> None:
        if not self.writes and not self.first_inside.is_set():
            self.first_inside.set()
            assert self.let_first_go.wait(5)
        self.writes.append(until)

    def held_until(self) -> datetime | None:
        return self.writes[-1] if self.writes else None


def test_two_ticks_throttled_at_once_leave_the_longer_hold_recorded() -> None:
    """Each grows the hold; the shorter one's write, slower, must not land last (status
    would say the hold ends before it does)."""
    service, _store, _target, _clock = _world()
    record = _SlowFirstRecord()
    service.options.tick_holds = record
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=background_scheduler())
    shorter, longer = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    first = threading.Thread(target=scheduler._record_hold, args=[shorter])
    first.start()
    assert record.first_inside.wait(5)
    second = threading.Thread(target=scheduler._record_hold, args=[longer])
    second.start()
    second.join(0.2)  # left to write first, unless it waits for the first's write
    record.let_first_go.set()
    first.join(5)
    second.join(5)
    assert record.writes == [shorter, longer]
    assert record.held_until() == longer


def test_a_step_held_during_a_sweep_is_not_scheduled_again_by_that_sweep() -> None:
    """The sweep that takes over schedules a due rollout, and its job may run, be held by a
    freeze and end before the same sweep checks its due list: that check scheduled it again
    at once (two ticks of a held step in one sweep, a flaky CI run). It waits for the next
    sweep, which does schedule it."""
    service, _store, _target, clock = _world()
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 50, 100], interval_seconds=60, auto=True))
    service.approve_plan(REF, actor=BOB)
    service.tick("r1")
    service.freeze(actor=BOB, reason="incident 42")
    clock.advance(61)
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=background_scheduler(), sweep_seconds=3600)
    service.options.listeners.append(scheduler.on_change)
    scheduler.scheduler.start(paused=True)  # no job runs but those this test runs
    try:
        assert scheduler._sweep()  # takes over: r1 is scheduled at its past due time
        assert "r1" in scheduler.due_times()
        scheduler._remove("r1")  # its job fired (a spent date job) ...
        assert scheduler._tick("r1", False)  # ... and the freeze held the step
        assert service.get(REF).step == 0
        scheduler._ensure(["r1"])  # the same sweep's check of its due list
        assert "r1" not in scheduler.due_times()
        assert scheduler._sweep()  # the next sweep tries it again
        assert "r1" in scheduler.due_times()
    finally:
        scheduler.stop()


def test_a_held_automatic_step_is_tried_again_at_the_next_sweep_not_at_once() -> None:
    """A freeze holds the bake's end: the step stays due, and the held tick used to schedule
    its rollout again at that past due time, so the job fired at once, thousands of times a
    second (each a Redis lock in production). It waits for the next sweep instead, and
    applies at the sweep after the freeze is lifted."""
    service, _store, target, clock = _world()
    ticks: list[str] = []
    tick = service.tick

    def counted(rollout_id: str) -> Outcome:
        ticks.append(rollout_id)
        return tick(rollout_id)

    service.tick = counted  # type: ignore[method-assign]
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 50, 100], interval_seconds=60, auto=True))
    service.approve_plan(REF, actor=BOB)
    service.tick("r1")  # step 1 applies; the bake of 60 s begins
    assert service.get(REF).step == 0
    service.freeze(actor=BOB, reason="incident 42")
    clock.advance(61)  # the bake is over: step 2 is due, and held by the freeze
    ticks.clear()
    jobs = background_scheduler()
    scheduler = RolloutScheduler(service=service, lease=_HeldLease(),  # type: ignore[arg-type]
                                 scheduler=jobs, sweep_seconds=3600)
    service.options.listeners.append(scheduler.on_change)
    scheduler.start()  # the first sweep runs now and schedules r1 at its (past) due time
    try:
        eventually(lambda: ticks or None, timeout=10, message="the due rollout never ticked")
        time.sleep(1.0)  # what a loop would tick meanwhile
        assert len(ticks) == 1, f"{len(ticks)} ticks of a held step in a second"
        assert service.get(REF).step == 0 and target.pair.canary == 10
        service.unfreeze(actor=BOB)
        scheduler.wake()  # the next sweep, now
        eventually(lambda: service.get(REF).step == 1 or None, timeout=10,
                   message="the step did not apply once the freeze was lifted")
    finally:
        scheduler.stop()

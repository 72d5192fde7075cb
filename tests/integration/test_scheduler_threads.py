"""The scheduler's jobs on APScheduler's real threads, over the in-memory service: a stop
during APScheduler's pass over due jobs (many rounds, the stop landing at a different moment
of the pass in each), and a job that falls due while its rollout's tick still runs. No Redis
or cluster is needed: only the scheduler's own threading is under test."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, JobEvent

from rollout.domain.plan import build_plan
from rollout.scheduler import JOB_PREFIX, RolloutScheduler, background_scheduler
from rollout.service import Outcome
from tests.unit.builders import ALICE, BOB
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

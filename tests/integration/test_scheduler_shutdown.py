"""Stopping the scheduler while APScheduler runs its pass over due jobs: its thread must
not die. Real threads, many rounds; the stop lands at a different moment of the pass in each.
No Redis or cluster is needed: the jobs here do nothing, only the stop is under test."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from rollout.scheduler import JOB_PREFIX, RolloutScheduler, background_scheduler
from tests.unit.test_scheduler_jobs import _HeldLease
from tests.unit.test_service import _world

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
